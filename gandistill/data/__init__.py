"""Datasets: the registry of loaders and the in-memory split they return."""

import gandistill.data.loaders  # noqa: F401  (importing it registers the built-in loaders)
from gandistill.data.datasets import DATASETS, load_dataset, register_dataset
from gandistill.data.splits import Loaded, Splits
from gandistill.data.tensors import (
    BATCH_STREAM,
    BalancedBatches,
    DatasetInfo,
    ImageTensors,
    require_compatible,
)

__all__ = [
    "BATCH_STREAM",
    "DATASETS",
    "BalancedBatches",
    "DatasetInfo",
    "ImageTensors",
    "Loaded",
    "Splits",
    "load_dataset",
    "register_dataset",
    "require_compatible",
]
