"""`--minutes`: a training run that ends on a wall-clock budget.

The schedule's length (its total steps) is not known in advance: it is fitted to the time left
from measured step times. First WARMUP_STEPS steps are left out (worker start, DALI's build,
cuDNN's autotuning, torch.compile), then CALIBRATION_STEPS steady steps are timed and the length
is fixed; at every epoch end it is fitted again from that epoch's steps and evaluation, so a
machine that slows down (or speeds up) mid-run still ends near its budget.

`TimeBudget` owns that state and arithmetic; the clock is handed in (the training loop's reads
the time after the device finished its queued work), so the arithmetic is tested with a
controlled clock instead of a timed run.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.distributed as dist

from .position import Position

WARMUP_STEPS = 3
CALIBRATION_STEPS = 10


class TimeBudget:
    """The run's length under a budget of `minutes`, refitted as the run learns its speed.

    `sizes` is the loader's `Resolutions` (progressive resizing makes early steps cheaper);
    `val_batches` estimates the first evaluation before one has been timed."""

    def __init__(
        self,
        minutes: float,
        steps_per_epoch: int,
        accum_steps: int,
        sizes,
        val_batches: int,
        env,
        clock: Callable[[], float],
    ) -> None:
        self.seconds = minutes * 60
        self.steps_per_epoch = steps_per_epoch
        self.accum_steps = accum_steps
        self.sizes = sizes
        self.val_batches = val_batches
        self.env = env
        self.clock = clock
        self.origin = clock()  # the clock when the run began (less the time of earlier sessions)
        self.mark: tuple[int, float, float] | None = None  # calibration began: step, full
        # steps (pixels-weighted), clock
        self.eval_s: float | None = None  # the last evaluation's seconds

    def begin(self, wall_s: float) -> None:
        """The run starts, or resumes after `wall_s` seconds spent in earlier sessions."""
        self.origin = self.clock() - wall_s

    def after_step(self, pos: Position) -> int | None:
        """Calibration: after the warm-up steps, time CALIBRATION_STEPS steady ones, then return
        the run's fitted length (None until then, and once calibrated)."""
        if pos.calibrated or pos.step < WARMUP_STEPS:
            return None
        if self.mark is None:
            self.mark = (pos.step, pos.run.full_steps, self.clock())
            return None
        first, first_full, start = self.mark
        if pos.step - first < CALIBRATION_STEPS:
            return None
        pos.calibrated = True
        return self.fit(pos, (self.clock() - start) / (pos.run.full_steps - first_full))

    def after_epoch(self, pos: Position, eval_s: float, full_step_s: float | None) -> int | None:
        """An epoch ended: its evaluation took `eval_s`, its steps `full_step_s` each at full size
        (None: it trained none). Returns the refitted length once calibrated."""
        self.eval_s = eval_s
        if not pos.calibrated or full_step_s is None:
            return None
        return self.fit(pos, full_step_s)

    def fit(self, pos: Position, full_step_s: float) -> int:
        """The largest length that ends within the time left, at `full_step_s` a full-size step
        and the last evaluation's time per epoch still to end."""
        left = self.seconds - (self.clock() - self.origin)
        eval_s = self.eval_s if self.eval_s is not None else self.val_batches * full_step_s / 3
        accum = self.accum_steps

        def areas(first: int, total: int):  # each step's cost, relative to a full-size one
            return self.sizes.areas(first * accum, total * accum)[::accum]

        return fit_steps(pos, left, full_step_s, eval_s, self.steps_per_epoch, self.env, areas)


def fit_steps(
    pos: Position,
    left_s: float,
    step_s: float,
    eval_s: float,
    steps_per_epoch: int,
    env,
    areas: Callable[[int, int], np.ndarray] | None = None,
) -> int:
    """How many steps in all end on time, given `left_s` seconds, a full-size step's time, an
    evaluation pass's (one per epoch still to end, the partial last one too) and
    `areas(first, total)`: the cost of steps first .. total-1 relative to a full-size step when
    the run has `total` (progressive resizing; None: 1 each). The largest total that fits, by
    bisection; the ranks agree on the smallest answer."""

    def cost(total: int) -> float:
        work = areas(pos.step, total).sum() if areas is not None else total - pos.step
        evals = max(1, math.ceil(total / steps_per_epoch) - pos.epoch)
        return step_s * work + evals * eval_s

    cheapest = areas(0, 1)[0] if areas is not None else 1.0  # the first step is the smallest
    low, high = pos.step, pos.step + int(left_s / (step_s * max(cheapest, 1e-6))) + 1
    while low < high:  # pos.step itself: the time is up, stop here
        mid = (low + high + 1) // 2
        low, high = (mid, high) if cost(mid) <= left_s else (low, mid - 1)
    total = low
    if env.distributed:
        t = torch.tensor(
            [total], dtype=torch.float64, device=env.device if env.device.type == "cuda" else "cpu"
        )
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        total = int(t.item())
    return total
