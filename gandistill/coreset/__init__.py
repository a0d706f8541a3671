"""Coreset baselines: real training images chosen by a selection rule, saved as a set."""

from gandistill.coreset.baselines import SPACE_REAL, build_baseline

__all__ = ["SPACE_REAL", "build_baseline"]
