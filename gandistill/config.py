"""Typed configuration: one dataclass per stage, loaded from YAML and ``--set`` overrides.

A config file is a mapping of sections (``data``, ``model``, ``train``, ``classifier``) plus the
top-level keys of :class:`Config`. Unknown keys and wrong types are rejected with a
:class:`~gandistill.errors.ConfigError` naming the key. Field metadata carries the checks
(``choices``, ``min``) so validation lives next to the default it guards.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gandistill.errors import ConfigError


def _f(default: Any, help: str, *, choices: tuple | None = None, min: float | None = None) -> Any:
    """A dataclass field with its help text and validation rules in metadata."""
    return field(default=default, metadata={"help": help, "choices": choices, "min": min})


@dataclass
class DataConfig:
    name: str = _f("mnist5k", "dataset registry name (see gandistill.data.DATASETS)")
    root: str = _f("data", "folder of a torchvision set or image folder; file for 'tensors'")
    download: bool = _f(False, "let torchvision download the dataset into root")
    image_size: int = _f(0, "resize images to this size (0 keeps the native size)", min=0)
    channels: int = _f(0, "force 1 or 3 channels (0 keeps the native count)", choices=(0, 1, 3))
    test_fraction: float = _f(0.2, "test share for sets without an official split", min=0.0)
    split_seed: int = _f(0, "seed of the train/test split for sets without an official one")


@dataclass
class ModelConfig:
    latent_dim: int = _f(64, "size of the generator's latent code z", min=1)
    g_width: int = _f(64, "generator base width (channels of its last block)", min=1)
    d_width: int = _f(32, "discriminator base width (channels of its first block)", min=1)


@dataclass
class TrainConfig:
    iterations: int = _f(3000, "number of (D step, G step) iterations", min=1)
    batch_size: int = _f(64, "real (and fake) images per step, class-balanced", min=1)
    lr_g: float = _f(2e-4, "generator learning rate (Adam)", min=0.0)
    lr_d: float = _f(2e-4, "discriminator learning rate (Adam)", min=0.0)
    beta1: float = _f(0.0, "Adam beta1", min=0.0)
    beta2: float = _f(0.9, "Adam beta2", min=0.0)
    loss: str = _f("hinge", "adversarial loss", choices=("hinge", "ns"))
    dist_kind: str = _f("mmd", "distribution-matching term", choices=("mmd", "fm", "none"))
    dist_weight: float = _f(1.0, "weight of the distribution term (0 turns it off)", min=0.0)
    dist_features: str = _f(
        "disc", "features for the distribution term", choices=("disc", "random")
    )
    augment: str = _f("translation,cutout,color", "DiffAugment policy before D ('' for none)")
    ema_decay: float = _f(0.999, "decay of the generator's weight EMA", min=0.0)
    log_every: int = _f(10, "iterations between TensorBoard scalars", min=1)
    sample_every: int = _f(250, "iterations between image grids", min=1)
    checkpoint_every: int = _f(500, "iterations between resumable checkpoints", min=1)
    n_saved: int = _f(2, "resumable checkpoints kept", min=1)
    amp: bool = _f(True, "mixed precision (bfloat16 autocast) on CUDA; ignored on CPU")
    progress: bool = _f(True, "show a progress bar")
    eval_samples_per_class: int = _f(
        100, "EMA samples per class scored by the real-data classifier at the end (0: skip)", min=0
    )


@dataclass
class ClassifierConfig:
    width: int = _f(64, "ConvNet width of the real-data classifier", min=1)
    depth: int = _f(3, "ConvNet depth", min=1)
    epochs: int = _f(8, "training epochs on the real train split", min=1)
    batch_size: int = _f(128, "batch size", min=1)
    lr: float = _f(0.01, "SGD learning rate (momentum 0.9, cosine schedule)", min=0.0)


@dataclass
class DistillConfig:
    """Latent (or pixel) optimisation by gradient or distribution matching."""

    ipc: int = _f(10, "images (latents) per class", min=1)
    space: str = _f("latent", "what is optimised", choices=("latent", "pixel"))
    objective: str = _f(
        "gm",
        "gm: gradient matching; dm: distribution matching; krr: kernel ridge regression on the "
        "matching network's features (FRePo, Zhou et al. 2022), the set must predict real labels",
        choices=("gm", "dm", "krr"),
    )
    distance: str = _f("dc", "gradient distance (gm)", choices=("dc", "mse", "cos"))
    init: str = _f(
        "auto",
        "auto: noise (pixel), best_of_k (latent, ipc < 10), real (latent, ipc >= 10); real = a "
        "random real subset (latent: inverted into the generator, the residual takes the rest); "
        "herding / kmeans = that coreset of the real data (see baselines) instead of a random one",
        choices=("auto", "normal", "truncated", "best_of_k", "noise", "real", "herding", "kmeans"),
    )
    truncation: float = _f(1.0, "|z| bound of the truncated-normal init", min=0.0)
    init_candidates: int = _f(16, "candidates per slot for best_of_k and inversion", min=1)
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
    )
    batch_train: int = _f(256, "batch size of the inner network training", min=1)
    net_width: int = _f(128, "matching ConvNet width", min=1)
    net_depth: int = _f(3, "matching ConvNet depth", min=1)
    net_norm: str = _f(
        "instancenorm", "matching ConvNet norm", choices=("instancenorm", "batchnorm", "none")
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
    residual: bool = _f(True, "also optimise a per-image pixel residual (latent space)")
    residual_penalty: float = _f(1.0, "weight of the mean squared residual", min=0.0)
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
        choices=("convnet", "mlp", "lenet", "alexnet", "resnet18"),
    )
    epochs: int = _f(1000, "epochs on the distilled set (300 is the no-augment norm)", min=1)
    augment: str = _f("dc", "training augmentation", choices=("none", "dc", "dsa"))
    lr: float = _f(0.01, "SGD learning rate, x0.1 at half the epochs", min=0.0)
    momentum: float = _f(0.9, "SGD momentum", min=0.0)
    weight_decay: float = _f(5e-4, "SGD weight decay", min=0.0)
    batch_size: int = _f(256, "training batch size", min=1)
    n_models: int = _f(3, "fresh networks trained; mean ± std reported", min=1)
    kd_temperature: float = _f(
        4.0, "soft labels: softmax temperature of teacher and student", min=0.01
    )
    kd_alpha: float = _f(
        0.7, "soft labels: weight of the KL term (1 - alpha: hard labels)", min=0.0
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
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def _check_value(name: str, value: Any, tp: Any, meta: typing.Mapping) -> Any:
    """Type-check (and widen int to float) one value; apply ``choices``/``min`` rules."""
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, tp) and not (tp is int and isinstance(value, bool))
    if not ok:
        raise ConfigError(
            f"config key '{name}' expects {tp.__name__}, got {type(value).__name__} {value!r}"
        )
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"config key '{name}' must be one of {list(choices)}, got {value!r}")
    low = meta.get("min")
    if low is not None and value < low:
        raise ConfigError(f"config key '{name}' must be >= {low}, got {value!r}")
    return value


def from_dict(cls: type, data: Any, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a (possibly partial) mapping, rejecting unknown keys."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        where = f"section '{prefix.rstrip('.')}'" if prefix else "the config"
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise ConfigError(f"unknown config key '{prefix}{key}' (known: {', '.join(fields)})")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = from_dict(tp, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _check_value(prefix + name, value, tp, fields[name].metadata)
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict:
    """Plain nested dict of a config (YAML- and ``weights_only``-safe)."""
    return dataclasses.asdict(cfg)


def apply_overrides(data: dict, overrides: typing.Iterable[str]) -> dict:
    """Apply ``section.key=value`` strings to a raw config mapping (values parsed as YAML)."""
    data = dict(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override '{item}' is not of the form section.key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        *parents, leaf = key.strip().split(".")
        node = data
        for part in parents:
            child = node.get(part)
            child = dict(child) if isinstance(child, dict) else {} if child is None else child
            if not isinstance(child, dict):
                raise ConfigError(f"override '{item}': '{part}' is not a section")
            node[part] = child
            node = child
        node[leaf] = value
    return data


def read_yaml(path: str | Path) -> dict:
    """Read a YAML mapping, turning every failure into a one-line ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"malformed YAML in {path}{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping, got {type(data).__name__}")
    return data


