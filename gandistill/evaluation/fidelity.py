"""Fidelity of an image set to a reference set (FID, KID, IS, precision/recall), offline.

Sets are uint8 ``(N, C, H, W)`` tensors, fed to ``torch_fidelity.calculate_metrics`` as datasets
(never through its generator path). The extractors are small ConvNets trained on the real
training split, registered with torch-fidelity under a name that carries a hash of their weights:
the penultimate embedding serves FID, KID and precision/recall, the logits IS, so scores compare
only between runs with the same ``extractor`` entry. ``independent`` (the default) is a network
of its own (another width and seed), never the classifier that picks coreset and best-of-K
starts and gives soft labels, whose feature space would favour the sets it chose;
``classifier`` is that classifier. torch-fidelity's InceptionV3 runs only from a local weights
file. Reports score class-stratified sets through :mod:`gandistill.evaluation.stratified`.

Set ``a`` is the one under test (generated, distilled), ``b`` the reference (real): IS is taken
on ``a``; precision is the share of ``a`` inside ``b``'s manifold, recall the converse.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import torch
import torch_fidelity
from torch import Tensor
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from gandistill.errors import ArtifactError, ConfigError, DataError
from gandistill.evaluation.stratified import extract_features, stratified_scores
from gandistill.files import sha256_file

if TYPE_CHECKING:  # classifier imports evaluate, which may import this module
    from gandistill.classifier import RealClassifier

EXTRACTOR_INDEPENDENT = "independent"
EXTRACTOR_CLASSIFIER = "classifier"
EXTRACTOR_INCEPTION = "inception-v3-compat"
EXTRACTORS = (EXTRACTOR_INDEPENDENT, EXTRACTOR_CLASSIFIER, EXTRACTOR_INCEPTION)
# the gandistill ConvNets, fed as ``clf``
NETWORK_EXTRACTORS = (EXTRACTOR_INDEPENDENT, EXTRACTOR_CLASSIFIER)
METRICS = ("fid", "kid", "isc", "prc")

# result keys
KEY_FID = "fid"
KEY_KID_MEAN = "kid_mean"
KEY_KID_STD = "kid_std"
KEY_IS_MEAN = "is_mean"
KEY_IS_STD = "is_std"
KEY_PRECISION = "precision"
KEY_RECALL = "recall"
KEY_F_SCORE = "f_score"
KEY_EXTRACTOR = "extractor"  # the extractor's name, with its weights hash

_RESULT_KEYS = {  # torch-fidelity key -> ours
    torch_fidelity.KEY_METRIC_FID: KEY_FID,
    torch_fidelity.KEY_METRIC_KID_MEAN: KEY_KID_MEAN,
    torch_fidelity.KEY_METRIC_KID_STD: KEY_KID_STD,
    torch_fidelity.KEY_METRIC_ISC_MEAN: KEY_IS_MEAN,
    torch_fidelity.KEY_METRIC_ISC_STD: KEY_IS_STD,
    torch_fidelity.KEY_METRIC_PRECISION: KEY_PRECISION,
    torch_fidelity.KEY_METRIC_RECALL: KEY_RECALL,
    torch_fidelity.KEY_METRIC_F_SCORE: KEY_F_SCORE,
}
# feature_layer_<metric> per extractor; Inception's are torch-fidelity's own defaults
FEATURE_LAYERS = {
    EXTRACTOR_INDEPENDENT: {"fid": "embed", "kid": "embed", "prc": "embed", "isc": "logits"},
    EXTRACTOR_CLASSIFIER: {"fid": "embed", "kid": "embed", "prc": "embed", "isc": "logits"},
    EXTRACTOR_INCEPTION: {"fid": "2048", "kid": "2048", "prc": "2048", "isc": "logits_unbiased"},
}
DEFAULT_KID_SUBSET = 1000  # torch-fidelity's default
HASH_CHARS = 12  # hex digits of a weights hash in an extractor name
_ISC_MIN_SPLIT = 50  # fewer images per IS split make the score mostly a small-sample artefact
_PRC_NEIGHBORHOOD = 3  # torch-fidelity's default k of the k-NN manifold


class ClassifierFeatureExtractor(torch_fidelity.FeatureExtractorBase):
    """torch-fidelity view of a :class:`RealClassifier`: features ``embed`` and ``logits``.

    torch-fidelity's registry holds classes and builds them as ``cls(name, features_list,
    **kwargs)``, so :func:`register_classifier_extractor` makes one subclass per classifier with
    the classifier in the class attribute :attr:`classifier`. Each instance works on a private
    CPU copy of the network, because torch-fidelity calls ``eval()``, ``requires_grad_(False)``
    and ``cuda()`` on the extractor and those must not touch the caller's model.
    """

    classifier: RealClassifier | None = None

    def __init__(self, name: str, features_list: Sequence[str], **kwargs) -> None:
        super().__init__(name, list(features_list))
        clf = type(self).classifier
        assert clf is not None, "use register_classifier_extractor to make an extractor class"
        self.net = copy.deepcopy(clf.net).cpu()
        self.info = clf.info

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("embed", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return FEATURE_LAYERS[EXTRACTOR_CLASSIFIER][metric]

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        shape = (self.info.channels, self.info.image_size, self.info.image_size)
        if x.dtype != torch.uint8 or x.ndim != 4 or tuple(x.shape[1:]) != shape:
            got = f"{x.dtype} {tuple(x.shape)}"
            raise ValueError(f"expected uint8 images (B, {', '.join(map(str, shape))}), got {got}")
        x01 = x.to(next(self.net.parameters()).device, torch.float32) / 255.0
        embed = self.net.embed(self.info.normalize(x01))  # (B, D)
        features = {"embed": embed, "logits": self.net.classifier(embed)}  # ConvNet.forward
        return tuple(features[name] for name in self.features_list)


def classifier_hash(clf: RealClassifier) -> str:
    """sha256 of everything that shapes the classifier's features: weights, architecture and the
    dataset normalisation it applies."""
    h = hashlib.sha256()
    meta = {"model": getattr(clf.net, "kwargs", {}), "dataset": clf.info.to_dict()}
    h.update(json.dumps(meta, sort_keys=True).encode())
    for key, tensor in sorted(clf.net.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        h.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def classifier_extractor_name(clf: RealClassifier, role: str = EXTRACTOR_CLASSIFIER) -> str:
    """The torch-fidelity extractor name of ``clf`` in ``role`` (``classifier`` or
    ``independent``); networks that differ never share one."""
    return f"gandistill-{role}-{classifier_hash(clf)[:HASH_CHARS]}"


def register_classifier_extractor(clf: RealClassifier, role: str = EXTRACTOR_CLASSIFIER) -> str:
    """Register ``clf`` as a torch-fidelity feature extractor (idempotent) and return its name."""
    name = classifier_extractor_name(clf, role)
    registered = FEATURE_EXTRACTORS_REGISTRY.get(name)
    if registered is None:
        cls_name = f"ClassifierFeatureExtractor_{name[-HASH_CHARS:]}"
        cls = type(cls_name, (ClassifierFeatureExtractor,), {"classifier": clf})
        torch_fidelity.register_feature_extractor(name, cls)
    else:  # same weights: the latest object serves (identical features, nothing else kept alive)
        assert issubclass(registered, ClassifierFeatureExtractor), registered
        registered.classifier = clf
    return name


@lru_cache(maxsize=8)
def _check_weights(path: str, size: int, mtime_ns: int) -> None:  # size, mtime: see _file_hash
    """Refuse Inception weights that are not a plain state dict, when they are named (before
    any training) and again before use; torch-fidelity loads them with full pickle, so only
    plain tensors may reach it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = type(exc).__name__
    else:
        if isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()):
            return
        reason = f"a {type(state).__name__}" if not isinstance(state, dict) else "not all tensors"
    raise ArtifactError(f"Inception weights {path} are not a plain state dict ({reason})")


