"""`enet lr-find`: the learning-rate range test (Smith 2015; fastai's `lr_find`).

A fresh model of the recipe (its optimiser, precision, data and augmentation) trains for up to
`num_it` steps while the learning rate rises exponentially from `start_lr` to `end_lr`; the loss,
smoothed with a debiased moving average, is recorded until it exceeds 4x its minimum (or turns
non-finite). The suggestion is fastai's "valley": the middle of the longest stretch over which
the smoothed loss keeps falling, slightly towards its start. Nothing is saved: no run folder,
no checkpoint; the plot is the only file, where asked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import chain, islice, repeat

from .config import Config
from .errors import EnetError
from .settings import resolve_precision, resolve_resolution, use_threads
from .train import distributed
from .train.build import build_data, build_trainable
from .train.loop import loss_of

SMOOTHING = 0.98  # fastai's beta
STOP_FACTOR = 4.0  # stop once the smoothed loss exceeds this many times its minimum
MIN_DESCENT = 10  # a valley found on fewer falling steps is a guess: say so


@dataclass
class LRFind:
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # per step, raw
    smoothed: list[float] = field(default_factory=list)
    stopped: str = "end"  # "end" (num_it steps), "diverged" or "non-finite"
    suggestion: float | None = None  # the valley
    min_lr: float | None = None  # the smoothed minimum's lr / 10 (fastai's older rule)
    descent_steps: int = 0  # steps in the longest descent the valley lies in
    warning: str | None = None  # the sweep was too short for a trustworthy valley

    def as_dict(self) -> dict:
        return {
            "suggestion": self.suggestion,
            "min_lr_div10": self.min_lr,
            "stopped": self.stopped,
            "descent_steps": self.descent_steps,
            "warning": self.warning,
            "steps": len(self.lrs),
            "lrs": self.lrs,
            "losses": self.losses,
            "smoothed": self.smoothed,
        }


def lr_find(cfg: Config, start_lr: float = 1e-7, end_lr: float = 10.0, num_it: int = 100) -> LRFind:
    if not 0 < start_lr < end_lr:
        raise EnetError(f"lr-find needs 0 < --start-lr < --end-lr, got {start_lr}, {end_lr}")
    if num_it < 5:
        raise EnetError(f"lr-find needs --num-it >= 5, got {num_it}")
    env = distributed.setup(cfg.train.device)
    use_threads(cfg.train.threads)
    precision = resolve_precision(cfg.train.precision, env.device, cfg.model.name)
    train_loader, _, classes = build_data(cfg, env, resolve_resolution(cfg))
    model, optimizer, scaler, _, _ = build_trainable(cfg, env, len(classes), precision)
    model.train()
    result = LRFind()
    best, average = math.inf, 0.0
    batches = islice(chain.from_iterable(repeat(train_loader)), num_it)  # over epochs
    for i, (images, labels) in enumerate(batches):
        lr = start_lr * (end_lr / start_lr) ** (i / (num_it - 1))
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = loss_of(model, images, labels, precision, cfg.optim.label_smoothing)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        value = loss.item()
        if not math.isfinite(value):
            result.stopped = "non-finite"
            break
        average = SMOOTHING * average + (1 - SMOOTHING) * value
        smoothed = average / (1 - SMOOTHING ** (i + 1))
        result.lrs.append(lr)
        result.losses.append(value)
        result.smoothed.append(smoothed)
        best = min(best, smoothed)
        if i > 10 and smoothed > STOP_FACTOR * best:
            result.stopped = "diverged"
            break
    if len(result.lrs) < 3:
        raise EnetError(
            f"lr-find: the loss diverged within {len(result.lrs)} steps; lower --start-lr"
        )
    result.suggestion, result.descent_steps = valley(result.lrs, result.smoothed, steps=True)
    if result.descent_steps < MIN_DESCENT:
        result.warning = (
            f"the valley lies in a descent of only {result.descent_steps} steps (of "
            f"{len(result.lrs)}): too few to trust; give --num-it {max(100, 2 * num_it)} or more"
        )
    result.min_lr = result.lrs[result.smoothed.index(min(result.smoothed))] / 10
    return result


def valley(lrs: list[float], losses: list[float], steps: bool = False):
    """The lr a third and a half into the longest run of steps over which the loss keeps
    decreasing (a longest decreasing subsequence, ended where it is longest): steep enough to
    learn fast, far enough from the minimum to stay stable. `steps`: (lr, the run's length)."""
    n = len(losses)
    length = [1] * n
    end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and length[i] < length[j] + 1:
                length[i] = length[j] + 1
        if length[i] > length[end]:
            end = i
    start = end - length[end] + 1
    third = (end - start) / 3
    pick = lrs[start + int(third) + int(third / 2)]
    return (pick, length[end]) if steps else pick
