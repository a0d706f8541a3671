"""Default values of the options that both the command line and the Python API take.

One source of truth, as torch-fidelity keeps in its ``defaults.py``: the argparse declarations in
:mod:`gandistill.cli` and the signatures of the functions the commands call (for instance
:func:`~gandistill.evaluation.report.evaluate_distilled`,
:func:`~gandistill.evaluation.generator.evaluate_generator`,
:func:`~gandistill.pipelines.benchmark.run_benchmark`) read these constants, so
``gandistill evaluate`` and ``evaluate_distilled(...)`` cannot drift apart.

Constants only, and no imports: any module of the package may import this one without risking
an import cycle, and the command line reads it before any stage is needed.
"""

# evaluation (gandistill evaluate, gandistill benchmark --profile)
EVAL_PROFILE = "quick"  # "quick" or "full": how many networks and epochs score a set
# a ConvNet of its own trained on the training split (not the classifier that selects sets and
# gives soft labels): offline, no weights to download
FEATURE_EXTRACTOR = "independent"

# gandistill benchmark
BENCHMARK_IPCS = (1, 10)  # images per class of the rows
# --archs cross: the matching ConvNet and the four networks distillation never runs on
CROSS_ARCHS = ("convnet", "mlp", "lenet", "alexnet", "resnet18")
BENCHMARK_MINUTES = 10.0  # wall-clock budget of each optimised set
BENCHMARK_SEEDS = 1  # seeds per row: cfg.seed + 0..N-1
BENCHMARK_MAX_SEEDS = 100  # more would run a row's method that many times: for ages
BENCHMARK_OUT = "checkpoints/benchmark"  # the command line's output folder (required in the API)

# gandistill distill-generator: the match section it sets unless the config or --set says
# otherwise (see docs/benchmarks.md, "Distilling into the generator")
DISTILL_GENERATOR_PRESET = ("match.weight=0.05",)
DISTILL_GENERATOR_DIR = "distilled"  # its run folder, beside the source's generator file

# gandistill sample (a generator's grid)
SAMPLE_N_PER_CLASS = 8  # columns of the grid
SAMPLE_MAX_N_PER_CLASS = 256  # a wider grid would not show a sample per column on any screen
SAMPLE_SEED = 0  # seed of the latents
SAMPLE_DEVICE = "auto"  # CUDA when present
# how a set drawn with sample --ipc keeps its images among candidates, chosen on the validation
# split (docs/benchmarks.md, "Sets drawn from a generator")
SAMPLE_SELECT = "kmeans"
SAMPLE_CANDIDATES = 10  # candidates per kept image
# psi of the latent draws by IPC when --latent-scale is not given (1 otherwise): one image per
# class trains best as the class's typical sample (DC protocol, 5 draws: 88.7% at 0.3, 81.3% at
# 1); at IPC 10 truncation costs the spread the set needs ("Truncated latents" in the benchmarks)
SAMPLE_LATENT_SCALE = {1: 0.3}

# several processes (gandistill train|distill, gandistill.parallel.launch)
NPROC_PER_NODE = 1  # one process: no process group at all
NNODES = 1
NODE_RANK = 0
BACKEND = "auto"  # nccl on CUDA, gloo on CPU