def resolve_inception_weights(path: str | Path | None = None) -> Path:
    """The local InceptionV3 weights file: ``path``, else torch-fidelity's file in the torch hub
    cache; a one-line error when neither exists (a download is never attempted)."""
    if path is not None:
        weights = Path(path).expanduser()
        if not weights.is_file():
            raise ArtifactError(f"Inception weights not found: {weights}")
        stat = weights.stat()
        _check_weights(str(weights), stat.st_size, stat.st_mtime_ns)
        return weights
    file_name = Path(urlparse(URL_INCEPTION_V3).path).name
    cached = Path(torch.hub.get_dir()) / "checkpoints" / file_name
    if cached.is_file():
        return cached
    raise ConfigError(
        f"feature extractor '{EXTRACTOR_INCEPTION}' needs local weights: pass "
        f"--inception-weights PATH (torch-fidelity's {file_name}); nothing is downloaded"
    )


def check_extractor(extractor: str, inception_weights: str | Path | None = None) -> str | None:
    """Validate an extractor choice up front (before hours of training, not after); returns the
    Inception weights path to use, if any."""
    if extractor not in EXTRACTORS:
        raise ConfigError(
            f"unknown feature extractor '{extractor}' (known: {', '.join(EXTRACTORS)})"
        )
    if extractor == EXTRACTOR_INCEPTION:
        return str(resolve_inception_weights(inception_weights))
    return None


