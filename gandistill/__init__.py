"""gandistill: distil a labelled image dataset into a tiny synthetic set through a GAN prior."""

__version__ = "0.1.0"

from gandistill.classifier import RealClassifier, class_consistency, get_classifier  # noqa: E402
from gandistill.config import Config, load_config  # noqa: E402
from gandistill.coreset.baselines import build_baseline
from gandistill.data import DatasetInfo, ImageTensors, load_dataset  # noqa: E402
from gandistill.distillation.loop import Distiller, distill
from gandistill.errors import GandistillError  # noqa: E402
from gandistill.evaluation.generator import evaluate_generator
from gandistill.evaluation.report import evaluate_distilled
from gandistill.files import (
    DistilledSet,
    GeneratorCheckpoint,
    load_generator,
    load_generator_checkpoint,
)
from gandistill.gan.trainer import GANTrainer, TrainResult, train
from gandistill.parallel import launch  # noqa: E402
from gandistill.pipelines.quickstart import QuickstartResult, quickstart, quickstart_config

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
