"""The networks of a GAN training, their optimisers and EMA, and one iteration's update of them.

An update is one discriminator step and one generator step on a class-balanced real batch; the
generator loss adds ``dist_weight ×`` a class-conditional MMD² (or feature-matching) term between
real and generated features. All its random draws come from the generator it is given, in a fixed
order (D's latents and augmentations, then G's), which resumed runs rely on.
"""

from __future__ import annotations

from contextlib import nullcontext

import ignite.distributed as idist
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel

from gandistill.augment import diff_augment
from gandistill.config import Config
from gandistill.data import DatasetInfo
from gandistill.gan.losses import (
    ADVERSARIAL,
    DIST_MIN_SAMPLES,
    DIST_TERMS,
    class_conditional,
    mode_seeking,
)
from gandistill.gan.pool import MatchingPool
from gandistill.models import ConvNet, Discriminator, Generator
from gandistill.runtime import amp_context, step_generator


def ema_decay_at(decay: float, n_averaged: Tensor) -> Tensor:
    """The EMA's decay at its update ``n_averaged + 1``: ``min(decay, (1 + n) / (10 + n))``, a
    warm-up in which the average forgets the random initial generator quickly (with a fixed
    0.999, 5% of the weights after 3000 steps would still come from it)."""
    return torch.clamp((1.0 + n_averaged) / (10.0 + n_averaged), max=decay)


def ema_with_warmup(decay: float):
    """``multi_avg_fn`` of ``AveragedModel``: an EMA of decay :func:`ema_decay_at`."""

    @torch.no_grad()
    def update(ema_params: list[Tensor], params: list[Tensor], n_averaged: Tensor) -> None:
        weight = 1.0 - ema_decay_at(decay, n_averaged.float())
        for e, p in zip(ema_params, params, strict=True):
            if e.is_floating_point():
                e.lerp_(p, weight.to(e.dtype))
            else:  # counters (batch norm's batches seen) are copied
                e.copy_(p)

    return update


def _no_sync(module: nn.Module):
    """DDP's ``no_sync`` for a wrapped module, a no-op context otherwise."""
    return module.no_sync() if isinstance(module, DistributedDataParallel) else nullcontext()


