"""Class-conditional GAN training with a distribution-matching term, on ignite's Engine.

One iteration = one discriminator step and one generator step on a class-balanced real batch; the
generator loss adds ``dist_weight ×`` a class-conditional MMD² (or feature-matching) term between
real and generated features. Every random draw of iteration ``i`` comes from
``step_generator(seed, i)``, so a resumed run is bit-identical to an uninterrupted one on CPU.
Ctrl-C stops after the current iteration and saves a checkpoint of it (:class:`Interrupted`); a
killed run resumes from its newest checkpoint.

On several processes (:func:`gandistill.parallel.launch`, or ``torchrun``): generator and
discriminator are wrapped by ``idist.auto_model`` (DistributedDataParallel), ``train.batch_size``
is the global batch (each rank draws ``batch_size / world_size`` from its own per-iteration
generator, so a run is reproducible for a seed and a world size), and only rank 0 logs, shows
progress and writes files. Checkpoints hold the unwrapped modules, so they resume on any number
of processes. Real batches come through ``idist.auto_dataloader`` over
:class:`~gandistill.data.BalancedBatches`, whose items are whole class-balanced per-rank batches
drawn from their iteration's own generator, so a resumed run draws what an uninterrupted one
would have (a DistributedSampler's per-epoch shuffle of single images would not give that).
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver, ProgressBar, TerminateOnNan
from ignite.handlers.tensorboard_logger import OptimizerParamsHandler, TensorboardLogger
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader
from torchvision.utils import make_grid

from gandistill.augment import check_policy, diff_augment
from gandistill.classifier import class_consistency, get_classifier
from gandistill.config import Config, config_from_dict, dump_yaml, to_dict
from gandistill.data import BalancedBatches, DatasetInfo, ImageTensors, load_dataset
from gandistill.errors import ArtifactError, ConfigError, DataError, GandistillError, Interrupted
from gandistill.files import GENERATOR_FILE, save_generator
from gandistill.gan.losses import ADVERSARIAL, DIST_TERMS, class_conditional
from gandistill.models import ConvNet, Discriminator, Generator, from_gan_range, to_gan_range
from gandistill.models.generator import SIZES as GENERATOR_SIZES
from gandistill.parallel import (
    all_mean,
    any_rank,
    barrier,
    is_main,
    main_only,
    rank,
    world_size,
)
from gandistill.runtime import InterruptFlag, resolve_device, step_generator

STATE_DIR = "state"
TB_DIR = "tb"
CONFIG_FILE = "config.yaml"
GRID_COLUMNS = 8
# Sections whose change makes a saved training state meaningless.
RESUME_LOCKED = ("seed", "data", "model", "train.batch_size", "train.loss", "train.iterations")


class TrainingDiverged(GandistillError):
    """A loss became NaN/inf; the run stopped at its last good checkpoint."""


def _no_sync(module: nn.Module):
    """DDP's ``no_sync`` for a wrapped module, a no-op context otherwise."""
    return module.no_sync() if isinstance(module, DistributedDataParallel) else nullcontext()


@torch.no_grad()
def class_grid(generator: nn.Module, z: Tensor, num_classes: int) -> Tensor:
    """A (C, H, W) grid in [0, 1]: one row per class, one column per latent of ``z``."""
    n = z.shape[0]
    labels = torch.arange(num_classes, device=z.device).repeat_interleave(n)
    images = generator(z.repeat(num_classes, 1), labels)
    return make_grid(from_gan_range(images.float()), nrow=n, padding=2, pad_value=1.0)


