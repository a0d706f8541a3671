"""What gradient matching compares: per-class gradients of a network, and their distances.

The layer-wise distance of the DC paper (Zhao et al. 2021, "Dataset Condensation with Gradient
Matching"), ``mse`` and ``cos``; per-class gradients computed for all classes at once with
``torch.func.vmap(grad(...))`` or class by class. (The DC paper's outer/inner loop schedule is
a default of the config: :func:`gandistill.config.default_loops`.)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap
from torch.nn import functional as F

# --- distances between per-class gradients ------------------------------------------------------


def _rows(g: Tensor) -> Tensor:
    """(K, out, ...) per-class gradients → (K, out, rest)."""
    return g.reshape(g.shape[0], g.shape[1], -1)


def dc_distance(real: dict[str, Tensor], syn: dict[str, Tensor]) -> Tensor:
    """Layer-wise distance of the DC paper, summed over classes: for every parameter with ≥ 2
    dimensions, Σ over output units of 1 − cos(real row, synthetic row); 1-D parameters add 0."""
    total = torch.zeros((), device=next(iter(syn.values())).device)
    for name, gs in syn.items():
        if gs.dim() - 1 < 2:  # leading dim is the class
            continue
        gr, gs = _rows(real[name]), _rows(gs)
        cos = (gr * gs).sum(-1) / (gr.norm(dim=-1) * gs.norm(dim=-1) + 1e-6)
        total = total + (1.0 - cos).sum()
    return total


def flat_gradients(grads: dict[str, Tensor]) -> Tensor:
    return torch.cat([g.reshape(g.shape[0], -1) for g in grads.values()], dim=1)  # (K, P)


def mse_distance(real: dict[str, Tensor], syn: dict[str, Tensor]) -> Tensor:
    return (flat_gradients(real) - flat_gradients(syn)).pow(2).sum()


def cos_distance(real: dict[str, Tensor], syn: dict[str, Tensor]) -> Tensor:
    """Σ over classes of 1 − cos between the whole flattened gradients."""
    return (
        1.0 - F.cosine_similarity(flat_gradients(real), flat_gradients(syn), dim=1, eps=1e-6)
    ).sum()


DISTANCES: dict[str, Callable[[dict[str, Tensor], dict[str, Tensor]], Tensor]] = {
    "dc": dc_distance,
    "mse": mse_distance,
    "cos": cos_distance,
}


class _EmbedAndLogits(nn.Module):
    """A network's penultimate features and its logits from one forward pass."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        emb = self.net.embed(x)
        return emb, self.net.classifier(emb)


def per_class_gradients(
    net: nn.Module,
    params: dict[str, Tensor],
    x: Tensor,
    y: Tensor,
    mode: str = "loop",
    create_graph: bool = False,
    embeddings: bool = False,
) -> dict[str, Tensor] | tuple[dict[str, Tensor], Tensor]:
    """Cross-entropy gradients of every class batch: x (K, B, C, H, W), y (K, B) → (K, ...).

    ``vmap`` computes all classes in one batched call (``torch.func``); ``loop`` runs one
    autograd pass per class. On a 2-core CPU the loop is about 2.5× faster (vmap's batched
    convolution backward is slow there, see ``scripts/bench_distill.py``); ``create_graph`` keeps
    the graph for a second differentiation (the synthetic side). ``params`` must be ``net``'s
    parameters (detached for vmap). ``embeddings`` also returns the penultimate features
    (K, B, D) of the same forward pass (``net.embed`` then ``net.classifier``), so terms on the
    embeddings cost no second forward; they keep their graph when ``create_graph`` is set.
    """
    if mode == "vmap":
        both = _EmbedAndLogits(net)

        def loss(p: dict[str, Tensor], xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
            emb, logits = functional_call(both, {f"net.{n}": t for n, t in p.items()}, (xb,))
            return F.cross_entropy(logits, yb), emb

        grads, emb = vmap(grad(loss, has_aux=True), in_dims=(None, 0, 0))(params, x, y)
        return (grads, emb) if embeddings else grads
    names = list(params)
    weights = [dict(net.named_parameters())[n] for n in names]
    per_class, embs = [], []
    for xc, yc in zip(x, y, strict=True):
        emb = net.embed(xc)
        loss = F.cross_entropy(net.classifier(emb), yc)
        per_class.append(torch.autograd.grad(loss, weights, create_graph=create_graph))
        embs.append(emb if create_graph else emb.detach())
    grads = {n: torch.stack([g[i] for g in per_class]) for i, n in enumerate(names)}
    return (grads, torch.stack(embs)) if embeddings else grads
