"""gandistill: distil a labelled image dataset into a tiny synthetic set through a GAN prior."""

__version__ = "0.1.0"

from gandistill.artifacts import (  # noqa: E402
    DistilledSet,
    GeneratorCheckpoint,
    load_generator,
    load_generator_checkpoint,
)
from gandistill.baselines import build_baseline  # noqa: E402
from gandistill.classifier import RealClassifier, class_consistency, get_classifier  # noqa: E402
from gandistill.config import Config, load_config  # noqa: E402
from gandistill.data import DatasetInfo, ImageTensors, load_dataset  # noqa: E402
from gandistill.distill import Distiller, distill  # noqa: E402
from gandistill.errors import GandistillError  # noqa: E402
from gandistill.generator_report import evaluate_generator  # noqa: E402
from gandistill.parallel import launch  # noqa: E402
from gandistill.quickstart import QuickstartResult, quickstart, quickstart_config  # noqa: E402
from gandistill.report import evaluate_distilled  # noqa: E402
from gandistill.train import GANTrainer, TrainResult, train  # noqa: E402

__all__ = [
    "Config",
    "DatasetInfo",
    "DistilledSet",
    "Distiller",
    "GANTrainer",
    "GandistillError",
    "GeneratorCheckpoint",
    "QuickstartResult",
    "ImageTensors",
    "RealClassifier",
    "TrainResult",
    "__version__",
    "build_baseline",
    "class_consistency",
    "distill",
    "evaluate_distilled",
    "evaluate_generator",
    "get_classifier",
    "launch",
    "load_config",
    "load_dataset",
    "load_generator",
    "load_generator_checkpoint",
    "quickstart",
    "quickstart_config",
    "train",
]