class _ConfigRecord:
    """Puts the resolved config in every ignite checkpoint (ignite saves ``state_dict()``)."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg

    def state_dict(self) -> dict:
        return to_dict(self.cfg)

    def load_state_dict(self, state: dict) -> None:  # checked before loading, see _check_resume
        pass


def _lookup(d: dict, dotted: str):
    for part in dotted.split("."):
        d = d[part]
    return d


def _finite(output: dict) -> bool:
    return all(math.isfinite(v) for v in output.values())


def _step_of(path: Path) -> int:
    """The iteration in an ignite checkpoint name (``checkpoint_120.pt`` → 120)."""
    return int("".join(ch for ch in path.stem.rsplit("_", 1)[-1] if ch.isdigit()) or 0)


class _SaveThenRemove(DiskSaver):
    """A DiskSaver that deletes an outdated checkpoint only once the next one is on disk.

    ignite removes the oldest file before writing the new one, so a kill in between would leave
    ``n_saved - 1`` checkpoints (none with ``n_saved: 1``); here it leaves one too many, which
    the next resume prunes.
    """

    def __init__(self, dirname: Path) -> None:
        super().__init__(dirname, require_empty=False, atomic=True)
        self._outdated: list[str] = []

    def remove(self, filename: str) -> None:
        self._outdated.append(filename)

    def __call__(self, checkpoint: dict, filename: str, metadata: dict | None = None) -> None:
        super().__call__(checkpoint, filename, metadata)
        for name in self._outdated:
            if name != filename:  # a re-save of the same step replaces it in place
                (self.dirname / name).unlink(missing_ok=True)
        self._outdated.clear()


class GANTrainer:
    """Builds models, optimisers and handlers for one run folder; :meth:`run` trains.

    Args:
        cfg: the resolved config.
        resume: continue from the newest checkpoint in ``cfg.run_dir/state``.
        overwrite: delete an earlier run's state, events and generator in ``cfg.run_dir`` first.
        data: pre-loaded ``(train, test, info)`` (tests pass tiny data); loaded from cfg otherwise.
    """

    def __init__(
        self,
        cfg: Config,
        resume: bool = False,
        overwrite: bool = False,
        data: tuple[ImageTensors, ImageTensors, DatasetInfo] | None = None,
    ) -> None:
        self.cfg = cfg
        tc = cfg.train
        try:
            check_policy(tc.augment)
        except ValueError as exc:
            raise ConfigError(f"config key 'train.augment': {exc}") from None
        self.device = resolve_device(cfg.device)
        self.world = world_size()
        if tc.batch_size % self.world:
            raise ConfigError(
                f"train.batch_size {tc.batch_size} (the global batch) must divide evenly over "
                f"{self.world} processes"
            )
        self.run_dir = Path(cfg.run_dir)
        self._check_run_dir(resume, overwrite)  # before any slow work, and before any write
        self.train_set, self.test_set, self.info = (
            data if data is not None else load_dataset(cfg.data)
        )
        info = self.info
        if info.image_size not in GENERATOR_SIZES:
            sizes = ", ".join(map(str, GENERATOR_SIZES))
            raise DataError(
                f"the generator makes {sizes} px images; dataset '{info.name}' has "
                f"{info.image_size} px (set data.image_size to one of {sizes})"
            )
        torch.manual_seed(cfg.seed)
        mc = cfg.model
        self.generator = Generator(
            info.num_classes, mc.latent_dim, mc.g_width, info.image_size, info.channels
        ).to(self.device)
        self.discriminator = Discriminator(
            info.num_classes, mc.d_width, info.image_size, info.channels
        ).to(self.device)
        self.feature_net: nn.Module | None = None
        if tc.dist_features == "random" and tc.dist_kind != "none":
            # a fixed, randomly initialised ConvNet: features that no player can game
            net = ConvNet(info.num_classes, info.channels, info.image_size, width=64)
            self.feature_net = net.to(self.device).eval().requires_grad_(False)
        self.ema = AveragedModel(
            self.generator, multi_avg_fn=get_ema_multi_avg_fn(tc.ema_decay), use_buffers=True
        )
        self.opt_g = torch.optim.Adam(self.generator.parameters(), tc.lr_g, (tc.beta1, tc.beta2))
        self.opt_d = torch.optim.Adam(
            self.discriminator.parameters(), tc.lr_d, (tc.beta1, tc.beta2)
        )
        # the modules the step calls: DDP wrappers on several processes (sharing parameters with
        # the plain modules, which are what checkpoints, EMA and evaluation use)
        self._G, self._D = self.generator, self.discriminator
        if self.world > 1:
            self._G = idist.auto_model(self.generator)
            self._D = idist.auto_model(self.discriminator)
        self.opt_g, self.opt_d = idist.auto_optim(self.opt_g), idist.auto_optim(self.opt_d)
        self.loss_d_fn, self.loss_g_fn = ADVERSARIAL[tc.loss]
        self.use_amp = tc.amp and self.device.type == "cuda"
        self.fixed_z = self.generator.sample_latents(GRID_COLUMNS, step_generator(cfg.seed, -1))
        self.engine = Engine(self._step)
        self.to_save = {
            "generator": self.generator,
            "discriminator": self.discriminator,
            "ema": self.ema,
            "opt_g": self.opt_g,
            "opt_d": self.opt_d,
            "trainer": self.engine,
            "config": _ConfigRecord(cfg),
        }
        self.diverged_at: int | None = None
        self.interrupt = InterruptFlag()
        self.interrupted_at: int | None = None
        main_only(self._init_run_dir, clear=overwrite and not resume)
        self._attach_handlers()
        if resume:
            self._resume()

    # --- set-up -----------------------------------------------------------------------------

    def _check_run_dir(self, resume: bool, overwrite: bool) -> None:
        state = self.run_dir / STATE_DIR
        has_run = state.is_dir() and any(state.glob("*.pt"))
        if resume and overwrite:
            raise ConfigError("--resume and --overwrite exclude each other")
        if resume and not has_run:
            raise ArtifactError(f"nothing to resume: no checkpoint in {state}")
        if has_run and not resume and not overwrite:
            raise ArtifactError(
                f"{self.run_dir} already holds a run; pass --resume to continue it "
                "or --overwrite to start over"
            )

    def _init_run_dir(self, clear: bool) -> None:
        """Clear an earlier run (``--overwrite``) and write the resolved config."""
        if clear:
            for sub in (STATE_DIR, TB_DIR):
                shutil.rmtree(self.run_dir / sub, ignore_errors=True)
            (self.run_dir / GENERATOR_FILE).unlink(missing_ok=True)
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / CONFIG_FILE).write_text(dump_yaml(self.cfg))
        except OSError as exc:
            raise ArtifactError(f"cannot write to {self.run_dir}: {exc.strerror}") from None

    def _attach_handlers(self) -> None:
        tc, engine = self.cfg.train, self.engine
        engine.add_event_handler(Events.ITERATION_COMPLETED, TerminateOnNan())
        engine.add_event_handler(Events.TERMINATE, self._on_terminate)

        def every_good(n: int):
            return lambda e, it: it % n == 0 and _finite(e.state.output)

        self.checkpoint = Checkpoint(
            self.to_save,
            _SaveThenRemove(self.run_dir / STATE_DIR),
            n_saved=tc.n_saved,
            global_step_transform=lambda e, _: e.state.iteration,
        )
        engine.add_event_handler(
            Events.ITERATION_COMPLETED(event_filter=every_good(tc.checkpoint_every)),
            self.checkpoint,
        )
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._stop_if_interrupted)
        engine.add_event_handler(Events.COMPLETED, self._on_completed)
        self.tb: TensorboardLogger | None = None
        if not is_main():  # rank 0 alone logs and shows progress
            return
        self.tb = TensorboardLogger(log_dir=str(self.run_dir / TB_DIR))
        self.tb.attach_output_handler(
            engine,
            Events.ITERATION_COMPLETED(every=tc.log_every),
            tag="train",
            output_transform=lambda out: out,
        )
        for name, opt in (("lr_g", self.opt_g), ("lr_d", self.opt_d)):
            self.tb.attach(
                engine,
                OptimizerParamsHandler(opt, param_name="lr", tag=f"train/{name}"),
                Events.ITERATION_COMPLETED(every=tc.log_every),
            )
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=tc.sample_every), self.log_grid)
        if tc.progress:
            ProgressBar(persist=True, desc="train").attach(
                engine, output_transform=lambda out: {k: out[k] for k in ("loss_d", "loss_g")}
            )

    def _resume(self) -> None:
        files = sorted((self.run_dir / STATE_DIR).glob("*.pt"), key=_step_of)
        path = files[-1]
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception:
            raise ArtifactError(f"{path} is not a readable training checkpoint") from None
        saved = state.get("config") if isinstance(state, dict) else None
        if not isinstance(saved, dict):
            raise ArtifactError(f"{path} is not a gandistill training checkpoint")
        mine = to_dict(self.cfg)
        for key in RESUME_LOCKED:
            if _lookup(saved, key) != _lookup(mine, key):
                raise ConfigError(
                    f"cannot resume: '{key}' differs from the run in {self.run_dir} "
                    f"({_lookup(saved, key)!r} there, {_lookup(mine, key)!r} now)"
                )
        config_from_dict(saved)  # validates
        Checkpoint.load_objects(self.to_save, state)
        self._adopt_checkpoints(files)

    def _adopt_checkpoints(self, files: list[Path]) -> None:
        """Let the new Checkpoint handler count the files of earlier processes towards
        ``n_saved`` (else every restart would leave ``n_saved`` more), prune the surplus, and
        delete the temporary files of saves that a kill cut short."""
        keep = self.cfg.train.n_saved
        saved = [(_step_of(p), p.name) for p in files[-keep:]]
        self.checkpoint.load_state_dict({"_saved": saved})
        barrier()  # every rank has read the newest checkpoint before rank 0 prunes
        if not is_main():
            return
        for old in files[:-keep]:
            old.unlink(missing_ok=True)
        for stray in (self.run_dir / STATE_DIR).glob("tmp*"):  # DiskSaver's atomic temp names
            if stray.is_file() and not stray.suffix:
                stray.unlink(missing_ok=True)

    # --- the step ----------------------------------------------------------------------------

    def _autocast(self):
        if self.use_amp:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return nullcontext()

    def _loader(self) -> DataLoader:
        """This rank's real batches from the next iteration on (see :class:`BalancedBatches`)."""
        tc = self.cfg.train
        batches = BalancedBatches(
            self.train_set,
            tc.batch_size // self.world,  # this rank's share of the global batch
            self.cfg.seed,
            self.engine.state.iteration,
            tc.iterations,
            self.world,
        )
        # batch_size=1 over whole batches (ignite's auto_dataloader divides a batch_size by the
        # world size; here the items are already per-rank batches), collated to (1, B, ...)
        logging.disable(logging.INFO)  # ignite logs the loader's kwargs at INFO on every call
        try:
            return idist.auto_dataloader(batches, batch_size=1, shuffle=False, num_workers=0)
        finally:
            logging.disable(logging.NOTSET)

    def _step(self, engine: Engine, data: tuple[Tensor, Tensor]) -> dict[str, float]:
        tc = self.cfg.train
        # the step's other draws; with several processes, each rank has its own stream
        it = engine.state.iteration
        gen = step_generator(self.cfg.seed, *((it,) if self.world == 1 else (it, -1 - rank())))
        real01, labels = data[0][0], data[1][0]  # (B, C, H, W) in [0, 1], (B,)
        batch = len(labels)
        real = to_gan_range(real01.to(self.device))
        labels = labels.to(self.device)
        G, D = self._G, self._D
        G.train()
        D.train()

        # discriminator step: real and fake in one pass (one forward per backward under DDP)
        z = self.generator.sample_latents(batch, gen)
        with self._autocast():
            with torch.no_grad():
                fake = G(z, labels)
            real_aug = diff_augment(real, tc.augment, gen)
            fake_aug = diff_augment(fake, tc.augment, gen)
            d_both = D(torch.cat([real_aug, fake_aug]), torch.cat([labels, labels]))
            d_real, d_fake = d_both[:batch], d_both[batch:]
            loss_d = self.loss_d_fn(d_real.float(), d_fake.float())
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        # generator step; with D features, one D pass gives both the logits and the features
        z = self.generator.sample_latents(batch, gen)
        use_dist = tc.dist_kind != "none" and tc.dist_weight > 0
        with self._autocast(), _no_sync(D):  # D's gradients here are discarded: do not sync them
            fake = G(z, labels)
            logits, fake_feat = D(diff_augment(fake, tc.augment, gen), labels, return_features=True)
            loss_adv = self.loss_g_fn(logits.float())
            dist = torch.zeros((), device=self.device)
            if use_dist:
                if self.feature_net is None:
                    with torch.no_grad():
                        real_feat = D(real_aug, labels, return_features=True)[1]
                else:
                    with torch.no_grad():
                        real_feat = self.feature_net.embed(real)
                    fake_feat = self.feature_net.embed(fake)
                dist = class_conditional(
                    DIST_TERMS[tc.dist_kind], real_feat.float(), labels, fake_feat.float(), labels
                )
            loss_g = loss_adv + tc.dist_weight * dist
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
        self.opt_g.step()
        self.ema.update_parameters(self.generator)

        return all_mean(
            {
                "loss_d": loss_d.item(),
                "loss_g": loss_adv.item(),
                "dist_loss": dist.item(),
                "d_acc_real": (d_real > 0).float().mean().item(),
                "d_acc_fake": (d_fake < 0).float().mean().item(),
            }
        )

    # --- events ------------------------------------------------------------------------------

    def log_grid(self, engine: Engine) -> None:
        if self.tb is None:
            return
        self.ema.module.eval()
        with self._autocast():
            grid = class_grid(self.ema.module, self.fixed_z, self.info.num_classes)
        self.tb.writer.add_image("images/samples", grid.float().cpu(), engine.state.iteration)

    def _stop_if_interrupted(self, engine: Engine) -> None:
        """After Ctrl-C: checkpoint this (completed) iteration and stop without finishing."""
        requested = any_rank(self.interrupt.requested)  # every rank stops at the same iteration
        if not requested or not _finite(engine.state.output):
            return  # a NaN stops the run through TerminateOnNan, at the last good checkpoint
        if engine.state.iteration % self.cfg.train.checkpoint_every:  # else already saved
            self.checkpoint(engine)
        barrier()  # no rank exits while rank 0 writes
        self.interrupted_at = engine.state.iteration
        engine.terminate(skip_completed=True)

    def _on_terminate(self, engine: Engine) -> None:
        if engine.state.output is not None and not _finite(engine.state.output):
            self.diverged_at = engine.state.iteration

    def _on_completed(self, engine: Engine) -> None:
        if self.diverged_at is not None:
            return
        if engine.state.iteration % self.cfg.train.checkpoint_every:
            self.checkpoint(engine)
        self._write_generator(engine)

    def _write_generator(self, engine: Engine) -> None:
        if not is_main():
            return
        self.log_grid(engine)
        save_generator(
            self.run_dir / GENERATOR_FILE,
            self.generator,
            self.ema.module.state_dict(),
            self.cfg,
            self.info,
            engine.state.iteration,
        )

    def run(self) -> TrainResult:
        """Train to ``train.iterations``, write ``generator.pt`` and score it.

        Raises:
            Interrupted: Ctrl-C stopped training after a completed iteration, which was saved.
        """
        start = time.perf_counter()
        iterations = self.cfg.train.iterations
        try:
            if self.engine.state.iteration >= iterations:
                # resumed a finished run (maybe killed before it wrote the generator): ignite
                # would start over at iteration 0; only the end-of-run writes are left
                self._write_generator(self.engine)
            else:
                with self.interrupt:
                    self.engine.run(self._loader(), max_epochs=1, epoch_length=iterations)
            if self.interrupted_at is not None:
                raise Interrupted(
                    self.interrupted_at,
                    str(self.checkpoint.last_checkpoint),
                    self.interrupt.signum,
                )
            if self.diverged_at is not None:
                last = self.checkpoint.last_checkpoint
                where = (
                    f"last good checkpoint: {self.run_dir / STATE_DIR / last}"
                    if last
                    else "no checkpoint was written before it"
                )
                raise TrainingDiverged(
                    f"a loss became NaN/inf at iteration {self.diverged_at}; "
                    f"training stopped ({where})"
                )
            seconds = time.perf_counter() - start
            consistency = None
            if self.cfg.train.eval_samples_per_class > 0 and is_main():
                consistency = self.class_consistency(self.cfg.train.eval_samples_per_class)
                self.tb.writer.add_scalar(
                    "eval/class_consistency", consistency, self.engine.state.iteration
                )
        finally:
            if self.tb is not None:
                self.tb.close()
        return TrainResult(
            generator_path=self.run_dir / GENERATOR_FILE,
            iterations=self.engine.state.iteration,
            seconds=seconds,
            class_consistency=consistency,
        )

    def class_consistency(self, n_per_class: int) -> float:
        """Class consistency of the EMA generator under the cached real-data classifier."""
        cfg = self.cfg
        clf = get_classifier(
            cfg.data,
            cfg.classifier,
            cfg.seed,
            cfg.cache_dir,
            (self.train_set, self.test_set, self.info),
            self.device,
            progress=cfg.train.progress,
        )
        return class_consistency(self.ema.module, clf, n_per_class, cfg.seed)


@dataclass
class TrainResult:
    """What a training run produced."""

    generator_path: Path
    iterations: int
    seconds: float  # wall time of the training loop (this process only, on resume)
    class_consistency: float | None  # None when train.eval_samples_per_class is 0


def train(
    cfg: Config,
    resume: bool = False,
    overwrite: bool = False,
    data: tuple[ImageTensors, ImageTensors, DatasetInfo] | None = None,
) -> TrainResult:
    """Train a conditional GAN as configured (see :class:`GANTrainer`)."""
    return GANTrainer(cfg, resume=resume, overwrite=overwrite, data=data).run()
