"""The options of a distilled set's evaluation: the profiles (how much of the protocol a report
runs) and the check of every argument of :func:`~gandistill.evaluation.report.evaluate_distilled`,
done before anything is trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from gandistill.config import EvalConfig
from gandistill.defaults import CROSS_ARCHS
from gandistill.errors import ConfigError
from gandistill.evaluation.fidelity import check_extractor
from gandistill.files import DistilledSet
from gandistill.fit import EVAL_ARCHS


@dataclass(frozen=True)
class Trim:
    """A profile's cuts to the protocol for the networks too costly for it (:data:`HEAVY_ARCHS`)."""

    max_epochs: int | None  # cap on the protocol's epochs (None: as configured)
    augment: str | None  # None: as configured
    n_models: int | None  # None: as configured


# the evaluation networks whose training under the DC protocol takes too long on a 2-core CPU
# (AlexNet at IPC 1 about 7 minutes per network, ResNet-18 at IPC 10 about an hour by estimate;
# ConvNet-3, MLP and LeNet take seconds to minutes): the ``cpu`` profile trims these alone
HEAVY_ARCHS = ("alexnet", "resnet18", "resnet18bn")


@dataclass(frozen=True)
class Profile:
    """How much evaluation to run, on top of the config's ``eval`` section (the protocol)."""

    max_epochs: int | None  # cap on the protocol's epochs (None: as configured)
    augment: str | None  # None: as configured
    n_models: int | None  # None: as configured
    full_epochs: int  # cap on the full-data run's epochs (it stops when validation stalls)
    full_patience: int  # epochs without a better validation accuracy before the rate drops
    grad_networks: int
    fidelity_real: int  # real training images per class in the fidelity / distribution sets
    heavy: Trim | None = None  # further cuts for the networks of HEAVY_ARCHS (None: none)


# quick: every network trimmed (300 epochs, no augmentation, one network in a report); full: the
# DC protocol for every network (a GPU's); cpu: the DC protocol where a 2-core CPU affords it,
# and the quick trim for the networks of HEAVY_ARCHS
PROFILES = {
    "quick": Profile(300, "none", 1, 30, 3, 3, 100),
    "full": Profile(None, None, None, 100, 5, 10, 400),
    "cpu": Profile(None, None, None, 100, 5, 10, 400, heavy=Trim(300, "none", 1)),
}


def _trimmed(ec: EvalConfig, cut: Profile | Trim) -> EvalConfig:
    return replace(
        ec,
        epochs=min(ec.epochs, cut.max_epochs or ec.epochs),
        augment=cut.augment or ec.augment,
        n_models=cut.n_models or ec.n_models,
    )


def apply_profile(ec: EvalConfig, profile: Profile, arch: str | None = None) -> EvalConfig:
    """The protocol ``ec`` as ``profile`` trims it (fewer epochs, another augmentation, fewer
    networks); with ``arch``, the protocol of that network: ``ec.arch`` set to it and, when it
    is one of :data:`HEAVY_ARCHS`, the profile's ``heavy`` cuts applied too."""
    ec = _trimmed(ec, profile)
    if arch is None:
        return ec
    ec = replace(ec, arch=arch)
    if profile.heavy is not None and arch in HEAVY_ARCHS:
        ec = _trimmed(ec, profile.heavy)
    return ec


def check_archs(archs: Sequence[str]) -> list[str]:
    """``archs`` as a list when each is an evaluation network, named once; else a
    :class:`ConfigError`."""
    archs = list(archs)
    unknown = [a for a in archs if a not in EVAL_ARCHS]
    if unknown or len(set(archs)) != len(archs) or not archs:
        what = f"unknown architecture(s) {', '.join(unknown)}" if unknown else "repeated network"
        raise ConfigError(f"{what} (known: {', '.join(EVAL_ARCHS)})")
    return archs


def parse_archs(text: str) -> list[str]:
    """``"convnet,mlp"`` (``--archs``) → the checked list; ``"cross"`` is
    :data:`~gandistill.defaults.CROSS_ARCHS`."""
    if text.strip() == "cross":
        return list(CROSS_ARCHS)
    return check_archs([a.strip() for a in text.split(",")])


def checked_inputs(
    distilled: str | Path | DistilledSet,
    profile: str,
    extractor: str,
    inception_weights: str | None,
    archs: Sequence[str] | None,
    kid_subset_size: int | None,
) -> tuple[DistilledSet, Path | None, list[str], dict]:
    """Refuse bad arguments before anything is trained, and load the set when given a path.

    Returns:
        The set, its path (None when given loaded), ``archs`` as a list (empty: the protocol's
        architecture) and the checked fidelity settings (keyword arguments of
        :func:`~gandistill.evaluation.fidelity.fidelity_table`).
    """
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile '{profile}' (known: {', '.join(PROFILES)})")
    inception_weights = check_extractor(extractor, inception_weights)
    archs = check_archs(archs) if archs else []
    source_path = None
    if not isinstance(distilled, DistilledSet):
        source_path = Path(distilled)
        distilled = DistilledSet.load(source_path)
    if kid_subset_size is not None and not 2 <= kid_subset_size <= len(distilled.labels):
        raise ConfigError(
            f"KID subset size {kid_subset_size} must lie in 2..{len(distilled.labels)} "
            "(the distilled set's size)"
        )
    fidelity_options = {
        "extractor": extractor,
        "inception_weights": inception_weights,
        "kid_subset_size": kid_subset_size,
    }
    return distilled, source_path, archs, fidelity_options