class GANStep:
    """Builds generator, discriminator, feature net, EMA and optimisers; a call updates them.

    The networks are built in this order from the global RNG, which the caller seeds.

    Args:
        cfg: the resolved config (``model`` and ``train`` sections).
        info: the dataset's classes, channels and image size.
        device: where the networks live.
        world: the number of processes; above 1 the step calls DDP-wrapped networks.
    """

    def __init__(self, cfg: Config, info: DatasetInfo, device: torch.device, world: int) -> None:
        mc, tc = cfg.model, cfg.train
        self.tc, self.device = tc, device
        self.generator = Generator(
            info.num_classes, mc.latent_dim, mc.g_width, info.image_size, info.channels
        ).to(device)
        self.discriminator = Discriminator(
            info.num_classes, mc.d_width, info.image_size, info.channels
        ).to(device)
        self.feature_net: nn.Module | None = None
        if tc.dist_features == "random" and tc.dist_kind != "none":
            # a fixed, randomly initialised ConvNet: features that no player can game
            net = ConvNet(info.num_classes, info.channels, info.image_size, width=64)
            self.feature_net = net.to(device).eval().requires_grad_(False)
        self.ema = AveragedModel(
            self.generator, multi_avg_fn=ema_with_warmup(tc.ema_decay), use_buffers=True
        )
        if cfg.match.weight > 0 and cfg.match.tune != "all":
            # distillation into a part of G: the rest keeps its weights (Adam skips parameters
            # without gradients; the EMA copy keeps averaging all of them)
            self.generator.requires_grad_(False)
            getattr(self.generator, cfg.match.tune).requires_grad_(True)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), tc.lr_g, (tc.beta1, tc.beta2))
        self.opt_d = torch.optim.Adam(
            self.discriminator.parameters(), tc.lr_d, (tc.beta1, tc.beta2)
        )
        # the modules the step calls: DDP wrappers on several processes (sharing parameters with
        # the plain modules, which are what checkpoints, EMA and evaluation use)
        self._G, self._D = self.generator, self.discriminator
        if world > 1:
            self._G = idist.auto_model(self.generator)
            self._D = idist.auto_model(self.discriminator)
        self.opt_g, self.opt_d = idist.auto_optim(self.opt_g), idist.auto_optim(self.opt_d)
        self.loss_d_fn, self.loss_g_fn = ADVERSARIAL[tc.loss]
        self.amp = tc.amp
        # the mode-seeking term's bound per pair: the real images' ratio (set by the trainer)
        self.mode_seeking_cap: float | None = None
        # the pool-matching term (distillation into the generator), built after the networks
        # from its own stream so that it leaves their initial weights as they were
        self.mc = cfg.match
        self.pool: MatchingPool | None = None
        if cfg.match.weight > 0:
            self.pool = MatchingPool(cfg.match, info, device, step_generator(cfg.seed, -5))

    def autocast(self):
        """bfloat16 autocast with ``train.amp`` on CUDA and CPUs with native bf16, a no-op
        context otherwise (see :func:`~gandistill.runtime.amp_context`)."""
        return amp_context(self.device, self.amp)

    def __call__(self, real: Tensor, labels: Tensor, gen: torch.Generator) -> dict[str, float]:
        """Update D, then G and its EMA, on one real batch.

        Args:
            real: (B, C, H, W) real images in the GAN's [-1, 1] range, on the device.
            labels: (B,) their classes.
            gen: the iteration's generator for every random draw.

        Returns:
            This process's losses and D's accuracies on real and on fake images.
        """
        self._G.train()
        self._D.train()
        loss_d, d_real, d_fake, real_aug = self._d_step(real, labels, gen)
        if self.pool is not None:
            self.pool.train_step(real, labels, gen)
        loss_adv, dist, match = self._g_step(real, real_aug, labels, gen)
        out = {
            "loss_d": loss_d.item(),
            "loss_g": loss_adv.item(),
            "dist_loss": dist.item(),
            "d_acc_real": (d_real > 0).float().mean().item(),
            "d_acc_fake": (d_fake < 0).float().mean().item(),
        }
        if self.pool is not None:
            out["match_loss"] = match.item()
        return out

    def _d_step(
        self, real: Tensor, labels: Tensor, gen: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Update D on real and fake in one pass (one forward per backward under DDP).

        Returns:
            D's loss, its logits on the real and on the fake batch, and the augmented real batch.
        """
        tc, batch = self.tc, len(labels)
        z = self.generator.sample_latents(batch, gen)
        with self.autocast():
            with torch.no_grad():
                fake = self._G(z, labels)
            real_aug = diff_augment(real, tc.augment, gen)
            fake_aug = diff_augment(fake, tc.augment, gen)
            d_both = self._D(torch.cat([real_aug, fake_aug]), torch.cat([labels, labels]))
            d_real, d_fake = d_both[:batch], d_both[batch:]
            loss_d = self.loss_d_fn(d_real.float(), d_fake.float())
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        return loss_d, d_real, d_fake, real_aug

    def _g_step(
        self, real: Tensor, real_aug: Tensor, labels: Tensor, gen: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Update G (then its EMA); with D features, one D pass gives both logits and features.

        Returns:
            G's adversarial loss, the distribution-matching term and the pool-matching term
            (each 0 when it is off).
        """
        tc = self.tc
        z = self.generator.sample_latents(len(labels), gen)
        use_dist = tc.dist_kind != "none" and tc.dist_weight > 0
        # D needs no gradients of its own here: frozen, it costs G's backward nothing, and no
        # DDP reduction is started for it
        self.discriminator.requires_grad_(False)
        try:
            loss_adv, dist, match = self._g_backward(real, real_aug, labels, z, gen, use_dist)
        finally:
            self.discriminator.requires_grad_(True)
        self.opt_g.step()
        self.ema.update_parameters(self.generator)
        return loss_adv, dist, match

    def _g_backward(
        self,
        real: Tensor,
        real_aug: Tensor,
        labels: Tensor,
        z: Tensor,
        gen: torch.Generator,
        use_dist: bool,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """G's losses and their backward pass (D frozen by the caller)."""
        tc, D = self.tc, self._D
        with self.autocast(), _no_sync(D):
            fake = self._G(z, labels)
            logits, fake_feat = D(diff_augment(fake, tc.augment, gen), labels, return_features=True)
            loss_adv = self.loss_g_fn(logits.float())
            dist = torch.zeros((), device=self.device)
            if use_dist:
                dist = self._dist_term(real, real_aug, labels, fake, fake_feat)
            loss_g = loss_adv + tc.dist_weight * dist
            if tc.mode_seeking_weight > 0:
                ms = mode_seeking(fake.float(), z, labels, self.mode_seeking_cap)
                loss_g = loss_g + tc.mode_seeking_weight * ms
            match = torch.zeros((), device=self.device)
            if self.pool is not None:
                match = self.pool.term(real, fake, labels, gen)
                loss_g = loss_g + self.mc.weight * match
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
        return loss_adv, dist, match

    def _dist_term(
        self, real: Tensor, real_aug: Tensor, labels: Tensor, fake: Tensor, fake_feat: Tensor
    ) -> Tensor:
        """The class-conditional distance between real and generated features: D's (of the
        augmented batches; ``fake_feat``) or the fixed feature net's (of the plain images)."""
        if self.feature_net is None:
            with torch.no_grad():
                real_feat = self._D(real_aug, labels, return_features=True)[1]
        else:
            with torch.no_grad():
                real_feat = self.feature_net.embed(real)
            fake_feat = self.feature_net.embed(fake)
        kind = self.tc.dist_kind
        return class_conditional(
            DIST_TERMS[kind],
            real_feat.float(),
            labels,
            fake_feat.float(),
            labels,
            DIST_MIN_SAMPLES[kind],
        )
