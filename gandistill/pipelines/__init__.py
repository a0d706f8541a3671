"""Runs that chain the stages: the quickstart and the benchmark of every method."""

from gandistill.pipelines.benchmark import run_benchmark
from gandistill.pipelines.quickstart import QuickstartResult, quickstart, quickstart_config

__all__ = ["QuickstartResult", "quickstart", "quickstart_config", "run_benchmark"]
