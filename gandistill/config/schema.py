"""The typed configuration: one dataclass per section of a config file, and :class:`Config`.

A config file is a mapping of sections (``data``, ``model``, ``train``, ``classifier``) plus the
top-level keys of :class:`Config`. Field metadata carries the checks (``choices``, ``min``,
``max``) so validation lives next to the default it guards; :mod:`gandistill.config.loading`
applies them (and refuses NaN, infinities and integers beyond 64 bits for every key).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Upper bounds of the sizes: far above any use of the package, far below what would exhaust the
# memory of a large machine, so that a slip of a few digits (batch_size 1000000000) is refused
# when the config is loaded instead of failing in an allocation, or running for ages, later.
MAX_BATCH = 8192  # images in a batch: as RGB 64² float32 already 1.5 GiB, before any layer
MAX_WIDTH = 1024  # channels of a ConvNet layer (the classifier's, the matching network's)
MAX_GAN_WIDTH = 512  # base width of G and D, whose widest block has 8× as many channels
MAX_LATENT_DIM = 4096  # length of z (GANs use 100 to 512)
MAX_DEPTH = 8  # ConvNet blocks; each halves the image, so 8 take even 256 px to 1
MAX_IMAGE_SIZE = 512  # resized images, px (the generator makes 28, 32 or 64)
MAX_CANDIDATES = 1024  # generator samples drawn per latent slot
MAX_SAMPLES_PER_CLASS = 10_000  # generated images per class scored after training
MAX_BETA = 0.9999  # Adam's betas must stay below 1

# distill.space: what a distillation optimises; the first two decode latents through a generator
SPACES = ("latent", "hybrid", "pixel")
GENERATOR_SPACES = ("latent", "hybrid")


def _f(
    default: Any,
    help: str,
    *,
    choices: tuple | None = None,
    min: float | None = None,
    max: float | None = None,
    below: float | None = None,
) -> Any:
    """A dataclass field with its help text and validation rules in metadata (``max`` is an
    inclusive upper bound, ``below`` an exclusive one)."""
    meta = {"help": help, "choices": choices, "min": min, "max": max, "below": below}
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    name: str = _f("mnist5k", "dataset registry name (see gandistill.data.DATASETS)")
    root: str = _f("data", "folder of a torchvision set or image folder; file for 'tensors'")
    download: bool = _f(False, "let torchvision download the dataset into root")
    image_size: int = _f(
        0, "resize images to this size (0 keeps the native size)", min=0, max=MAX_IMAGE_SIZE
    )
    channels: int = _f(0, "force 1 or 3 channels (0 keeps the native count)", choices=(0, 1, 3))
    test_fraction: float = _f(0.2, "test share for sets without an official split", min=0.0)
    val_fraction: float = _f(
        0.1,
        "validation share carved from the training split for choices and stops "
        "(0: none, the test split serves instead)",
        min=0.0,
        below=0.5,
    )
    split_seed: int = _f(
        0, "seed of the carved splits (validation; test for sets without an official one)"
    )


@dataclass
class ModelConfig:
    latent_dim: int = _f(64, "size of the generator's latent code z", min=1, max=MAX_LATENT_DIM)
    g_width: int = _f(
        64, "generator base width (channels of its last block)", min=1, max=MAX_GAN_WIDTH
    )
    d_width: int = _f(
        32, "discriminator base width (channels of its first block)", min=1, max=MAX_GAN_WIDTH
    )


@dataclass
class TrainConfig:
    iterations: int = _f(3000, "number of (D step, G step) iterations", min=1)
    max_minutes: float = _f(
        0.0,
        "budget in minutes of training time, summed over resumes (0: none); a run that spends "
        "it stops after that iteration and writes its generator as a finished run does",
        min=0.0,
    )
    batch_size: int = _f(
        64, "real (and fake) images per step, class-balanced", min=1, max=MAX_BATCH
    )
    lr_g: float = _f(2e-4, "generator learning rate (Adam)", min=0.0)
    lr_d: float = _f(2e-4, "discriminator learning rate (Adam)", min=0.0)
    beta1: float = _f(0.0, "Adam beta1", min=0.0, max=MAX_BETA)
    beta2: float = _f(0.9, "Adam beta2", min=0.0, max=MAX_BETA)
    loss: str = _f("hinge", "adversarial loss", choices=("hinge", "ns"))
    dist_kind: str = _f("mmd", "distribution-matching term", choices=("mmd", "fm", "none"))
    dist_weight: float = _f(1.0, "weight of the distribution term (0 turns it off)", min=0.0)
    dist_features: str = _f(
        "disc", "features for the distribution term", choices=("disc", "random")
    )
    augment: str = _f("translation,cutout,color", "DiffAugment policy before D ('' for none)")
    mode_seeking_weight: float = _f(
        0.2,
        "weight of the mode-seeking term (Mao et al. 2019): G is rewarded for samples of one "
        "class that differ as much as their latents do, up to real images' spread; without it "
        "the generator collapses within each class (0 turns it off)",
        min=0.0,
    )
    ema_decay: float = _f(0.999, "decay of the generator's weight EMA", min=0.0, max=1.0)
    init_from: str = _f(
        "",
        "a generator file whose training run this one continues, from its run folder's newest "
        "checkpoint (distill-generator sets it; '' starts from scratch)",
    )
    log_every: int = _f(10, "iterations between TensorBoard scalars", min=1)
    sample_every: int = _f(250, "iterations between image grids", min=1)
    checkpoint_every: int = _f(500, "iterations between resumable checkpoints", min=1)
    n_saved: int = _f(2, "resumable checkpoints kept", min=1)
    amp: bool = _f(
        True, "bfloat16 autocast of G and D (CUDA; CPUs with native bf16, AVX512-BF16/AMX)"
    )
    progress: bool = _f(True, "show a progress bar")
    eval_samples_per_class: int = _f(
        100,
        "EMA samples per class scored by the real-data classifier at the end (0: skip)",
        min=0,
        max=MAX_SAMPLES_PER_CLASS,
    )


@dataclass
class MatchConfig:
    """The pool-matching term that distils the training set into the generator (after DiM, Wang
    et al. 2023): networks trained on real data to different stages see a real batch and a
    generated batch of the same labels, and G is pulled to make them look alike to them."""

    weight: float = _f(
        0.0,
        "weight of the pool-matching term in G's loss (0: off; distill-generator turns it on)",
        min=0.0,
    )
    objective: str = _f(
        "embed",
        "embed: each class's mean embedding under the pool network (distribution matching with "
        "trained networks); logits: its log-probabilities of each real image and of the "
        "generated image in its place (DiM)",
        choices=("embed", "logits"),
    )
    tune: str = _f(
        "all",
        "which of G's weights the distillation updates (the adversarial and pool terms alike): "
        "all; blocks (the upsampling blocks after the stem); embed (the class embeddings)",
        choices=("all", "blocks", "embed"),
    )
    iterations: int = _f(400, "iterations that distill-generator adds to the source run", min=1)
    pool_size: int = _f(4, "networks in the pool, each at its own stage of training", min=1)
    max_age: int = _f(
        200, "SGD steps on real batches after which a pool network starts again", min=1
    )
    net_width: int = _f(128, "ConvNet width of the pool networks", min=1, max=MAX_WIDTH)
    net_depth: int = _f(3, "ConvNet depth of the pool networks", min=1, max=MAX_DEPTH)
    lr_net: float = _f(0.01, "SGD learning rate of the pool networks (momentum 0.9)", min=0.0)
    augment: str = _f(
        "dsa", "augmentation of both batches before the pool network", choices=("dsa", "none")
    )


@dataclass
class ClassifierConfig:
    width: int = _f(64, "ConvNet width of the real-data classifier", min=1, max=MAX_WIDTH)
    depth: int = _f(3, "ConvNet depth", min=1, max=MAX_DEPTH)
    epochs: int = _f(8, "training epochs on the real train split", min=1)
    batch_size: int = _f(128, "batch size", min=1, max=MAX_BATCH)
    lr: float = _f(0.01, "SGD learning rate (momentum 0.9, cosine schedule)", min=0.0)


@dataclass
class DistillConfig:
    """Latent (or pixel) optimisation by gradient or distribution matching."""

    ipc: int = _f(10, "images (latents) per class", min=1)
    space: str = _f(
        "latent",
        "what is optimised and stored: latent = latent codes decoded by the frozen generator (and "
        "feature offsets with feature_level), nothing else; hybrid = latent plus a penalised "
        "per-image pixel residual (stored as float32 images); pixel = the images themselves",
        choices=SPACES,
    )
    objective: str = _f(
        "gm",
        "gm: gradient matching; dm: distribution matching; krr: kernel ridge regression on the "
        "matching network's features (FRePo, Zhou et al. 2022), the set must predict real labels; "
        "mtt: trajectory matching (Cazenavette et al. 2022), mtt_syn_steps student steps on the "
        "set from an expert's checkpoint should land on its checkpoint mtt_expert_epochs later",
        choices=("gm", "dm", "krr", "mtt"),
    )
    distance: str = _f("dc", "gradient distance (gm)", choices=("dc", "mse", "cos"))
    init: str = _f(
        "auto",
        "auto: noise (pixel), best_of_k (latent, ipc < 10), real (latent, ipc >= 10); real = a "
        "random real subset (latent: inverted into the generator, the residual takes the rest); "
        "herding / kmeans = that coreset of the real data (see baselines) instead of a random one; "
        "best_of_k in pixel space = the latent start's images, decoded (needs a generator)",
        choices=("auto", "normal", "truncated", "best_of_k", "noise", "real", "herding", "kmeans"),
    )
    truncation: float = _f(1.0, "|z| bound of the truncated-normal init", min=0.0)
    latent_scale: float = _f(
        1.0,
        "psi: the normal and best_of_k inits draw latents as psi * N(0, I); below 1 the "
        "draws keep nearer the generator's typical sample of each class (0: that sample alone)",
        min=0.0,
        max=1.0,
    )
    init_candidates: int = _f(
        16, "candidates per slot for best_of_k and inversion", min=1, max=MAX_CANDIDATES
    )
    select: str = _f(
        "kcenter",
        "how best_of_k keeps ipc of its candidates in the real-data classifier's features: "
        "kcenter (the confident half, spread out), herding (mean matching), kmeans (a candidate "
        "per cluster)",
        choices=("kcenter", "herding", "kmeans"),
    )
    invert_steps: int = _f(300, "Adam steps of the GAN inversion behind latent init 'real'", min=0)
    outer_loop: int = _f(0, "matching steps per iteration (0: DC schedule by ipc)", min=0)
    inner_loop: int = _f(0, "network steps between matching steps (0: DC schedule)", min=0)
    max_iterations: int = _f(200, "outer iterations (each draws a fresh network)", min=1)
    max_minutes: float = _f(
        0.0, "budget in minutes of distillation time, summed over resumes (0: none)", min=0.0
    )
    checkpoint_every: int = _f(
        25,
        "iterations between resumable states saved next to the output (set.pt: set.state.pt; "
        "0: only on Ctrl-C), removed once the set is written",
        min=0,
    )
    patience: int = _f(0, "stop when the smoothed loss stalls this many iterations (0: off)", min=0)
    tolerance: float = _f(0.01, "relative improvement that resets patience", min=0.0)
    optimizer: str = _f(
        "auto", "auto = adam (latent) / sgd (pixel)", choices=("auto", "sgd", "adam")
    )
    lr: float = _f(
        0.0, "learning rate of the set (0: 0.1 pixel gm, 1.0 pixel dm, 0.01 latent)", min=0.0
    )
    lr_schedule: str = _f(
        "constant",
        "learning rate of the set: constant, or cosine to 0 over max_iterations",
        choices=("constant", "cosine"),
    )
    momentum: float = _f(0.5, "SGD momentum of the set", min=0.0)
    lr_net: float = _f(0.01, "SGD learning rate of the matching network (momentum 0.5)", min=0.0)
    real_batch: int = _f(
        0,
        "real images per class per matching step (0: 64 for latent gm, 256 otherwise)",
        min=0,
        max=MAX_BATCH,
    )
    batch_train: int = _f(256, "batch size of the inner network training", min=1, max=MAX_BATCH)
    net_width: int = _f(128, "matching ConvNet width", min=1, max=MAX_WIDTH)
    net_depth: int = _f(3, "matching ConvNet depth", min=1, max=MAX_DEPTH)
    net_norm: str = _f(
        "instancenorm", "matching ConvNet norm", choices=("instancenorm", "batchnorm", "none")
    )
    net_archs: str = _f(
        "",
        "draw each iteration's matching network from these ConvNet variants, comma-separated "
        "NORM:DEPTH:WIDTH (e.g. instancenorm:3:128,batchnorm:2:64,none:4:128), so the set is "
        "matched on several architectures; empty: net_norm/net_depth/net_width alone",
    )
    dsa: bool = _f(False, "Siamese augmentation of real and synthetic batches (DSA)")
    amp: bool = _f(True, "bfloat16 autocast of the matching step (CUDA; CPUs with native bf16)")
    grad_mode: str = _f(
        "auto",
        "per-class gradients: auto = vmap on CUDA, loop on CPU",
        choices=("auto", "vmap", "loop"),
    )
    latent_penalty: float = _f(
        0.0, "weight of (|z|/sqrt(d) - 1)^2 keeping latents on the prior", min=0.0
    )
    latent_clip: float = _f(0.0, "clamp |z|/sqrt(d) to this (0: off)", min=0.0)
    grad_clip: float = _f(0.0, "clip the set's gradient norm (0: off)", min=0.0)
    feature_level: int = _f(
        -1, "also optimise an offset of G's feature map after this block (-1: off)", min=-1
    )
    feature_penalty: float = _f(0.0, "weight of the mean squared feature offset", min=0.0)
    discrimination: float = _f(
        0.0,
        "weight of a discrimination term (CAFE, Wang et al. 2022): real embeddings classified "
        "by cosine to the synthetic class means must find their own class (0: off)",
        min=0.0,
    )
    dm_weight: float = _f(
        0.0,
        "objective gm or krr: weight of an added distribution-matching term on the same network's "
        "embeddings (0: off)",
        min=0.0,
    )
    dm_layers: bool = _f(
        False,
        "distribution matching also on every earlier block's output of the matching network "
        "(CAFE's layer-wise feature alignment, Wang et al. 2022), each block's squared distance "
        "scaled to the embedding's size; needs objective dm or dm_weight > 0",
    )
    net_warmup: int = _f(
        0,
        "train each fresh matching network on balanced real batches for a number of SGD steps "
        "drawn from 0..net_warmup before matching (trained feature extractors, after IDM's "
        "model queue; 0: random networks as DC/DM)",
        min=0,
    )
    pool_size: int = _f(
        0,
        "keep this many matching networks across iterations and train the one drawn each "
        "iteration for one epoch on the current set (FRePo's model pool, Zhou et al. 2022); "
        "0: a fresh network every iteration, as DC/DM",
        min=0,
    )
    pool_steps: int = _f(
        100,
        "a pooled network trained this many epochs on the set is replaced by a fresh one",
        min=1,
    )
    ce_weight: float = _f(
        0.0,
        "weight of the matching network's cross-entropy on the synthetic images (IDM's "
        "class-aware term; useful with net_warmup; 0: off)",
        min=0.0,
    )
    mtt_experts: int = _f(
        4,
        "mtt: expert networks trained on the real training split (the paper: 100; trained "
        "once per dataset and setting, cached under <cache_dir>/trajectories, grown when more "
        "are asked)",
        min=1,
    )
    mtt_train_epochs: int = _f(
        8, "mtt: epochs of each expert, its parameters saved after every one", min=1
    )
    mtt_teacher_lr: float = _f(
        0.01,
        "mtt: the experts' SGD learning rate (no momentum), and the student's at the start",
        min=0.0,
    )
    mtt_expert_epochs: int = _f(
        2, "mtt: the target checkpoint lies this many expert epochs after the start", min=1
    )
    mtt_max_start_epoch: int = _f(
        4, "mtt: start checkpoints drawn from epochs 0..mtt_max_start_epoch-1", min=1
    )
    mtt_syn_steps: int = _f(
        0, "mtt: student SGD steps on the set per iteration (0: 50 at ipc 1, 30 above)", min=0
    )
    mtt_batch_syn: int = _f(
        0, "mtt: images per student step (0: the whole set)", min=0, max=MAX_BATCH
    )
    mtt_lr_lr: float = _f(
        1e-5, "mtt: learning rate of the learnable student learning rate (0: fixed)", min=0.0
    )
    mtt_buffer: str = _f(
        "", "mtt: expert trajectories file (empty: <cache_dir>/trajectories/<key>.pt)"
    )
    residual_penalty: float = _f(1.0, "space hybrid: weight of the mean squared residual", min=0.0)
    teacher_logits: bool = _f(
        True, "store the real-data classifier's logits on the final set (soft labels)"
    )
    eval_every: int = _f(50, "iterations between quick accuracy checks (0: only at the end)", min=0)
    eval_epochs: int = _f(300, "epochs of the quick check (one network, no augmentation)", min=1)
    log_every: int = _f(1, "iterations between TensorBoard scalars", min=1)
    image_every: int = _f(25, "iterations between image grids", min=1)
    progress: bool = _f(True, "show a progress bar")


@dataclass
class EvalConfig:
    """The downstream-accuracy protocol of the DC/DSA/DM papers (see docs/benchmarks.md)."""

    arch: str = _f(
        "convnet",
        "evaluation network",
        choices=("convnet", "mlp", "lenet", "alexnet", "resnet18", "resnet18bn"),
    )
    epochs: int = _f(1000, "epochs on the distilled set (300 is the no-augment norm)", min=1)
    augment: str = _f("dc", "training augmentation", choices=("none", "dc", "dsa"))
    lr: float = _f(0.01, "SGD learning rate, x0.1 at half the epochs", min=0.0)
    momentum: float = _f(0.9, "SGD momentum", min=0.0)
    weight_decay: float = _f(5e-4, "SGD weight decay", min=0.0)
    batch_size: int = _f(256, "training batch size", min=1, max=MAX_BATCH)
    n_models: int = _f(3, "fresh networks trained; mean ± std reported", min=1)
    kd_temperature: float = _f(
        4.0, "soft labels: softmax temperature of teacher and student", min=0.01
    )
    kd_alpha: float = _f(
        0.7, "soft labels: weight of the KL term (1 - alpha: hard labels)", min=0.0, max=1.0
    )
    amp: bool = _f(
        False,
        "bfloat16 autocast of the networks' training (CUDA; CPUs with native bf16): about 1.5x "
        "faster there; off by default, as the field's protocol trains in float32",
    )


@dataclass
class Config:
    seed: int = _f(0, "seed of every random draw in the run")
    device: str = _f("auto", "auto | cpu | cuda | cuda:N")
    run_dir: str = _f("checkpoints/mnist5k", "output folder of the run")
    cache_dir: str = _f("checkpoints", "cache of real-data classifiers (<cache_dir>/classifiers)")
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    match: MatchConfig = field(default_factory=MatchConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
