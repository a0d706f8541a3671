"""Matching terms beyond plain gradient and distribution matching, all pure functions of the
matching network's embeddings of real and synthetic images."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

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