@lru_cache(maxsize=8)
def _file_hash(path: str, size: int, mtime_ns: int) -> str:  # size, mtime: invalidate on change
    return sha256_file(path)


@dataclass(frozen=True)
class _Extractor:
    name: str  # registered with torch-fidelity
    label: str  # reported as KEY_EXTRACTOR: the name with the weights hash
    accepts: tuple[int, ...]  # image channels it takes
    channels: int  # channels it is fed (gray is repeated for Inception)
    size: int | None  # required image size, None for any
    kwargs: dict


def _resolve_extractor(
    extractor: str, clf: RealClassifier | None, inception_weights: str | Path | None
) -> _Extractor:
    if extractor in NETWORK_EXTRACTORS:
        if clf is None:
            raise ConfigError(f"feature extractor '{extractor}' needs its network")
        name, c = register_classifier_extractor(clf, extractor), clf.info.channels
        return _Extractor(name, name, (c,), c, clf.info.image_size, {})
    if extractor == EXTRACTOR_INCEPTION:
        weights = resolve_inception_weights(inception_weights)
        stat = weights.stat()
        _check_weights(str(weights), stat.st_size, stat.st_mtime_ns)
        tag = _file_hash(str(weights.resolve()), stat.st_size, stat.st_mtime_ns)[:HASH_CHARS]
        kwargs = {"feature_extractor_weights_path": str(weights)}
        return _Extractor(extractor, f"{extractor}-{tag}", (1, 3), 3, None, kwargs)
    raise ConfigError(f"unknown feature extractor '{extractor}' (known: {', '.join(EXTRACTORS)})")


class UInt8Images(Dataset):
    """Bare uint8 (C, H, W) tensors, the dataset form torch-fidelity takes; one channel is
    repeated when ``channels`` is 3."""

    def __init__(self, images: Tensor, channels: int) -> None:
        self.images = images
        self.channels = channels

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> Tensor:
        x = self.images[i]
        return x.repeat(self.channels, 1, 1) if x.shape[0] != self.channels else x


