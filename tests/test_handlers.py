"""The handlers both training loops share: the stop after Ctrl-C and the stop rules."""

from ignite.engine import Engine, Events

from gandistill.handlers import LossPatience, StopOnInterrupt, budget_spent
from gandistill.runtime import InterruptFlag


def _engine_raising_flag_at(iteration: int, flag: InterruptFlag) -> Engine:
    def step(engine: Engine, batch: float) -> float:
        if engine.state.iteration == iteration:
            flag.requested = True  # as the signal handler does between iterations
        return batch

    return Engine(step)


def test_stop_on_interrupt_saves_the_iteration_and_skips_completed():
    flag, saves, completed = InterruptFlag(), [], []
    engine = _engine_raising_flag_at(3, flag)
    handler = StopOnInterrupt(flag, save=lambda e: saves.append(e.state.iteration))
    engine.add_event_handler(Events.ITERATION_COMPLETED, handler)
    engine.add_event_handler(Events.COMPLETED, lambda e: completed.append(True))
    engine.run([0.0] * 10, max_epochs=1)
    assert saves == [3] and handler.stopped_at == 3 and engine.state.iteration == 3
    assert completed == []  # an interrupted run does not finish


def test_stop_on_interrupt_does_not_save_twice_and_waits_for_a_good_iteration():
    flag, saves = InterruptFlag(), []
    engine = _engine_raising_flag_at(2, flag)
    handler = StopOnInterrupt(
        flag,
        save=lambda e: saves.append(e.state.iteration),
        saved=lambda e: e.state.iteration % 2 == 0,  # a periodic checkpoint has it already
        when=lambda e: e.state.iteration >= 4,  # e.g. its losses are finite
    )
    engine.add_event_handler(Events.ITERATION_COMPLETED, handler)
    engine.run([0.0] * 10, max_epochs=1)
    assert saves == [] and handler.stopped_at == 4


def test_no_interrupt_runs_to_the_end():
    flag = InterruptFlag()
    engine = _engine_raising_flag_at(99, flag)
    handler = StopOnInterrupt(flag, save=lambda e: None)
    engine.add_event_handler(Events.ITERATION_COMPLETED, handler)
    engine.run([0.0] * 5, max_epochs=1)
    assert handler.stopped_at is None and engine.state.iteration == 5


def test_loss_patience_converges_after_patience_iterations_without_improvement():
    rule = LossPatience(patience=3, tolerance=0.01, smoothing=0.0)  # no smoothing: raw losses
    decisions = [rule.converged(loss, it) for it, loss in enumerate([5, 4, 3, 3, 3, 3], 1)]
    assert decisions == [False, False, False, False, False, True]  # best at 3, stalled to 6
    assert not any(LossPatience(0, 0.01).converged(1.0, it) for it in range(1, 50))  # off


def test_loss_patience_resumes_from_its_state():
    losses = [9.0, 7.0, 6.5, 6.4, 6.4, 6.4, 6.4, 6.4]
    whole = LossPatience(patience=2, tolerance=0.05)
    expected = [whole.converged(loss, it) for it, loss in enumerate(losses, 1)]
    first = LossPatience(patience=2, tolerance=0.05)
    head = [first.converged(loss, it) for it, loss in enumerate(losses[:4], 1)]
    second = LossPatience(patience=2, tolerance=0.05)
    second.load_state_dict(first.state_dict())
    tail = [second.converged(loss, it) for it, loss in enumerate(losses[4:], 5)]
    assert head + tail == expected and any(expected)


def test_budget_spent():
    assert not budget_spent(10_000.0, 0.0)  # no budget
    assert not budget_spent(59.9, 1.0)
    assert budget_spent(60.0, 1.0)
