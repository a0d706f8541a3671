"""Coreset selection rules: which ``ipc`` real training images per class to keep.

Each rule is a pure function from one class's features to indices into them. Features are the
cached real-data classifier's penultimate activations, L2-normalised as in ``best_of_k``. The
coreset baselines and distillation's coreset starts both choose through :func:`select_coreset`.

- ``random``: a uniform draw without replacement.
- ``herding``: greedy mean matching (Welling 2009; the iCaRL exemplar rule): step ``t`` adds the
  point that brings the mean of the chosen points closest to the class mean.
- ``kcenter``: k-center greedy (Sener & Savarese 2018): from the point closest to the class
  mean, repeatedly add the point farthest from the chosen set.
- ``kmeans``: k-means with ``ipc`` clusters; for each centroid the nearest real point.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gandistill.classifier import RealClassifier
from gandistill.data import ImageTensors
from gandistill.runtime import step_generator

METHODS = ("random", "herding", "kcenter", "kmeans")
SELECTION_KEY = -40  # step_generator key of the baselines' draws (one generator per class)
KMEANS_INITS = 10


def select_random(n: int, ipc: int, gen: torch.Generator) -> Tensor:
    """``ipc`` distinct indices into ``range(n)``, uniformly at random."""
    return torch.randperm(n, generator=gen)[:ipc]


def select_herding(features: Tensor, ipc: int) -> Tensor:
    """Herding: at step ``t`` the point ``i`` minimising ``|mean(chosen + [i]) - mean(all)|``.

    With ``s`` the sum of the ``t - 1`` points chosen so far and ``mu`` the class mean, that is
    the unchosen point nearest ``t * mu - s``.

    Args:
        features: one class's features (n, d).
        ipc: how many points to choose (at most n).

    Returns:
        int64 indices (ipc,) in the order chosen.
    """
    mu = features.mean(0)
    total = torch.zeros_like(mu)
    taken = torch.zeros(len(features), dtype=torch.bool)
    chosen = []
    for t in range(1, ipc + 1):
        dist = (features - (t * mu - total)).norm(dim=1)
        dist[taken] = float("inf")
        i = int(dist.argmin())
        chosen.append(i)
        taken[i] = True
        total += features[i]
    return torch.tensor(chosen, dtype=torch.int64)


def select_kcenter(features: Tensor, ipc: int) -> Tensor:
    """k-center greedy: the point closest to the class mean, then the farthest from the chosen.

    Args:
        features: one class's features (n, d).
        ipc: how many points to choose (at most n).

    Returns:
        int64 indices (ipc,) in the order chosen.
    """
    first = int((features - features.mean(0)).norm(dim=1).argmin())
    chosen = [first]
    dist = (features - features[first]).norm(dim=1)  # (n,) distance to the nearest chosen point
    dist[first] = -1.0  # duplicates of a chosen point (distance 0) may still be picked
    for _ in range(ipc - 1):
        i = int(dist.argmax())
        chosen.append(i)
        dist = torch.minimum(dist, (features - features[i]).norm(dim=1))
        dist[chosen] = -1.0
    return torch.tensor(chosen, dtype=torch.int64)


def select_kmeans(features: Tensor, ipc: int, seed: int, n_init: int = KMEANS_INITS) -> Tensor:
    """k-means with ``ipc`` clusters (scikit-learn); for each centroid the nearest real point.

    Centroids claim points in the order of their distance to their nearest point, each taking
    the nearest point not yet taken, so the indices are distinct even when two centroids share
    a nearest point.

    Args:
        features: one class's features (n, d).
        ipc: number of clusters (at most n).
        seed: ``random_state`` of the k-means initialisation.
        n_init: k-means restarts; the best inertia wins.

    Returns:
        int64 indices (ipc,), one per centroid in centroid order.
    """
    from sklearn.cluster import KMeans  # imported here: only this method needs scikit-learn

    x = features.double()
    km = KMeans(n_clusters=ipc, n_init=n_init, random_state=seed).fit(x.numpy())
    centroids = torch.from_numpy(km.cluster_centers_).to(x.dtype)
    dist = torch.cdist(centroids, x)  # (ipc, n)
    picks = torch.full((ipc,), -1, dtype=torch.int64)
    taken = torch.zeros(len(x), dtype=torch.bool)
    for k in dist.min(1).values.argsort().tolist():
        row = dist[k].masked_fill(taken, float("inf"))
        picks[k] = int(row.argmin())
        taken[picks[k]] = True
    return picks


@torch.no_grad()
def class_features(
    clf: RealClassifier, images: Tensor, device: torch.device, batch_size: int = 500
) -> Tensor:
    """L2-normalised classifier features (n, d) on the CPU of uint8 images (n, C, H, W)."""
    clf.net.eval()
    feats = [clf.features(b.to(device).float() / 255.0).float() for b in images.split(batch_size)]
    return F.normalize(torch.cat(feats), dim=1).cpu()


def select_coreset(
    method: str,
    train: ImageTensors,
    ipc: int,
    seed: int,
    clf: RealClassifier | None = None,
    device: torch.device | None = None,
) -> Tensor:
    """Indices into ``train`` of ``ipc`` images per class chosen by ``method``, class by class.

    Args:
        method: one of :data:`METHODS`.
        train: the training split.
        ipc: images per class (at most the smallest class).
        seed: the run's seed; each class draws from its own generator.
        clf: the real-data classifier whose features every method but ``random`` needs.
        device: where the classifier's features are computed.

    Returns:
        int64 indices (num_classes * ipc,), class by class.
    """
    chosen = []
    for c, idx in enumerate(train.class_indices):
        gen = step_generator(seed, SELECTION_KEY, c)
        if method == "random":
            local = select_random(len(idx), ipc, gen)
        else:
            feats = class_features(clf, train.images[idx], device)
            if method == "herding":
                local = select_herding(feats, ipc)
            elif method == "kcenter":
                local = select_kcenter(feats, ipc)
            else:
                seed_c = int(torch.randint(2**31 - 1, (1,), generator=gen))
                local = select_kmeans(feats, ipc, seed_c)
        chosen.append(idx[local])
    return torch.cat(chosen)
