"""What one matching step minimises: the objectives (a registry: gradient matching, distribution
matching, neural feature regression) and the terms that can be added to them.

Every function here is pure: it takes the matching network and the step's real and synthetic
batches and returns losses; the loop in :mod:`~gandistill.distillation.loop` draws the batches,
steps the optimiser and keeps the books.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from gandistill.augment import dsa_augment
from gandistill.config import DistillConfig
from gandistill.data import DatasetInfo, ImageTensors
from gandistill.distillation.matching import DISTANCES, flat_gradients, per_class_gradients
from gandistill.models import ConvNet
from gandistill.registry import Registry
from gandistill.runtime import amp_context

DISCRIMINATION_TEMPERATURE = 0.1  # of the cosine logits in discrimination_loss


def discrimination_loss(emb_real: Tensor, emb_syn: Tensor) -> Tensor:
    """CAFE's discrimination term: real embeddings (K, B, D) of classes 0..K-1 classified by
    cosine similarity to the synthetic class means (K, D); cross-entropy against their class.
    Both sides are centred on the mean real embedding first: a random ReLU network's features
    share a large positive component that makes every cosine close to one."""
    centre = emb_real.flatten(0, 1).mean(0)
    protos = F.normalize(emb_syn - centre, dim=1)
    feats = F.normalize(emb_real.flatten(0, 1) - centre, dim=1)
    labels = torch.arange(len(protos), device=protos.device).repeat_interleave(emb_real.shape[1])
    return F.cross_entropy(feats @ protos.T / DISCRIMINATION_TEMPERATURE, labels)


KRR_RIDGE = 1e-6  # of krr_loss, relative to the mean of the kernel's diagonal (FRePo's choice)


def layerwise_dm(blocks_real: list[Tensor], blocks_syn: list[Tensor], k: int, dim: int) -> Tensor:
    """CAFE-style layer-wise distribution matching (Wang et al. 2022): per block, the squared
    distance of each class's mean real and synthetic output, summed over classes, as a mean over
    the block's units times ``dim`` (the embedding's size) so every block weighs as the final
    embedding does in plain DM.

    Args:
        blocks_real: per block, the real outputs (k · n_real, d_i), class-major.
        blocks_syn: per block, the synthetic outputs (k · ipc, d_i), class-major.
        k: number of classes in the batch.
        dim: the embedding's size.
    """
    total = blocks_syn[0].new_zeros((), dtype=torch.float32)
    for r, s in zip(blocks_real, blocks_syn, strict=True):
        r_mean = r.detach().float().view(k, -1, r.shape[-1]).mean(1)
        s_mean = s.float().view(k, -1, s.shape[-1]).mean(1)
        total = total + (r_mean - s_mean).pow(2).sum() * (dim / r.shape[-1])
    return total


def krr_loss(emb_real: Tensor, emb_syn: Tensor, ridge: float = KRR_RIDGE) -> Tensor:
    """Neural feature regression (FRePo, Zhou et al. 2022): kernel ridge regression on the
    synthetic embeddings (K, S, D) of classes 0..K-1, fitted to their centred one-hot labels,
    predicts the labels of the real embeddings (K, B, D); the mean squared error of that
    prediction. Solved in float64: the ridge is tiny and the kernel nearly singular."""
    k, s, b = emb_syn.shape[0], emb_syn.shape[1], emb_real.shape[1]
    fs, fr = emb_syn.flatten(0, 1).double(), emb_real.flatten(0, 1).double()
    eye = torch.eye(k, dtype=fs.dtype, device=fs.device)
    y_syn = (eye - 1.0 / k).repeat_interleave(s, dim=0)
    y_real = (eye - 1.0 / k).repeat_interleave(b, dim=0)
    k_ss = fs @ fs.T
    k_ss = k_ss + ridge * k_ss.diagonal().mean() * torch.eye(
        len(fs), dtype=fs.dtype, device=fs.device
    )
    pred = (fr @ fs.T) @ torch.linalg.solve(k_ss, y_syn)
    return (pred - y_real).pow(2).sum(1).mean().float()


# --- the objectives -----------------------------------------------------------------------------


@dataclass
class Batch:
    """One matching step's images for this rank's K classes."""

    real: Tensor  # (K, B, C, H, W) normalised real images
    real_y: Tensor  # (K, B)
    syn: Tensor  # (K, S, C, H, W) synthetic images, with their graph to the set
    syn_y: Tensor  # (K, S)


def real_batch(
    train: ImageTensors,
    classes: range,
    size: int,
    info: DatasetInfo,
    gen: torch.Generator,
    device: torch.device,
) -> tuple[Tensor, Tensor]:
    """Normalised real images (K, B, C, H, W) and their labels (K, B) of ``classes`` (this
    rank's K). The indices of every class are drawn, so the shared generator stays in step
    across ranks; only the images of ``classes`` are loaded."""
    picks = [train.draw_class(c, size, gen) for c in range(info.num_classes)]
    x = torch.stack([train.take(picks[c]) for c in classes])
    y = torch.tensor(list(classes)).unsqueeze(1).expand(len(classes), size)
    return info.normalize(x.to(device)), y.to(device)


def siamese(
    real: Tensor, syn: Tensor, strategy: str, classes: range, num_classes: int, gen: torch.Generator
) -> tuple[Tensor, Tensor]:
    """The same DSA draw for the real and the synthetic batch of each class (none without a
    strategy); a seed is drawn for every class, so the stream stays in step across ranks."""
    if not strategy:
        return real, syn
    seeds = torch.randint(2**31, (num_classes, 1), generator=gen)
    pairs = []
    for i, c in enumerate(classes):
        seed = int(seeds[c])
        pairs.append((dsa_augment(real[i], strategy, seed), dsa_augment(syn[i], strategy, seed)))
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


@dataclass
class Embedded:
    """The matching network's embeddings of a :class:`Batch` and their distribution matching."""

    real: Tensor  # (K, B, D), detached, float32
    syn: Tensor  # (K, S, D), float32, with graph
    syn_mean: Tensor  # (K, D): the class means of ``syn``
    dm: Tensor  # squared distance of the class means, summed over classes (+ layer-wise terms)


def embed(net: ConvNet, batch: Batch, dc: DistillConfig, given: tuple | None = None) -> Embedded:
    """Embeddings of the batch: every block's output with ``dm_layers``, else ``given`` (those of
    gradient matching's forward pass) or one forward pass of each side."""
    k, b, s = batch.real.shape[0], batch.real.shape[1], batch.syn.shape[1]
    if dc.dm_layers:
        with torch.no_grad():
            blocks_real = net.block_outputs(batch.real.flatten(0, 1))
        blocks_syn = net.block_outputs(batch.syn.flatten(0, 1))
        emb_real, emb_syn = blocks_real[-1].view(k, b, -1), blocks_syn[-1].view(k, s, -1)
    elif given is not None:
        emb_real, emb_syn = given
    else:
        with torch.no_grad():
            emb_real = net.embed(batch.real.flatten(0, 1)).view(k, b, -1)
        emb_syn = net.embed(batch.syn.flatten(0, 1)).view(k, s, -1)
    emb_real, emb_syn = emb_real.detach().float(), emb_syn.float()
    syn_mean = emb_syn.mean(1)
    dm = (emb_real.mean(1) - syn_mean).pow(2).sum()
    if dc.dm_layers:
        dm = dm + layerwise_dm(blocks_real[:-1], blocks_syn[:-1], k, emb_syn.shape[-1])
    return Embedded(emb_real, emb_syn, syn_mean, dm)


def needs_embeddings(dc: DistillConfig) -> bool:
    """Whether a term on the network's embeddings is part of the loss."""
    return dc.objective != "gm" or dc.discrimination > 0 or dc.dm_weight > 0 or dc.ce_weight > 0


# An objective maps (network, batch, config, gradient mode) to its distance (summed over the K
# classes), the embeddings that the add-on terms use (None when none is needed) and the sums over
# classes of the cosine and L2 distance of the flattened gradients (NaN without gradients).
Objective = Callable[[ConvNet, Batch, DistillConfig, str], tuple[Tensor, Embedded | None, tuple]]
OBJECTIVES: Registry[Objective] = Registry("objective")


def register_objective(name: str) -> Callable[[Objective], Objective]:
    """Decorator adding a matching objective to :data:`OBJECTIVES` under ``name`` (a taken name
    is refused); the name must also be among ``DistillConfig.objective``'s choices."""
    return OBJECTIVES.register(name)


@register_objective("gm")
def gradient_matching(net: ConvNet, batch: Batch, dc: DistillConfig, mode: str) -> tuple:
    """Distance between the per-class gradients on real and on synthetic images (DC); the
    embeddings, when needed, come from the same forward passes."""
    params = {name: p.detach() for name, p in net.named_parameters()}
    with torch.no_grad() if mode == "vmap" else nullcontext():
        g_real, emb_real = per_class_gradients(
            net, params, batch.real, batch.real_y, mode, embeddings=True
        )
    g_real = {k: v.detach().float() for k, v in g_real.items()}
    g_syn, emb_syn = per_class_gradients(
        net, params, batch.syn, batch.syn_y, mode, create_graph=True, embeddings=True
    )
    g_syn = {k: v.float() for k, v in g_syn.items()}
    match = DISTANCES[dc.distance](g_real, g_syn)
    with torch.no_grad():  # sums over classes here; means over all of them in the loop
        fr, fs = flat_gradients(g_real), flat_gradients(g_syn)
        grad_cos = F.cosine_similarity(fr, fs, dim=1).sum().item()
        grad_l2 = (fr - fs).norm(dim=1).sum().item()
    emb = embed(net, batch, dc, given=(emb_real, emb_syn)) if needs_embeddings(dc) else None
    return match, emb, (grad_cos, grad_l2)


@register_objective("dm")
def distribution_matching(net: ConvNet, batch: Batch, dc: DistillConfig, mode: str) -> tuple:
    """Squared distance of the class means of the embeddings (DM)."""
    emb = embed(net, batch, dc)
    return emb.dm, emb, (math.nan, math.nan)


@register_objective("krr")
def feature_regression(net: ConvNet, batch: Batch, dc: DistillConfig, mode: str) -> tuple:
    """Kernel ridge regression on the synthetic embeddings predicts the real labels (FRePo); a
    mean over the classes, so × K to sum over them as the other objectives do."""
    emb = embed(net, batch, dc)
    return batch.real.shape[0] * krr_loss(emb.real, emb.syn), emb, (math.nan, math.nan)


def matching_loss(
    net: ConvNet,
    batch: Batch,
    dc: DistillConfig,
    mode: str,
    device: torch.device,
    num_classes: int,
) -> tuple[Tensor, list[Tensor], tuple[float, float]]:
    """The objective's distance, the weighted add-on terms (distribution matching, CAFE's
    discrimination, cross-entropy of the synthetic images) in the order they are added, and the
    gradient statistics. ``num_classes`` counts all ranks' classes."""
    with amp_context(device, dc.amp):
        match, emb, grad_stats = OBJECTIVES[dc.objective](net, batch, dc, mode)
    extra = []
    if dc.dm_weight > 0:
        extra.append(dc.dm_weight * emb.dm)
    if dc.discrimination > 0:
        extra.append(dc.discrimination * discrimination_loss(emb.real, emb.syn_mean))
    if dc.ce_weight > 0:  # summed here, a mean over all ranks' images
        with amp_context(device, dc.amp):  # the logits of the embeddings above
            logits = net.classifier(emb.syn.flatten(0, 1)).float()
        ce = F.cross_entropy(logits, batch.syn_y.flatten(), reduction="sum")
        extra.append(dc.ce_weight * ce / (num_classes * dc.ipc))
    return match, extra, grad_stats