def load_config(path: str | Path | None = None, overrides: typing.Iterable[str] = ()) -> Config:
    """Load a :class:`Config` from an optional YAML file plus ``--set`` overrides."""
    data = read_yaml(path) if path is not None else {}
    return from_dict(Config, apply_overrides(data, overrides))


def config_from_dict(data: dict) -> Config:
    """Rebuild a :class:`Config` saved with a checkpoint."""
    return from_dict(Config, data)


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def lookup(data: typing.Mapping, dotted: str) -> Any:
    """The value of a dotted key (``distill.ipc``) in a nested config dict."""
    for part in dotted.split("."):
        data = data[part]
    return data


def check_unchanged(saved: dict, cfg: Config, keys: typing.Iterable[str], where: str) -> None:
    """Refuse to resume a run whose saved config (dict) differs from ``cfg`` in ``keys``.

    Raises:
        ConfigError: naming the first differing key, both values and ``where`` the run lies
            (e.g. ``saved in set.state.pt``).
        KeyError, TypeError: ``saved`` lacks a key (a damaged file; the caller says which).
    """
    keys = tuple(keys)
    theirs, mine = [lookup(saved, key) for key in keys], to_dict(cfg)
    for key, there in zip(keys, theirs, strict=True):
        now = lookup(mine, key)
        if there != now:
            raise ConfigError(
                f"cannot resume: '{key}' differs from the run {where} ({there!r} there, "
                f"{now!r} now)"
            )


