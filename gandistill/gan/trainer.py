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

This module holds the engine, its event handlers, :func:`train` and its :class:`TrainResult`;
the networks and the update step are in :mod:`gandistill.gan.step`, the run folder and its
checkpoints in :mod:`gandistill.gan.checkpoints`, the sample grid and the logging in
:mod:`gandistill.gan.monitor`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from ignite.handlers import TerminateOnNan
from ignite.handlers.tensorboard_logger import TensorboardLogger
from torch import Tensor
from torch.utils.data import DataLoader

from gandistill.augment import check_policy
from gandistill.classifier import class_consistency, get_classifier
from gandistill.config import Config
from gandistill.data import BalancedBatches, DatasetInfo, ImageTensors, Splits, load_dataset
from gandistill.errors import ConfigError, DataError, GandistillError, Interrupted
from gandistill.files import GENERATOR_FILE, save_generator
from gandistill.gan.checkpoints import (
    STATE_DIR,
    TB_DIR,
    ConfigRecord,
    SourceRecord,
    TrainingClock,
    check_run_dir,
    continue_from,
    init_run_dir,
    make_checkpoint,
    resume_from_newest,
)
from gandistill.gan.losses import real_pair_ratio
from gandistill.gan.monitor import (
    DIVERSITY_SAMPLES,
    GRID_COLUMNS,
    attach_monitor,
    class_samples,
    diversity_scalars,
)
from gandistill.gan.step import GANStep
from gandistill.handlers import ImageGrid, StopOnInterrupt, attach_progress, budget_spent
from gandistill.locks import RunLock
from gandistill.models import to_gan_range
from gandistill.models.generator import SIZES as GENERATOR_SIZES
from gandistill.parallel import (
    all_mean,
    is_main,
    main_only,
    rank,
    world_size,
)
from gandistill.runtime import InterruptFlag, resolve_device, step_generator

BUDGET_STOP = "time budget spent"  # TrainResult.stopped_by, and the progress bar's words


class TrainingDiverged(GandistillError):
    """A loss became NaN/inf; the run stopped at its last good checkpoint."""


def _finite(output: dict) -> bool:
    return all(math.isfinite(v) for v in output.values())


def _every_good(n: int) -> Callable[[Engine, int], bool]:
    """An event filter: every ``n``-th iteration whose losses are finite (a NaN is not saved)."""
    return lambda e, it: it % n == 0 and _finite(e.state.output)


def _check_augment(policy: str) -> None:
    try:
        check_policy(policy)
    except ValueError as exc:
        raise ConfigError(f"config key 'train.augment': {exc}") from None


def _check_batch_split(batch_size: int, world: int) -> None:
    if batch_size % world:
        raise ConfigError(
            f"train.batch_size {batch_size} (the global batch) must divide evenly over "
            f"{world} processes"
        )


def _check_image_size(info: DatasetInfo) -> None:
    if info.image_size not in GENERATOR_SIZES:
        sizes = ", ".join(map(str, GENERATOR_SIZES))
        raise DataError(
            f"the generator makes {sizes} px images; dataset '{info.name}' has "
            f"{info.image_size} px (set data.image_size to one of {sizes})"
        )


def _real_batches(train_set: ImageTensors, cfg: Config, start: int, world: int) -> DataLoader:
    """This rank's real batches from iteration ``start + 1`` on (see :class:`BalancedBatches`)."""
    tc = cfg.train
    batches = BalancedBatches(
        train_set,
        tc.batch_size // world,  # this rank's share of the global batch
        cfg.seed,
        start,
        tc.iterations,
        world,
    )
    # batch_size=1 over whole batches (ignite's auto_dataloader divides a batch_size by the
    # world size; here the items are already per-rank batches), collated to (1, B, ...)
    logging.disable(logging.INFO)  # ignite logs the loader's kwargs at INFO on every call
    try:
        return idist.auto_dataloader(batches, batch_size=1, shuffle=False, num_workers=0)
    finally:
        logging.disable(logging.NOTSET)


