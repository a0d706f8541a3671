"""Distillation: optimise a few latents (or pixels) per class to teach what real data teaches.

The methods: gradient matching (Zhao et al. 2021, "Dataset Condensation with Gradient
Matching"), bilevel, distribution matching (Zhao & Bilen 2023) and trajectory matching
(Cazenavette et al. 2022); one outer iteration is a
:class:`~gandistill.distillation.step.MatchingStep` (a
:class:`~gandistill.distillation.step.TrajectoryStep` for trajectories), the matching terms are in
:mod:`~gandistill.distillation.objectives`, the set in :mod:`~gandistill.distillation.synthetic`
and its starts in :mod:`~gandistill.distillation.init`. ``space: pixel`` optimises the images
themselves through the same code: the DC and DM baselines. This module runs the loop (an ignite
engine: stop rules, quick checks, logging) and writes the set.

Resumable: every ``checkpoint_every`` iterations and on Ctrl-C the set, its optimiser and the
loop state go to ``<out>.state.pt`` (``set.pt`` → ``set.state.pt``) through ignite's
``Checkpoint``, the mechanism the GAN trainer resumes by; since every draw of iteration ``i``
comes from ``step_generator(seed, i)``, a resumed run ends with exactly the set of an
uninterrupted one on CPU.

On several processes (:func:`gandistill.parallel.launch`, or ``torchrun``) the classes are split
into contiguous blocks, one per rank; every rank holds the whole set, matches its own classes'
rows and merges the rows after each update (see :mod:`~gandistill.distillation.step`). Rank 0
logs, evaluates and writes the file, which has the same format as a one-process run's.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, CosineAnnealingScheduler, ProgressBar
from ignite.handlers.tensorboard_logger import TensorboardLogger
from torch import Tensor

from gandistill.classifier import RealClassifier, get_classifier
from gandistill.config import Config, DistillConfig, resolve, uses_generator
from gandistill.config.derived import matching_archs
from gandistill.data import Splits, load_dataset, require_compatible
from gandistill.distillation.init import check_init, initial_set
from gandistill.distillation.monitor import (
    attach_pace_note,
    attach_tensorboard,
)
from gandistill.distillation.state import (
    STOP_ITERATIONS,
    ResumableState,
    load_state,
    set_tensors,
    state_path,
)
from gandistill.distillation.step import check_processes, make_step
from gandistill.errors import ArtifactError, ConfigError, Interrupted
from gandistill.files import (
    DistilledSet,
    GeneratorCheckpoint,
    load_generator_checkpoint,
    to_uint8,
)
from gandistill.fit import train_and_test
from gandistill.handlers import (
    LossPatience,
    StopOnInterrupt,
    attach_progress,
    budget_spent,
    make_checkpoint,
)
from gandistill.locks import RunLock
from gandistill.models.convnet import check_depth
from gandistill.parallel import (
    class_share,
    is_main,
    main_first,
)
from gandistill.runtime import InterruptFlag, library_versions, resolve_device

STOP_TIME, STOP_CONVERGED = "max_minutes", "converged"
LOSS_SMOOTHING = 0.9  # EMA factor of the loss that the patience rule watches
QUICK_CHECK_SEED = 7919  # seed offset of the quick checks' networks (the benchmark reuses it)


def _generator(
    generator: str | Path | GeneratorCheckpoint | None, dc: DistillConfig, device: torch.device
) -> GeneratorCheckpoint | None:
    """The generator checkpoint a latent-space run decodes through, or a pixel-space run draws
    its start from (``init: best_of_k``), on ``device``; None when the run needs none."""
    if not uses_generator(dc):
        return None
    if generator is None:
        if dc.space == "pixel":
            raise ConfigError(
                "init 'best_of_k' in pixel space starts from generator samples: pass a generator "
                "(--generator FILE)"
            )
        raise ConfigError(f"space '{dc.space}' needs a generator (--generator FILE)")
    if not isinstance(generator, GeneratorCheckpoint):
        generator = load_generator_checkpoint(generator, device=device)
    generator.generator.to(device)
    return generator


# --- the distiller --------------------------------------------------------------------------


class Distiller(ResumableState):
    """Optimises a :class:`SyntheticSet` against real data; :meth:`run` returns the set.

    Args:
        cfg: resolved config (``cfg.distill`` drives the method, ``cfg.eval`` the final check).
        generator: the generator checkpoint (path or loaded); required for ``space: latent``.
        out: where :meth:`run` saves the distilled set (``None``: not saved).
        data: pre-loaded :class:`~gandistill.data.Splits`; loaded from ``cfg.data`` otherwise.
            Real batches come from its training split, quick checks read its validation split.
        log_dir: TensorBoard folder (``None``: next to ``out``, else no logging).
        resume: continue from the state saved next to ``out`` (see :func:`state_path`) instead
            of initialising a new set; refused when locked config keys or the generator differ.
    """

    def __init__(
        self,
        cfg: Config,
        generator: str | Path | GeneratorCheckpoint | None = None,
        out: str | Path | None = None,
        data: Splits | None = None,
        log_dir: str | Path | None = None,
        resume: bool = False,
    ) -> None:
        self.device = resolve_device(cfg.device)
        # every derived setting made concrete: what the state and the set file save
        cfg = resolve(cfg, self.device.type)
        self.cfg = cfg
        self.out = Path(out) if out is not None else None
        self.state_path = None if self.out is None else state_path(self.out)
        # before the state is read, and before anything is written or deleted next to ``out``
        self.lock = None if self.out is None else RunLock(self.out, folder=False).acquire()
        try:
            self._set_up(cfg, generator, data, log_dir, resume)
        except BaseException:
            self._release()
            raise

    def _set_up(
        self,
        cfg: Config,
        generator: str | Path | GeneratorCheckpoint | None,
        data: Splits | None,
        log_dir: str | Path | None,
        resume: bool,
    ) -> None:
        dc = cfg.distill
        if resume and self.state_path is None:
            raise ConfigError("resume needs the output file whose saved state it continues")
        if resume and not self.state_path.is_file():
            raise ArtifactError(f"nothing to resume: no {self.state_path}")
        self.ckpt = _generator(generator, dc, self.device)
        saved = None
        if resume:  # before the slow set-up
            sha = None if self.ckpt is None else self.ckpt.sha256
            saved = load_state(self.state_path, cfg, sha, self.out)
        self.data = data if data is not None else load_dataset(cfg.data)
        self.train_set, self.info = self.data.train, self.data.info
        self._check_compatible()
        k = self.info.num_classes
        check_processes(dc, k)
        self.classes = class_share(k)  # this rank's classes; all of them in one process
        self.rows = slice(self.classes.start * dc.ipc, self.classes.stop * dc.ipc)
        self.syn = initial_set(
            dc,
            self.info,
            self.train_set,
            cfg.seed,
            self.device,
            None if self.ckpt is None else self.ckpt.generator,
            self._classifier,
            fresh=saved is None,
        ).to(self.device)
        self.step = make_step(cfg, self.info, self.train_set, self.syn, self.classes, self.device)
        self.opt, self.networks = self.step.opt, self.step.networks
        self.history: list[dict] = []
        self.stop_reason = STOP_ITERATIONS
        self.patience = LossPatience(dc.patience, dc.tolerance, LOSS_SMOOTHING)
        self._elapsed = 0.0  # distillation seconds of earlier processes (resume)
        self._t0 = time.perf_counter()
        self.interrupt = InterruptFlag()
        self._done = False  # a resumed state that had already stopped
        self.engine = Engine(self._step)
        self.progress: ProgressBar | None = None  # rank 0's bar when distill.progress is on
        if log_dir is None and self.out is not None:
            log_dir = self.out.parent / "tb" / self.out.stem
        use_tb = log_dir is not None and is_main()
        self.tb = TensorboardLogger(log_dir=str(log_dir)) if use_tb else None
        self._attach_handlers()
        self.resumed = saved is not None
        if saved is not None:
            Checkpoint.load_objects({"distillation": self}, saved)

    def _release(self) -> None:
        if self.lock is not None:
            self.lock.release()

    # --- set-up ---------------------------------------------------------------------------

    def _check_compatible(self) -> None:
        info, dc = self.info, self.cfg.distill
        for _, depth, _ in matching_archs(dc):
            what = "distill.net_archs" if dc.net_archs.strip() else "distill.net_depth"
            check_depth(depth, info.image_size, what)
        if self.ckpt is not None:
            require_compatible(self.ckpt.info, info, "the generator")
        check_init(dc.init, dc.ipc, self.train_set)

    def _attach_handlers(self) -> None:
        dc, engine = self.cfg.distill, self.engine
        engine.add_event_handler(Events.STARTED, self._on_started)
        self.scheduler: CosineAnnealingScheduler | None = None
        if dc.lr_schedule == "cosine":  # by iteration, not by the clock: runs stay reproducible
            lr = self.opt.param_groups[0]["lr"]
            self.scheduler = CosineAnnealingScheduler(
                self.opt, "lr", lr, 0.0, cycle_size=dc.max_iterations + 1, param_group_index=0
            )  # the set's group; mtt's student learning rate keeps its own
            engine.add_event_handler(Events.ITERATION_STARTED, self.scheduler)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._check_stop)
        if dc.eval_every:
            engine.add_event_handler(
                Events.ITERATION_COMPLETED(every=dc.eval_every), self._quick_eval
            )
        if self.tb is not None:
            attach_tensorboard(engine, self.tb, dc, self._images01)
        if dc.progress and is_main():
            self.progress = attach_progress(
                engine,
                "distill",
                lambda out: {"loss": out["match_loss"]},
                dc.max_minutes,
                lambda out: out["seconds"],
                self._early_stop,
            )
        if not dc.max_minutes and is_main():  # with a budget the bar shows what is spent
            write = self.progress.log_message if self.progress is not None else None
            attach_pace_note(engine, dc.max_iterations, write)
        # last, so that the saved history holds this iteration's stop check and quick eval
        every = dc.checkpoint_every
        self.stop_on_interrupt = StopOnInterrupt(
            self.interrupt,
            save=self.save_state,
            saved=lambda e: bool(every) and e.state.iteration % every == 0,
        )
        if self.state_path is not None:  # without an output, Ctrl-C stops at once
            self.checkpoint = make_checkpoint(
                {"distillation": self}, self.state_path.parent, filename=self.state_path.name
            )
            if every:
                engine.add_event_handler(Events.ITERATION_COMPLETED(every=every), self.save_state)
            engine.add_event_handler(Events.ITERATION_COMPLETED, self.stop_on_interrupt)

    def _step(self, engine: Engine, _batch: None) -> dict[str, float]:
        out = self.step(engine.state.iteration)
        out["seconds"] = time.perf_counter() - self._t0
        return out

    # --- events ----------------------------------------------------------------------------

    def _on_started(self, engine: Engine) -> None:
        self._t0 = time.perf_counter() - self._elapsed  # the budget spans resumes

    def _early_stop(self) -> str | None:
        """Why the run stopped before ``max_iterations``, in words; None when it did not."""
        return {STOP_TIME: "time budget spent", STOP_CONVERGED: "converged"}.get(self.stop_reason)

    def _check_stop(self, engine: Engine) -> None:
        """Record the iteration; stop on convergence or when the time budget is spent."""
        out, it = engine.state.output, engine.state.iteration
        loss = out["match_loss"]
        converged = self.patience.converged(loss, it)
        self.history.append({"iteration": it, "seconds": out["seconds"], "match_loss": loss})
        if converged:
            self.stop_reason = STOP_CONVERGED
            engine.terminate()
        elif budget_spent(out["seconds"], self.cfg.distill.max_minutes):
            self.stop_reason = STOP_TIME
            engine.terminate()

    def quick_accuracy(self, seed_offset: int = 0) -> float:
        """Validation accuracy (test accuracy when there is no validation split) of one fresh
        network trained briefly (no augmentation) on the set."""
        ec = self.cfg.eval
        with torch.no_grad():
            images = self.syn().detach()

        quick = replace(ec, augment="none")
        return train_and_test(
            images,
            self.syn.labels,
            self.data.val,
            self.info,
            quick,
            self.cfg.seed + QUICK_CHECK_SEED + seed_offset,
            self.device,
            epochs=self.cfg.distill.eval_epochs,
        )

    def _quick_eval(self, engine: Engine) -> None:
        if not is_main():  # the others wait at the next iteration's first collective
            return
        it = engine.state.iteration
        pause = time.perf_counter()
        acc = self.quick_accuracy(it)
        self._t0 += time.perf_counter() - pause  # evaluation time is not distillation time
        self.history[-1]["accuracy"] = acc
        self.history[-1]["accuracy_split"] = self.data.val_name  # what the check read
        if self.tb is not None:
            split = "test" if self.data.val_is_test else "val"
            self.tb.writer.add_scalar(f"distill/{split}_accuracy", acc, it)
            self.tb.writer.add_scalar(
                f"distill/{split}_accuracy_vs_seconds", acc, int(self.history[-1]["seconds"])
            )

    @torch.no_grad()
    def _images01(self) -> Tensor:
        """The set's images as pixels in [0, 1] on the CPU."""
        return self.info.denormalize(self.syn()).clamp(0, 1).cpu()

    # --- run ---------------------------------------------------------------------------------

    def _teacher_logits(self, pixels: Tensor) -> Tensor:
        """The cached real-data classifier's logits on the final images (soft labels)."""
        clf = self._classifier()  # may train it (with gradients) the first time
        clf.net.eval()
        with torch.no_grad():
            return clf.logits(pixels.to(self.device)).float().cpu()

    def _classifier(self) -> RealClassifier:
        with main_first():  # rank 0 trains and caches it, the others then load it
            return get_classifier(
                self.cfg.data,
                self.cfg.classifier,
                self.cfg.seed,
                self.cfg.cache_dir,
                self.data,
                self.device,
                progress=self.cfg.distill.progress and is_main(),
            )

    def result(self) -> DistilledSet:
        """The distilled set as it stands (with soft labels when asked for), ready to save."""
        with torch.no_grad():
            images = self.syn().detach().cpu()
        pixels = self.info.denormalize(images).clamp(0, 1)
        params, dc, ckpt = set_tensors(self.syn), self.cfg.distill, self.ckpt
        return DistilledSet(
            labels=self.syn.labels.cpu(),
            images_float=images,
            images_uint8=to_uint8(pixels),
            info=self.info,
            config=self.cfg,
            space=dc.space,
            latents=params.get("latents"),
            feature_offsets=params.get("feature_offsets"),
            residuals=params.get("residuals"),
            teacher_logits=self._teacher_logits(pixels) if dc.teacher_logits else None,
            generator_path=None if ckpt is None else str(ckpt.path),
            generator_sha256=None if ckpt is None else ckpt.sha256,
            stop_reason=self.stop_reason,
            history=self.history,
            versions=library_versions(),
        )

    def run(self) -> DistilledSet:
        """Distil until a stop rule fires; saves to ``out`` when given (and then removes the
        resumable state).

        Raises:
            Interrupted: Ctrl-C stopped distillation after a completed iteration, whose state
                was saved (only with ``out``; without it Ctrl-C raises ``KeyboardInterrupt``).
        """
        try:
            self._run()
            ds = self.result()
            if self.out is not None and is_main():
                ds.save(self.out)
                self.state_path.unlink(missing_ok=True)
            return ds
        finally:
            self._release()

    def _run(self) -> None:
        dc = self.cfg.distill
        if self.state_path is not None and not self.resumed and is_main():
            self.state_path.unlink(missing_ok=True)  # an earlier run's, not this one's
        catch_ctrl_c = self.interrupt if self.state_path is not None else nullcontext()
        try:
            if not self._done:
                with catch_ctrl_c:
                    self.engine.run(data=None, max_epochs=1, epoch_length=dc.max_iterations)
            stopped_at = self.stop_on_interrupt.stopped_at
            if stopped_at is not None:
                raise Interrupted(stopped_at, str(self.state_path), self.interrupt.signum)
            if dc.eval_every and self.history and "accuracy" not in self.history[-1]:
                self._quick_eval(self.engine)
        finally:
            if self.tb is not None:
                self.tb.close()


def distill(
    cfg: Config,
    generator: str | Path | GeneratorCheckpoint | None = None,
    out: str | Path | None = None,
    data: Splits | None = None,
    resume: bool = False,
) -> DistilledSet:
    """Distil ``cfg.distill.ipc`` images per class (see :class:`Distiller`)."""
    return Distiller(cfg, generator=generator, out=out, data=data, resume=resume).run()