def _check_images(name: str, images: Tensor, fe: _Extractor) -> None:
    if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, Tensor) else "no tensor"
        raise DataError(f"{name}: expected uint8 images (N, C, H, W), got {got}")
    n, c, h, w = images.shape
    if n < 2:
        raise DataError(f"{name}: fidelity metrics need at least 2 images, got {n}")
    if c not in fe.accepts:
        raise DataError(
            f"{name}: {c} channels, {fe.label} takes {' or '.join(map(str, fe.accepts))}"
        )
    if fe.size is not None and (h, w) != (fe.size, fe.size):
        raise DataError(f"{name}: {h}×{w} images, {fe.label} takes {fe.size}×{fe.size}")


def _check_metrics(metrics: Sequence[str]) -> None:
    """At least one metric is asked for, each one of :data:`METRICS`."""
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown or not metrics:
        raise ConfigError(f"unknown fidelity metrics {unknown} (known: {', '.join(METRICS)})")


def _check_kid_subset_size(kid_subset_size: int | None, metrics: Sequence[str], n_min: int) -> None:
    """An explicit KID subset size must fit the smaller set (the default is clamped instead)."""
    if kid_subset_size is not None and "kid" in metrics and not 2 <= kid_subset_size <= n_min:
        raise ConfigError(
            f"KID subset size {kid_subset_size} must lie in 2..{n_min} (the smaller set's size)"
        )


def _extractor_kwargs(fe: _Extractor, extractor: str, metrics: Sequence[str]) -> dict:
    """torch-fidelity's metric switches, feature extractor and the feature layer of each metric."""
    return {
        **{m: m in metrics for m in METRICS},
        "feature_extractor": fe.name,
        **{f"feature_layer_{m}": layer for m, layer in FEATURE_LAYERS[extractor].items()},
        **fe.kwargs,
    }


