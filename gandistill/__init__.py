"""gandistill: distil a labelled image dataset into a tiny synthetic set through a GAN prior.

The public API, one name per thing a user does: :func:`train` a generator, :func:`distill` a
set (:class:`Distiller` to resume one), :func:`evaluate_distilled` / :func:`evaluate_generator`,
:func:`build_baseline` for coresets, :func:`quickstart` for the whole pipeline; the files they
write load with :meth:`DistilledSet.load`, :func:`load_generator` and
:func:`load_generator_checkpoint`; every setting lives in a :class:`Config`
(:func:`load_config`); every user mistake raises a :class:`GandistillError`.
"""

__version__ = "0.1.0"

from gandistill.classifier import RealClassifier, class_consistency, get_classifier  # noqa: E402
from gandistill.config import Config, load_config  # noqa: E402
from gandistill.coreset import build_baseline  # noqa: E402
from gandistill.data import DatasetInfo, ImageTensors, load_dataset  # noqa: E402
from gandistill.distillation import Distiller, distill  # noqa: E402
from gandistill.errors import GandistillError  # noqa: E402
from gandistill.evaluation import evaluate_distilled, evaluate_generator  # noqa: E402
from gandistill.files import (  # noqa: E402
    DistilledSet,
    GeneratorCheckpoint,
    load_generator,
    load_generator_checkpoint,
)
from gandistill.gan import GANTrainer, TrainResult, train  # noqa: E402
from gandistill.parallel import launch  # noqa: E402
from gandistill.pipelines import (  # noqa: E402
    QuickstartResult,
    quickstart,
    quickstart_config,
    run_benchmark,
)

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
    "run_benchmark",
    "train",
]