class GANTrainer:
    """Builds models, optimisers and handlers for one run folder; :meth:`run` trains.

    Args:
        cfg: the resolved config.
        resume: continue from the newest checkpoint in ``cfg.run_dir/state``.
        overwrite: delete an earlier run's state, events and generator in ``cfg.run_dir`` first.
        data: pre-loaded :class:`~gandistill.data.Splits` (tests pass tiny data); loaded from
            ``cfg.data`` otherwise. Only the training split is learnt from.
    """

    def __init__(
        self,
        cfg: Config,
        resume: bool = False,
        overwrite: bool = False,
        data: Splits | None = None,
    ) -> None:
        self.cfg = cfg
        tc = cfg.train
        _check_augment(tc.augment)
        self.device = resolve_device(cfg.device)
        self.world = world_size()
        _check_batch_split(tc.batch_size, self.world)
        self.run_dir = Path(cfg.run_dir)
        # before any check reads the folder and anything is written or deleted in it
        self.lock = RunLock(self.run_dir, folder=True).acquire()
        try:
            self._set_up(cfg, resume, overwrite, data)
        except BaseException:
            self.lock.release()
            raise

    def _set_up(
        self,
        cfg: Config,
        resume: bool,
        overwrite: bool,
        data: Splits | None,
    ) -> None:
        check_run_dir(self.run_dir, resume, overwrite)  # before any slow work
        self.data = data if data is not None else load_dataset(cfg.data)
        self.train_set, self.info = self.data.train, self.data.info
        _check_image_size(self.info)
        torch.manual_seed(cfg.seed)  # the networks' initial weights
        step = self.gan_step = GANStep(cfg, self.info, self.device, self.world)
        # the mode-seeking term stops rewarding a pair of samples once it is as far apart as
        # real images of a class are (measured on the training split, drawn from the seed)
        train01 = self.train_set.images.float() / 255.0
        step.mode_seeking_cap = real_pair_ratio(
            to_gan_range(train01), self.train_set.labels, step_generator(cfg.seed, -4)
        )
        # the step's modules and optimisers, under the names that checkpoints and callers use
        self.generator, self.discriminator, self.ema = step.generator, step.discriminator, step.ema
        self.opt_g, self.opt_d = step.opt_g, step.opt_d
        self.fixed_z = self.generator.sample_latents(GRID_COLUMNS, step_generator(cfg.seed, -1))
        # the logged diversity's latents and real reference, fixed for the run
        self.diversity_z = self.generator.sample_latents(
            DIVERSITY_SAMPLES, step_generator(cfg.seed, -2)
        )
        counts = [min(DIVERSITY_SAMPLES, n) for n in self.train_set.class_counts()]
        self.diversity_real = self.train_set.sample_per_class(counts, step_generator(cfg.seed, -3))
        self.engine = Engine(self._step)
        self.clock = TrainingClock()  # training time over resumes, for train.max_minutes
        self.budget_spent = False
        self.to_save = {
            "generator": self.generator,
            "discriminator": self.discriminator,
            "ema": self.ema,
            "opt_g": self.opt_g,
            "opt_d": self.opt_d,
            "trainer": self.engine,
            "clock": self.clock,
            "config": ConfigRecord(cfg),
        }
        # a run that continues another (distillation into its generator) records its source;
        # the pool-matching term's networks are part of the training state
        self.source = SourceRecord()
        if cfg.train.init_from:
            self.to_save["source"] = self.source
        if step.pool is not None:
            self.to_save["match_pool"] = step.pool
        self.diverged_at: int | None = None
        self.interrupt = InterruptFlag()
        main_only(init_run_dir, self.run_dir, cfg, clear=overwrite and not resume)
        self._attach_handlers()
        if resume:
            resume_from_newest(self.run_dir, cfg, self.device, self.to_save, self.checkpoint)
        elif cfg.train.init_from:
            self.source.source = continue_from(cfg.train.init_from, cfg, self.device, self.to_save)
            # the loaded optimisers keep their moments but take this run's settings
            tc = cfg.train
            for opt, lr in ((self.opt_g, tc.lr_g), (self.opt_d, tc.lr_d)):
                for group in opt.param_groups:
                    group.update(lr=lr, betas=(tc.beta1, tc.beta2))
            # the engine goes on from the source's iteration to this run's train.iterations
            self.engine.load_state_dict(
                {
                    "iteration": self.source.source["iteration"],
                    "epoch_length": cfg.train.iterations,
                    "max_epochs": 1,
                }
            )

    # --- set-up -----------------------------------------------------------------------------

    def _attach_handlers(self) -> None:
        """NaN stop, checkpoints, Ctrl-C stop and end-of-run writes; on rank 0, the monitor."""
        tc, engine = self.cfg.train, self.engine
        engine.add_event_handler(Events.STARTED, lambda e: self.clock.start())
        engine.add_event_handler(Events.ITERATION_COMPLETED, TerminateOnNan())
        engine.add_event_handler(Events.TERMINATE, self._on_terminate)
        self.checkpoint = make_checkpoint(self.to_save, self.run_dir, tc.n_saved)
        engine.add_event_handler(
            Events.ITERATION_COMPLETED(event_filter=_every_good(tc.checkpoint_every)),
            self.checkpoint,
        )
        # after Ctrl-C: checkpoint this (completed) iteration and stop without finishing; a NaN
        # stops the run through TerminateOnNan instead, at the last good checkpoint
        every = tc.checkpoint_every
        self.stop_on_interrupt = StopOnInterrupt(
            self.interrupt,
            save=self.checkpoint,
            saved=lambda e: e.state.iteration % every == 0,
            when=lambda e: _finite(e.state.output),
        )
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.stop_on_interrupt)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._check_budget)
        engine.add_event_handler(Events.COMPLETED, self._on_completed)
        self.tb: TensorboardLogger | None = None
        self.grid: ImageGrid | None = None
        if is_main():  # rank 0 alone logs and shows progress
            optimizers = {"lr_g": self.opt_g, "lr_d": self.opt_d}
            self.tb, self.grid = attach_monitor(
                engine, self.run_dir / TB_DIR, tc, optimizers, self._samples01, self.diversity
            )
            if tc.progress:
                attach_progress(
                    engine,
                    "train",
                    lambda out: {k: out[k] for k in ("loss_d", "loss_g")},
                    tc.max_minutes,
                    lambda out: self.clock.seconds(),
                    lambda: BUDGET_STOP if self.budget_spent else None,
                )

    # --- the step ----------------------------------------------------------------------------

    @property
    def loss_d_fn(self) -> Callable[[Tensor, Tensor], Tensor]:
        """D's loss of (real logits, fake logits); a test replaces it to make a step diverge."""
        return self.gan_step.loss_d_fn

    @loss_d_fn.setter
    def loss_d_fn(self, fn: Callable[[Tensor, Tensor], Tensor]) -> None:
        self.gan_step.loss_d_fn = fn

    def _step(self, engine: Engine, data: tuple[Tensor, Tensor]) -> dict[str, float]:
        """One iteration (see :class:`GANStep`); the mean of the ranks' losses."""
        # the step's other draws; with several processes, each rank has its own stream
        it = engine.state.iteration
        gen = step_generator(self.cfg.seed, *((it,) if self.world == 1 else (it, -1 - rank())))
        real01, labels = data[0][0], data[1][0]  # (B, C, H, W) in [0, 1], (B,)
        real = to_gan_range(real01.to(self.device))
        return all_mean(self.gan_step(real, labels.to(self.device), gen))

    # --- events ------------------------------------------------------------------------------

    def _samples01(self) -> Tensor:
        """The EMA generator's samples of the fixed latents, class by class, on the CPU."""
        self.ema.module.eval()
        with self.gan_step.autocast():
            return class_samples(self.ema.module, self.fixed_z, self.info.num_classes).cpu()

    def diversity(self) -> dict[str, float]:
        """Intra-class diversity of the EMA and the raw generator (``diversity/ema``,
        ``diversity/raw`` and their least diverse class, ``*_min``): 1 is as diverse as the
        real images of a class, near 0 a class collapsed to one image."""
        with self.gan_step.autocast():
            return diversity_scalars(
                {"ema": self.ema.module, "raw": self.generator},
                self.diversity_z,
                *self.diversity_real,
            )

    def _check_budget(self, engine: Engine) -> None:
        """Stop after this iteration once ``train.max_minutes`` of training time are spent (the
        generator is then written as at the end of a run)."""
        if budget_spent(self.clock.seconds(), self.cfg.train.max_minutes):
            self.budget_spent = True
            engine.terminate()

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
        if self.grid is not None:
            self.grid(engine)
        save_generator(
            self.run_dir / GENERATOR_FILE,
            self.generator,
            self.ema.module.state_dict(),
            self.cfg,
            self.info,
            engine.state.iteration,
            derived_from=self.source.source or None,
        )

    # --- the run -----------------------------------------------------------------------------

    def run(self) -> TrainResult:
        """Train to ``train.iterations``, write ``generator.pt`` and score it.

        Raises:
            Interrupted: Ctrl-C stopped training after a completed iteration, which was saved.
            TrainingDiverged: a loss became NaN/inf.
        """
        start = time.perf_counter()
        try:
            self._train()
            self._raise_if_stopped()
            seconds = time.perf_counter() - start
            consistency = self._score()
        finally:
            if self.tb is not None:
                self.tb.close()
            self.lock.release()
        return TrainResult(
            generator_path=self.run_dir / GENERATOR_FILE,
            iterations=self.engine.state.iteration,
            seconds=seconds,
            class_consistency=consistency,
            stopped_by=BUDGET_STOP if self.budget_spent else None,
        )

    def _train(self) -> None:
        """Run the engine from its current iteration to ``train.iterations`` or until the time
        budget is spent; Ctrl-C stops it."""
        iterations = self.cfg.train.iterations
        spent = budget_spent(self.clock.seconds(), self.cfg.train.max_minutes)
        if self.engine.state.iteration >= iterations or spent:
            # resumed a finished run (maybe killed before it wrote the generator): ignite
            # would start over at iteration 0; only the end-of-run writes are left
            self.budget_spent = spent and self.engine.state.iteration < iterations
            self._write_generator(self.engine)
        else:
            with self.interrupt:
                done = self.engine.state.iteration
                loader = _real_batches(self.train_set, self.cfg, done, self.world)
                self.engine.run(loader, max_epochs=1, epoch_length=iterations)

    def _raise_if_stopped(self) -> None:
        """Raise :class:`Interrupted` after Ctrl-C, :class:`TrainingDiverged` after a NaN."""
        if self.stop_on_interrupt.stopped_at is not None:
            raise Interrupted(
                self.stop_on_interrupt.stopped_at,
                str(self.run_dir / STATE_DIR / self.checkpoint.last_checkpoint),
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
                f"a loss became NaN/inf at iteration {self.diverged_at}; training stopped ({where})"
            )

    def _score(self) -> float | None:
        """Rank 0's class consistency of the trained generator, logged; None when not scored."""
        n_per_class = self.cfg.train.eval_samples_per_class
        if not (n_per_class > 0 and is_main()):
            return None
        consistency = self.class_consistency(n_per_class)
        self.tb.writer.add_scalar(
            "eval/class_consistency", consistency, self.engine.state.iteration
        )
        return consistency

    def class_consistency(self, n_per_class: int) -> float:
        """Class consistency of the EMA generator under the cached real-data classifier."""
        cfg = self.cfg
        clf = get_classifier(
            cfg.data,
            cfg.classifier,
            cfg.seed,
            cfg.cache_dir,
            self.data,
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
    stopped_by: str | None = None  # why it stopped before train.iterations (the time budget)


def train(
    cfg: Config,
    resume: bool = False,
    overwrite: bool = False,
    data: Splits | None = None,
) -> TrainResult:
    """Train a conditional GAN as configured (see :class:`GANTrainer`)."""
    return GANTrainer(cfg, resume=resume, overwrite=overwrite, data=data).run()