def _sample_kwargs(
    n_a: int, n_min: int, kid_subsets: int, kid_subset_size: int | None, isc_splits: int
) -> dict:
    """IS splits, KID subsets and the k of precision/recall, fitted to sets of ``n_a`` images
    under test and ``n_min`` in the smaller set."""
    return {
        "isc_splits": max(1, min(isc_splits, n_a // _ISC_MIN_SPLIT)),
        "kid_subsets": kid_subsets,
        "kid_subset_size": min(DEFAULT_KID_SUBSET, n_min)
        if kid_subset_size is None
        else kid_subset_size,
        "prc_neighborhood": min(_PRC_NEIGHBORHOOD, n_min - 1),  # k-th neighbour needs k + 1 points
    }


def fidelity_metrics(
    images_a: Tensor,
    images_b: Tensor,
    clf: RealClassifier | None = None,
    extractor: str = EXTRACTOR_INDEPENDENT,
    inception_weights: str | Path | None = None,
    device: torch.device | str = "cpu",
    metrics: Sequence[str] = METRICS,
    kid_subsets: int = 100,
    kid_subset_size: int | None = None,
    isc_splits: int = 10,
    batch_size: int = 64,
    seed: int = 2020,
    verbose: bool = False,
) -> dict[str, float | str]:
    """FID, KID, IS and precision/recall of set ``a`` against reference set ``b``, as
    torch-fidelity computes them: KID raw (not ×10³) over random subsets of both sets, which is
    unbiased only when both are drawn the same way. For a class-stratified set (a distilled set,
    a coreset) against a split, :func:`fidelity_table` takes KID against stratified subsets.

    Args:
        images_a: the set under test, uint8 (N, C, H, W); IS is computed on it.
        images_b: the reference (real) set, uint8 (M, C, H, W).
        clf: the network of a ``classifier`` or ``independent`` extractor.
        extractor: one of :data:`EXTRACTORS`.
        inception_weights: local InceptionV3 weights for ``inception-v3-compat`` (default: the
            torch hub cache's copy, if there is one).
        device: where features are extracted ('cpu' or 'cuda').
        metrics: a subset of :data:`METRICS`.
        kid_subsets: KID subsets.
        kid_subset_size: KID subset size (default: 1000, clamped to the smaller set); an
            explicit size larger than a set is an error.
        isc_splits: IS splits, reduced so that each split holds at least 50 images.
        batch_size: images per feature-extraction batch.
        seed: torch-fidelity's ``rng_seed`` (KID subsets, IS shuffling).
        verbose: let torch-fidelity report progress on stderr.

    Returns:
        ``extractor`` (the extractor's name with its weights hash) and, per requested metric,
        ``fid``; ``kid_mean``, ``kid_std``; ``is_mean``, ``is_std``; ``precision``, ``recall``,
        ``f_score``.
    """
    _check_metrics(metrics)
    fe = _resolve_extractor(extractor, clf, inception_weights)
    _check_images("images_a", images_a, fe)
    _check_images("images_b", images_b, fe)
    n_min = min(len(images_a), len(images_b))
    _check_kid_subset_size(kid_subset_size, metrics, n_min)
    binary = any(m in metrics for m in ("fid", "kid", "prc"))
    raw = torch_fidelity.calculate_metrics(
        input1=UInt8Images(images_a, fe.channels),
        input2=UInt8Images(images_b, fe.channels) if binary else None,  # IS alone needs no b
        cuda=torch.device(device).type == "cuda",
        batch_size=batch_size,
        **_extractor_kwargs(fe, extractor, metrics),
        **_sample_kwargs(len(images_a), n_min, kid_subsets, kid_subset_size, isc_splits),
        cache=False,  # torch-fidelity reloads its cache files with full pickle: never use it
        save_cpu_ram=True,  # no DataLoader worker processes for tensors already in memory
        rng_seed=seed,
        verbose=verbose,
    )
    out: dict[str, float | str] = {KEY_EXTRACTOR: fe.label}
    out.update({_RESULT_KEYS[k]: float(v) for k, v in raw.items() if k in _RESULT_KEYS})
    return out


def fidelity_table(
    sets: dict[str, tuple[Tensor, Tensor]],
    reference: tuple[Tensor, Tensor],
    clf: RealClassifier | None,
    extractor: str,
    inception_weights: str | Path | None,
    kid_subset_size: int | None,
    device: torch.device,
    seed: int = 0,
    batch_size: int = 64,
) -> dict:
    """Fidelity of each named class-stratified set against the reference split.

    ``sets`` and ``reference`` are ``(uint8 images, labels)``. Per set: FID against the whole
    reference and KID (×10³) against reference subsets with the set's class counts, both with
    95% bootstrap intervals (:func:`~gandistill.evaluation.stratified.stratified_scores`), and
    torch-fidelity's IS and precision/recall. The reference's features are extracted once. The
    extractor's name is kept once, under ``extractor``.
    """
    fe = _resolve_extractor(extractor, clf, inception_weights)
    layer = FEATURE_LAYERS[extractor]["kid"]
    ref_images, ref_labels = reference
    _check_images("reference", ref_images, fe)

    def features(images: Tensor) -> Any:
        return extract_features(
            images, fe.name, layer, fe.channels, fe.kwargs, str(device), batch_size
        )

    ref_features = features(ref_images)
    table: dict = {KEY_EXTRACTOR: fe.label}
    for name, (images, labels) in sets.items():
        _check_images(name, images, fe)
        if kid_subset_size is not None and not 2 <= kid_subset_size <= len(images):
            raise ConfigError(
                f"KID subset size {kid_subset_size} must lie in 2..{len(images)} (the set's size)"
            )
        scores = stratified_scores(
            features(images),
            labels.numpy(),
            ref_features,
            ref_labels.numpy(),
            seed,
            kid_subset_size,
        )
        rest = fidelity_metrics(
            images, ref_images, clf, extractor, inception_weights, str(device), ("isc", "prc")
        )
        rest.pop(KEY_EXTRACTOR)
        table[name] = {**scores, **rest}
    return table
