"""Learning-rate schedules: pure functions of the optimiser step.

A schedule is `lr_at(step) -> float` over `total_steps`; nothing is stored, so a resumed run
needs only the step number. Shapes follow fastai (one-cycle, flat-cos) and the common
warm-up + cosine.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..config import Schedule, ScheduleConfig, one_of
from ..errors import EnetError


def _cos(start: float, end: float, pos: float) -> float:
    """Cosine from `start` (pos 0) to `end` (pos 1), as fastai's SchedCos."""
    return start + (1 + math.cos(math.pi * (1 - pos))) * (end - start) / 2


def one_cycle(
    step: int,
    total: int,
    lr: float,
    warmup_pct: float = 0.25,
    div: float = 25.0,
    div_final: float = 1e5,
) -> float:
    """fastai's fit_one_cycle: cosine from lr/div up to lr over warmup_pct, then down to
    lr/div_final."""
    pos = min(step / max(total, 1), 1.0)
    if pos < warmup_pct:
        return _cos(lr / div, lr, pos / warmup_pct)
    return _cos(lr, lr / div_final, (pos - warmup_pct) / (1 - warmup_pct))


def flat_cos(
    step: int, total: int, lr: float, flat_pct: float = 0.72, div_final: float = 1e5
) -> float:
    """fastai's fit_flat_cos: lr until flat_pct, then cosine down to lr/div_final."""
    pos = min(step / max(total, 1), 1.0)
    if pos < flat_pct:
        return lr
    return _cos(lr, lr / div_final, (pos - flat_pct) / (1 - flat_pct))


def warmup_cosine(step: int, total: int, lr: float, warmup_pct: float = 0.05) -> float:
    """Linear warm-up from 0 over warmup_pct of the steps, then cosine down to 0."""
    warmup = int(round(warmup_pct * total))
    if step < warmup:
        return lr * (step + 1) / warmup
    pos = min((step - warmup) / max(total - warmup, 1), 1.0)
    return lr * 0.5 * (1 + math.cos(math.pi * pos))


def make_schedule(cfg: ScheduleConfig, lr: float, total_steps: int) -> Callable[[int], float]:
    if cfg.name == "one-cycle":
        return lambda step: one_cycle(step, total_steps, lr, cfg.warmup_pct, cfg.div, cfg.div_final)
    if cfg.name == "flat-cos":
        return lambda step: flat_cos(step, total_steps, lr, cfg.flat_pct, cfg.div_final)
    if cfg.name == "cosine":
        return lambda step: warmup_cosine(step, total_steps, lr, cfg.warmup_pct)
    raise EnetError(f"schedule.name must be {one_of(Schedule)}, got {cfg.name!r}")
