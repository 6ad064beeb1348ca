"""`--minutes`: the time budget's arithmetic under a controlled clock (no timed runs: the
wall-clock check of a real run is the `slow` test in test_train.py).

`simulate` drives `TimeBudget` as the training loop does (steps, an evaluation at each epoch
end, the length it returns taking effect at once), with a clock that advances by the step and
evaluation times the scenario says, so a machine that slows down mid-run is a parameter."""

from __future__ import annotations

import torch

from enet.data.common import Resolutions
from enet.train.budget import CALIBRATION_STEPS, WARMUP_STEPS, TimeBudget
from enet.train.distributed import DistEnv
from enet.train.position import Position, Totals

ENV = DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


class Clock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def simulate(
    minutes: float,
    step_s,
    eval_s: float = 2.0,
    steps_per_epoch: int = 20,
    sizes: Resolutions | None = None,
    wall_s: float = 0.0,
    refit: bool = True,
):
    """Run the loop's bookkeeping against a clock: `step_s(elapsed)` is a full-size step's time
    at that point of the run. Returns (seconds the run took, position, lengths fitted)."""
    sizes = sizes or Resolutions(res=128)
    clock = Clock()
    budget = TimeBudget(minutes, steps_per_epoch, 1, sizes, 6, ENV, clock)
    pos = Position(total_steps=100 * steps_per_epoch)
    budget.begin(wall_s)
    start = clock.t - wall_s
    lengths = []
    while pos.step < pos.total_steps:
        while True:
            area = float(sizes.areas(pos.step, pos.total_steps)[0])
            dt = step_s(clock.t - start) * area
            clock.t += dt
            pos.add_step(dt, 32, area)
            if (total := budget.after_step(pos)) is not None:
                lengths.append(total)
                pos.total_steps = total
            if pos.step >= pos.total_steps or pos.step % steps_per_epoch == 0:
                break
        clock.t += eval_s
        pos.epoch += 1
        current, pos.current = pos.current, Totals()
        total = budget.after_epoch(pos, eval_s, current.full_step_s)
        if total is not None and refit:
            lengths.append(total)
            pos.total_steps = total
    return clock.t - start, pos, lengths


def test_calibration_times_steady_steps_then_fixes_the_length():
    # an evaluation as long as the first fit estimates it (6 batches at a third of a step each)
    elapsed, pos, lengths = simulate(1.0, lambda t: 0.5, eval_s=1.0)
    assert pos.calibrated
    # calibrated after the warm-up and the timed steps, then refitted at each epoch end
    assert len(lengths) == 1 + pos.epoch
    assert set(lengths) == {pos.total_steps} and pos.step == pos.total_steps  # it holds
    # ends on the budget, within one step (and never past it)
    assert 60 - 0.5 <= elapsed <= 60, elapsed


def test_the_first_evaluation_corrects_the_estimated_one():
    elapsed, pos, lengths = simulate(1.0, lambda t: 0.5, eval_s=2.0)  # twice the estimate
    assert lengths[0] > lengths[-1] == pos.step
    assert 60 - 0.5 <= elapsed <= 60, elapsed


def test_no_length_is_fitted_before_the_steady_steps_are_timed():
    clock = Clock()
    budget = TimeBudget(1.0, 20, 1, Resolutions(res=128), 6, ENV, clock)
    pos = Position(total_steps=100)
    for _ in range(WARMUP_STEPS + CALIBRATION_STEPS - 1):
        clock.t += 0.5
        pos.add_step(0.5, 32)
        assert budget.after_step(pos) is None
    clock.t += 0.5
    pos.add_step(0.5, 32)
    assert budget.after_step(pos) is not None and pos.calibrated


def test_a_machine_that_slows_down_mid_run_still_ends_near_its_budget():
    """Twice as slow from a third of the budget on (another job took a core): the epoch-end
    refits shorten the run; the calibrated length alone would overrun by about a half."""

    def slows(t: float) -> float:
        return 0.5 if t < 60 else 1.0

    elapsed, pos, lengths = simulate(3.0, slows)
    assert lengths[-1] < lengths[0]
    assert 0.85 * 180 <= elapsed <= 1.05 * 180, elapsed
    unrefitted, _, _ = simulate(3.0, slows, refit=False)
    assert unrefitted > 1.4 * 180  # the check above can fail: without refits it overruns


def test_a_machine_that_speeds_up_uses_the_time_it_gains():
    elapsed, _, lengths = simulate(3.0, lambda t: 1.0 if t < 60 else 0.5)
    assert lengths[-1] > lengths[0]
    assert 0.9 * 180 <= elapsed <= 180, elapsed


def test_a_resumed_run_fits_only_the_time_left():
    whole, pos_whole, _ = simulate(2.0, lambda t: 0.5)
    rest, pos_rest, _ = simulate(2.0, lambda t: 0.5, wall_s=60.0)
    assert 60 - 0.5 <= rest - 60 <= 60 and 120 - 0.5 <= whole <= 120
    assert pos_rest.step < 0.6 * pos_whole.step


def test_progressive_resizing_fits_more_cheap_steps_in_the_same_time():
    fixed_s, fixed, _ = simulate(2.0, lambda t: 0.5)
    ramp = Resolutions(res=128, min_res=64, ramp_start=0.2, ramp_end=0.8)
    ramp_s, ramped, _ = simulate(2.0, lambda t: 0.5, sizes=ramp)
    assert ramped.step > 1.2 * fixed.step
    assert 0.95 * 120 <= ramp_s <= 120, ramp_s
