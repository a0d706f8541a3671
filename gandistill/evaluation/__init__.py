"""Stage 3: evaluate distilled sets and generators (accuracy, fidelity, the field's metrics)."""

from gandistill.evaluation.generator import evaluate_generator
from gandistill.evaluation.report import evaluate_distilled

__all__ = ["evaluate_distilled", "evaluate_generator"]
