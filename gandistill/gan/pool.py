"""The pool-matching term that distils the training set into the generator.

After DiM (Wang et al. 2023, "DiM: Distilling Dataset into Generative Model"): a pool of
ConvNets is trained on real batches, each network at its own stage (from fresh to
``match.max_age`` SGD steps, then it starts again), and the generator is pulled to make its
samples look to them like real images of the same classes. Two objectives:

- ``logits`` (DiM's): the squared difference between a pool network's log-probabilities of each
  real image and of the generated image in its place (same label), averaged;
- ``embed``: the squared distance between each class's mean embedding of real and generated
  images (distribution matching, Zhao & Bilen 2023, here with trained networks).

A GAN step calls :meth:`MatchingPool.train_step` on its real batch (one SGD step of the network
whose turn it is) and adds ``match.weight ×`` :meth:`MatchingPool.term` to G's loss. Every draw
comes from the step's generator; the pool's weights, optimisers and ages are checkpointed with
the run (:meth:`state_dict`), so a resumed run continues the same pool.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from gandistill.augment import dsa_augment
from gandistill.config import MatchConfig
from gandistill.data import DatasetInfo
from gandistill.models import ConvNet, from_gan_range
from gandistill.models.convnet import check_depth

DSA_FAMILIES = "color_crop_cutout_scale_rotate"  # no flips: digits and letters change meaning


class MatchingPool:
    """``match.pool_size`` ConvNets trained on real batches at staggered stages.

    Network ``i`` starts counted as ``i × max_age / pool_size`` steps old, so the networks start
    again at staggered times and, after the first ``max_age`` steps, the pool spans every stage
    from fresh to trained.

    Args:
        mc: the ``match`` section.
        info: the dataset's classes, channels, size and normalisation.
        device: where the networks live.
        gen: seeds the networks' initial weights.
    """

    def __init__(
        self, mc: MatchConfig, info: DatasetInfo, device: torch.device, gen: torch.Generator
    ) -> None:
        check_depth(mc.net_depth, info.image_size, "match.net_depth")
        self.mc, self.info, self.device = mc, info, device
        self.nets = [self._fresh(gen) for _ in range(mc.pool_size)]
        self.opts = [self._optimizer(net) for net in self.nets]
        self.ages = [i * mc.max_age // mc.pool_size for i in range(mc.pool_size)]
        self.turn = 0  # the network that trains and matches at the next step

    def _fresh(self, gen: torch.Generator) -> ConvNet:
        seed = int(torch.randint(2**62, (1,), generator=gen))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            info, mc = self.info, self.mc
            net = ConvNet(
                info.num_classes, info.channels, info.image_size, mc.net_width, mc.net_depth
            )
        return net.to(self.device)

    def _optimizer(self, net: ConvNet) -> torch.optim.Optimizer:
        return torch.optim.SGD(net.parameters(), self.mc.lr_net, momentum=0.9, weight_decay=5e-4)

    def _normalized(self, x: Tensor) -> Tensor:
        """GAN-range images ([-1, 1]) as the networks see them (the dataset's normalisation)."""
        return self.info.normalize(from_gan_range(x.float()))

    def _augment(self, x: Tensor, gen: torch.Generator, seed: int | None = None) -> Tensor:
        """DSA with its own draw per image (from ``seed``, else a fresh one from ``gen``): two
        batches of one size augmented with one seed get the same draw at each position."""
        if self.mc.augment == "none":
            return x
        if seed is None:
            seed = int(torch.randint(2**31, (1,), generator=gen))
        return dsa_augment(x, DSA_FAMILIES, seed, siamese=False)

    def train_step(self, real: Tensor, labels: Tensor, gen: torch.Generator) -> float:
        """One SGD step of the network whose turn it is on the real batch (GAN range); a network
        past ``max_age`` starts again from fresh weights first. Returns its loss."""
        i = self.turn
        if self.ages[i] >= self.mc.max_age:
            self.nets[i] = self._fresh(gen)
            self.opts[i] = self._optimizer(self.nets[i])
            self.ages[i] = 0
        net = self.nets[i].train().requires_grad_(True)
        loss = F.cross_entropy(net(self._augment(self._normalized(real), gen)), labels)
        self.opts[i].zero_grad(set_to_none=True)
        loss.backward()
        self.opts[i].step()
        self.ages[i] += 1
        return loss.item()

    def term(self, real: Tensor, fake: Tensor, labels: Tensor, gen: torch.Generator) -> Tensor:
        """The matching term between a real batch and a generated batch with the same labels
        (both GAN range; gradients flow into ``fake`` only), under the network whose turn it is;
        then the turn passes to the next network. A real image and the generated one in its
        place are augmented alike."""
        net = self.nets[self.turn].eval().requires_grad_(False)
        self.turn = (self.turn + 1) % len(self.nets)
        seed = int(torch.randint(2**31, (1,), generator=gen))
        both = torch.cat(
            [
                self._augment(self._normalized(real.detach()), gen, seed),
                self._augment(self._normalized(fake), gen, seed),
            ]
        )
        n = len(labels)
        if self.mc.objective == "logits":
            logp = F.log_softmax(net(both), dim=1)
            return (logp[:n] - logp[n:]).pow(2).sum(1).mean()
        emb = net.embed(both)
        real_emb, fake_emb = emb[:n], emb[n:]
        loss = fake.new_zeros(())
        for c in labels.unique():
            mask = labels == c
            loss = loss + (real_emb[mask].mean(0) - fake_emb[mask].mean(0)).pow(2).sum()
        return loss / len(labels.unique())

    def state_dict(self) -> dict:
        return {
            "nets": [net.state_dict() for net in self.nets],
            "opts": [opt.state_dict() for opt in self.opts],
            "ages": list(self.ages),
            "turn": self.turn,
        }

    def load_state_dict(self, state: dict) -> None:
        for net, opt, net_state, opt_state in zip(
            self.nets, self.opts, state["nets"], state["opts"], strict=True
        ):
            net.load_state_dict(net_state)
            opt.load_state_dict(opt_state)
        self.ages = [int(a) for a in state["ages"]]
        self.turn = int(state["turn"])