# --- settings derived from others -------------------------------------------------------------

# (outer_loop, inner_loop) of the DC reference implementation, by images per class
DC_SCHEDULE = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


def default_loops(ipc: int) -> tuple[int, int]:
    """``(outer_loop, inner_loop)``: the DC schedule where it is tabulated; in between, outer =
    ipc and the inner loop interpolated linearly between the neighbouring entries; above 50, the
    IPC-50 entry."""
    if ipc in DC_SCHEDULE:
        return DC_SCHEDULE[ipc]
    if ipc > max(DC_SCHEDULE):
        return DC_SCHEDULE[max(DC_SCHEDULE)]
    lo = max(k for k in DC_SCHEDULE if k < ipc)
    hi = min(k for k in DC_SCHEDULE if k > ipc)
    inner_lo, inner_hi = DC_SCHEDULE[lo][1], DC_SCHEDULE[hi][1]
    return ipc, round(inner_lo + (inner_hi - inner_lo) * (ipc - lo) / (hi - lo))


def resolve_init(dc: DistillConfig) -> str:
    """The initialisation ``auto`` stands for. Latent space: best-of-K generator samples at small
    IPC (at IPC 1 they score 79% against 58% for one random real image per class on mnist5k),
    a random real subset inverted into the generator from IPC 10 (where generator samples fall
    behind real images: 88% against 95%)."""
    if dc.init != "auto":
        return dc.init
    if dc.space == "pixel":
        return "noise"
    return "best_of_k" if dc.ipc < 10 else "real"


def resolve(cfg: Config, device_type: str) -> Config:
    """``cfg`` as a run on ``device_type`` ('cpu', 'cuda') uses it: see :func:`resolve_distill`."""
    return dataclasses.replace(cfg, distill=resolve_distill(cfg.distill, device_type))


def resolve_distill(dc: DistillConfig, device_type: str) -> DistillConfig:
    """``dc`` with every ``auto`` (or 0-means-derived) setting replaced by the value a run on
    ``device_type`` ('cpu', 'cuda') uses, and the cross-field rules checked: what distillation
    saves with its set, so the artifact shows what actually ran."""
    latent, gm, cuda = dc.space == "latent", dc.objective == "gm", device_type == "cuda"
    outer, inner = default_loops(dc.ipc)
    dc = dataclasses.replace(
        dc,
        init=resolve_init(dc),
        outer_loop=dc.outer_loop or outer,
        inner_loop=dc.inner_loop or inner,
        optimizer=dc.optimizer if dc.optimizer != "auto" else ("adam" if latent else "sgd"),
        lr=dc.lr or (0.01 if latent else 0.1 if gm else 1.0),
        real_batch=dc.real_batch or (64 if latent and gm else 256),
        grad_mode=dc.grad_mode if dc.grad_mode != "auto" else ("vmap" if cuda else "loop"),
    )
    check_distill(dc)
    return dc


PIXEL_INIT_CHOICES = ("noise", "real", "herding", "kmeans")
LATENT_INIT_CHOICES = ("normal", "truncated", "best_of_k", "real", "herding", "kmeans")


def check_distill(dc: DistillConfig) -> None:
    """The rules between distill settings that one key's range cannot express."""
    if dc.space == "pixel" and dc.init not in (*PIXEL_INIT_CHOICES, "auto"):
        raise ConfigError(
            f"init '{dc.init}' is for latent space; pixel space takes noise, real, herding or "
            "kmeans"
        )
    if dc.space == "latent" and dc.init not in (*LATENT_INIT_CHOICES, "auto"):
        raise ConfigError(
            f"init '{dc.init}' is for pixel space; latent space takes "
            f"{', '.join(LATENT_INIT_CHOICES)}"
        )
    if dc.objective == "dm" and dc.dm_weight > 0:
        raise ConfigError(
            "distill.dm_weight adds distribution matching to gradient matching; with "
            "objective dm set it to 0"
        )
    if dc.dm_layers and dc.objective != "dm" and dc.dm_weight == 0:
        raise ConfigError(
            "distill.dm_layers extends distribution matching; use objective dm or "
            "distill.dm_weight > 0"
        )
    if dc.pool_size and dc.objective == "gm" and dc.outer_loop > 1:
        raise ConfigError(
            "distill.pool_size trains pooled networks between iterations, so it takes one "
            f"matching step per network; objective gm at ipc {dc.ipc} takes "
            f"{dc.outer_loop} (set distill.outer_loop=1 or use objective dm or krr)"
        )
