"""Distillation: optimise a few latents (or pixels) per class to teach what real data teaches.

Gradient matching (Zhao et al. 2021, "Dataset Condensation with Gradient Matching"), bilevel:
every outer iteration draws a freshly initialised ConvNet; for ``outer_loop`` steps the per-class
gradients of its loss on real batches (detached) and on the synthetic images (with graph) are
compared, the distance is backpropagated through the frozen generator into the latents, and the
network is trained ``inner_loop`` steps on the (detached) synthetic set in between.
Distribution matching (Zhao & Bilen 2023, "Dataset Condensation with Distribution Matching")
compares mean embeddings of random networks instead, with no inner loop.

The gradients and their distances live in :mod:`~gandistill.distillation.matching`, the further
matching terms in :mod:`~gandistill.distillation.objectives`, the set in
:mod:`~gandistill.distillation.synthetic` and its starts in :mod:`~gandistill.distillation.init`;
this module runs the loop. ``space: pixel`` optimises the images themselves through the same code:
the DC and DM baselines.

Resumable: every ``checkpoint_every`` iterations and on Ctrl-C the set, its optimiser and the
loop state go to ``<out>.state.pt`` (``set.pt`` → ``set.state.pt``) through ignite's
``Checkpoint``, the mechanism the GAN trainer resumes by; since every draw of
iteration ``i`` comes from ``step_generator(seed, i)``, a resumed run ends with exactly the set of
an uninterrupted one on CPU.

On several processes (:func:`gandistill.parallel.launch`, or ``torchrun``) the classes are split
into contiguous blocks, one per rank. Every rank holds the whole set and draws the same matching
network and real batches from the shared seed; it matches and updates only its own classes' rows,
and after each update the rows are merged (a masked all-reduce), so the inner training, which
needs the whole set, is the same everywhere. Gradient clipping uses the norm over all ranks.
Rank 0 logs, evaluates and writes the file, which has the same format as a one-process run's.
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
from gandistill.config import Config, DistillConfig, resolve, to_dict
from gandistill.data import DatasetInfo, ImageTensors, load_dataset, require_same_shape
from gandistill.distillation.init import check_init, initial_set
from gandistill.distillation.monitor import attach_progress, attach_tensorboard
from gandistill.distillation.networks import MatchingNetworks, train_on_set
from gandistill.distillation.objectives import Batch, matching_loss, real_batch, siamese
from gandistill.distillation.state import load_set_tensors, load_state, set_tensors, state_path
from gandistill.distillation.synthetic import clip_gradients, merge_rows, per_row
from gandistill.errors import ArtifactError, ConfigError, Interrupted
from gandistill.files import (
    FORMAT_VERSION,
    KIND_DISTILL_STATE,
    DistilledSet,
    GeneratorCheckpoint,
    load_generator_checkpoint,
    to_uint8,
)
from gandistill.fit import dsa_strategy_for, train_and_test
from gandistill.handlers import LossPatience, StopOnInterrupt, budget_spent, make_checkpoint
from gandistill.models import ConvNet
from gandistill.parallel import (
    all_sum_,
    class_share,
    is_main,
    main_first,
    world_size,
)
from gandistill.runtime import InterruptFlag, library_versions, resolve_device, step_generator

STOP_ITERATIONS, STOP_TIME, STOP_CONVERGED = "max_iterations", "max_minutes", "converged"
LOSS_SMOOTHING = 0.9  # EMA factor of the loss that the patience rule watches
QUICK_CHECK_SEED = 7919  # seed offset of the quick checks' networks (the benchmark reuses it)


def _generator(
    generator: str | Path | GeneratorCheckpoint | None, dc: DistillConfig, device: torch.device
) -> GeneratorCheckpoint | None:
    """The generator checkpoint a latent-space run decodes through, on ``device``."""
    if dc.space != "latent":
        return None
    if generator is None:
        raise ConfigError("space 'latent' needs a generator (--generator FILE)")
    if not isinstance(generator, GeneratorCheckpoint):
        generator = load_generator_checkpoint(generator, device=device)
    generator.generator.to(device)
    return generator


def _check_processes(dc: DistillConfig, num_classes: int) -> None:
    """Refuse a process count the run cannot split its classes over."""
    if world_size() > num_classes:
        raise ConfigError(
            f"{world_size()} processes for {num_classes} classes: distillation splits the "
            "classes over the processes, so use at most one process per class"
        )
    if world_size() > 1 and (dc.discrimination > 0 or dc.objective == "krr"):
        what = "objective krr" if dc.objective == "krr" else "distill.discrimination"
        raise ConfigError(
            f"{what} compares every class with every other, so it runs in one process; drop --nproc"
        )


# --- the distiller --------------------------------------------------------------------------


class Distiller:
    """Optimises a :class:`SyntheticSet` against real data; :meth:`run` returns the set.

    Args:
        cfg: resolved config (``cfg.distill`` drives the method, ``cfg.eval`` the final check).
        generator: the generator checkpoint (path or loaded); required for ``space: latent``.
        out: where :meth:`run` saves the distilled set (``None``: not saved).
        data: pre-loaded ``(train, test, info)``; loaded from ``cfg.data`` otherwise.
        log_dir: TensorBoard folder (``None``: next to ``out``, else no logging).
        resume: continue from the state saved next to ``out`` (see :func:`state_path`) instead
            of initialising a new set; refused when locked config keys or the generator differ.
    """

    def __init__(
        self,
        cfg: Config,
        generator: str | Path | GeneratorCheckpoint | None = None,
        out: str | Path | None = None,
        data: tuple[ImageTensors, ImageTensors, DatasetInfo] | None = None,
        log_dir: str | Path | None = None,
        resume: bool = False,
    ) -> None:
        self.device = resolve_device(cfg.device)
        # every derived setting made concrete: what the state and the set file save
        cfg = resolve(cfg, self.device.type)
        self.cfg, dc = cfg, cfg.distill
        self.out = Path(out) if out is not None else None
        self.state_path = None if self.out is None else state_path(self.out)
        if resume and self.state_path is None:
            raise ConfigError("resume needs the output file whose saved state it continues")
        if resume and not self.state_path.is_file():
            raise ArtifactError(f"nothing to resume: no {self.state_path}")
        self.ckpt = _generator(generator, dc, self.device)
        saved = None
        if resume:  # before the slow set-up
            sha = None if self.ckpt is None else self.ckpt.sha256
            saved = load_state(self.state_path, cfg, sha, self.out)
        self.train_set, self.test_set, self.info = (
            data if data is not None else load_dataset(cfg.data)
        )
        self._check_compatible()
        k = self.info.num_classes
        _check_processes(dc, k)
        self.classes = class_share(k)  # this rank's classes; all of them in one process
        self.rows = slice(self.classes.start * dc.ipc, self.classes.stop * dc.ipc)
        self.networks = MatchingNetworks(cfg, self.info, self.train_set, self.device)
        self.dsa_strategy = dsa_strategy_for(self.info) if dc.dsa else ""
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
        self.opt = self._optimizer()
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

    # --- set-up ---------------------------------------------------------------------------

    def _check_compatible(self) -> None:
        info, dc = self.info, self.cfg.distill
        if self.ckpt is not None:
            require_same_shape(self.ckpt.info, info, "the generator")
        check_init(dc.init, dc.ipc, self.train_set)

    def _optimizer(self) -> torch.optim.Optimizer:
        dc = self.cfg.distill
        params = [p for p in self.syn.parameters() if p.requires_grad]
        if dc.optimizer == "adam":
            return torch.optim.Adam(params, lr=dc.lr)
        return torch.optim.SGD(params, lr=dc.lr, momentum=dc.momentum)

    def _attach_handlers(self) -> None:
        dc, engine = self.cfg.distill, self.engine
        engine.add_event_handler(Events.STARTED, self._on_started)
        self.scheduler: CosineAnnealingScheduler | None = None
        if dc.lr_schedule == "cosine":  # by iteration, not by the clock: runs stay reproducible
            lr = self.opt.param_groups[0]["lr"]
            self.scheduler = CosineAnnealingScheduler(
                self.opt, "lr", lr, 0.0, cycle_size=dc.max_iterations + 1
            )
            engine.add_event_handler(Events.ITERATION_STARTED, self.scheduler)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._check_stop)
        if dc.eval_every:
            engine.add_event_handler(
                Events.ITERATION_COMPLETED(every=dc.eval_every), self._quick_eval
            )
        if self.tb is not None:
            attach_tensorboard(engine, self.tb, dc, self._images01)
        if dc.progress and is_main():
            self.progress = attach_progress(engine, dc.max_minutes)
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

    # --- one outer iteration -----------------------------------------------------------------

    def _matching_step(self, net: ConvNet, gen: torch.Generator) -> dict[str, float]:
        """One update of the set's rows of this rank's classes against ``net``."""
        dc, k = self.cfg.distill, len(self.classes)
        n = self.info.num_classes
        real, real_y = real_batch(
            self.train_set, self.classes, dc.real_batch, self.info, gen, self.device
        )
        syn = self.syn(self.rows).view(k, dc.ipc, *real.shape[2:])
        syn_y = self.syn.labels[self.rows].view(k, dc.ipc)
        real, syn = siamese(real, syn, self.dsa_strategy, self.classes, n, gen)
        batch = Batch(real, real_y, syn, syn_y)
        match, extra, (grad_cos, grad_l2) = matching_loss(
            net, batch, dc, dc.grad_mode, self.device, n
        )
        loss = match + self.syn.penalty(dc, self.rows)
        for term in extra:
            loss = loss + term
        self.opt.zero_grad(set_to_none=True)
        # gradients for the set only: the network's weights are in the graph (the synthetic
        # gradients and embeddings depend on them) but their gradients would go unread
        loss.backward(inputs=[p for p in self.syn.parameters() if p.requires_grad])
        if dc.grad_clip > 0:
            clip_gradients(self.syn, dc.grad_clip)
        self.opt.step()
        self.syn.clamp_latents(dc.latent_clip)
        merge_rows([p for p in self.syn.parameters() if p.requires_grad], self.rows)
        sums = torch.tensor([match.item(), grad_cos, grad_l2], dtype=torch.float64)
        match_sum, cos_sum, l2_sum = all_sum_(sums.to(self.device)).tolist()
        return {"match_loss": match_sum, "grad_cosine": cos_sum / n, "grad_l2": l2_sum / n}

    def _inner_training(
        self, net: ConvNet, opt: torch.optim.Optimizer, gen: torch.Generator, epochs: int
    ) -> None:
        dc = self.cfg.distill
        with torch.no_grad():
            images = self.syn().detach()
        labels, strategy = self.syn.labels, self.dsa_strategy
        train_on_set(net, opt, images, labels, epochs, dc.batch_train, gen, strategy, dc.amp)

    def _step(self, engine: Engine, _batch: None) -> dict[str, float]:
        dc, it = self.cfg.distill, engine.state.iteration
        gen = step_generator(self.cfg.seed, it)
        net, net_opt, slot = self.networks.draw(it)
        net.train()
        outer = dc.outer_loop if dc.objective == "gm" else 1
        if dc.objective != "gm":
            net.requires_grad_(False)
        stats: list[dict[str, float]] = []
        for ol in range(outer):
            stats.append(self._matching_step(net, gen))
            if ol == outer - 1:
                break
            self._inner_training(net, net_opt, gen, dc.inner_loop)
        if slot is not None:  # one epoch on the updated set, then back into the pool
            net.requires_grad_(True)
            self._inner_training(net, net_opt, gen, 1)
            slot["age"] += 1
        out = {key: sum(s[key] for s in stats) / len(stats) for key in stats[0]}
        out["match_loss"] /= self.info.num_classes  # per class, comparable across datasets
        out["latent_norm"] = self.syn.latent_radius()
        out["seconds"] = time.perf_counter() - self._t0
        if dc.objective != "gm":
            del out["grad_cosine"], out["grad_l2"]
        return out

    # --- events ----------------------------------------------------------------------------

    def _on_started(self, engine: Engine) -> None:
        self._t0 = time.perf_counter() - self._elapsed  # the budget spans resumes

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
        """Test accuracy of one fresh network trained briefly (no augmentation) on the set."""
        ec = self.cfg.eval
        with torch.no_grad():
            images = self.syn().detach()

        quick = replace(ec, augment="none")
        return train_and_test(
            images,
            self.syn.labels,
            self.test_set,
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
        if self.tb is not None:
            self.tb.writer.add_scalar("distill/accuracy", acc, it)
            self.tb.writer.add_scalar(
                "distill/accuracy_vs_seconds", acc, int(self.history[-1]["seconds"])
            )

    @torch.no_grad()
    def _images01(self) -> Tensor:
        """The set's images as pixels in [0, 1] on the CPU."""
        return self.info.denormalize(self.syn()).clamp(0, 1).cpu()

    # --- resumable state -------------------------------------------------------------------

    def save_state(self, engine: Engine) -> None:
        """Checkpoint the completed iteration to ``<out>.state.pt`` (atomic). On several
        processes all call it: the optimiser's per-row state is merged first, so the state
        resumes on any number of processes; rank 0 writes it."""
        syn = self.syn
        moments = [v for st in self.opt.state.values() for v in st.values() if per_row(v, syn)]
        merge_rows(moments, self.rows)
        self.checkpoint(engine)

    def state_dict(self) -> dict:
        """Everything a resumed run needs to continue after the engine's iteration (what
        ignite's ``Checkpoint`` saves)."""
        return {
            "kind": KIND_DISTILL_STATE,
            "format_version": FORMAT_VERSION,
            "config": to_dict(self.cfg),
            "generator_sha256": None if self.ckpt is None else self.ckpt.sha256,
            "iteration": self.engine.state.iteration,
            "seconds": time.perf_counter() - self._t0,  # distillation time, all processes
            "set": set_tensors(self.syn),
            "optimizer": self.opt.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "pool": self.networks.state_dict(),
            "history": self.history,
            "stop_reason": self.stop_reason,
            "loss_tracking": self.patience.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Load a saved state (checked by :func:`load_state`) into the freshly built set,
        optimiser, schedule and loop."""
        path, dc = self.state_path, self.cfg.distill
        try:
            load_set_tensors(self.syn, state["set"], path)
            self.opt.load_state_dict(state["optimizer"])
            if self.scheduler is not None:
                self.scheduler.load_state_dict(state["scheduler"])
            self.networks.load_state_dict(state.get("pool") or [], path)
            self.patience.load_state_dict(state["loss_tracking"])
            self.history = list(state["history"])
            self.stop_reason = str(state["stop_reason"])
            self._elapsed = float(state["seconds"])
            iteration = int(state["iteration"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ArtifactError(f"{path} is a damaged distillation state ({exc})") from None
        self._done = self.stop_reason != STOP_ITERATIONS or iteration >= dc.max_iterations
        if self._done:  # nothing left to run; the final check and result read the iteration
            self.engine.state.iteration = iteration
        else:
            self.engine.load_state_dict(
                {"iteration": iteration, "epoch_length": dc.max_iterations, "max_epochs": 1}
            )

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
                (self.train_set, self.test_set, self.info),
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
        ds = self.result()
        if self.out is not None and is_main():
            ds.save(self.out)
            self.state_path.unlink(missing_ok=True)
        return ds


def distill(
    cfg: Config,
    generator: str | Path | GeneratorCheckpoint | None = None,
    out: str | Path | None = None,
    data: tuple[ImageTensors, ImageTensors, DatasetInfo] | None = None,
    resume: bool = False,
) -> DistilledSet:
    """Distil ``cfg.distill.ipc`` images per class (see :class:`Distiller`)."""
    return Distiller(cfg, generator=generator, out=out, data=data, resume=resume).run()
