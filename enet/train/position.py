"""Where a run stands: steps, epochs, the schedule's length, and the totals it reports.

Both live in every checkpoint (`Position.state()`), so that a run resumed mid-epoch reports
the same epoch metrics, time and throughput as one never interrupted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Totals:
    """Sums over a span of training: the whole run, or the running epoch."""

    train_s: float = 0.0  # training steps only
    data_wait_s: float = 0.0  # of train_s, spent waiting for the loader's next batch
    images: int = 0  # training images seen (all ranks)
    loss_sum: float = 0.0  # the step losses (mean over ranks), added at each check
    loss_count: int = 0  # optimiser steps
    full_steps: float = 0.0  # steps weighted by their pixels: (size / res)^2 each

    def add_step(self, seconds: float, images: int, area: float = 1.0) -> None:
        self.train_s += seconds
        self.images += images
        self.loss_count += 1
        self.full_steps += area

    @property
    def full_step_s(self) -> float:
        """Seconds per full-size step (progressive resizing trains smaller ones first)."""
        return self.train_s / max(self.full_steps, 1e-9)

    @property
    def img_per_s(self) -> float:
        return self.images / max(self.train_s, 1e-9)


@dataclass
class Position:
    step: int = 0  # optimiser steps done
    epoch: int = 0  # epochs completed
    total_steps: int = 0
    best_top1: float = -1.0
    wall_s: float = 0.0  # training and evaluation time, over every resume
    calibrated: bool = False  # time budget: total_steps fixed from measured step times
    run: Totals = field(default_factory=Totals)
    current: Totals = field(default_factory=Totals)  # the running epoch

    def wait(self, seconds: float) -> None:
        self.run.data_wait_s += seconds
        self.current.data_wait_s += seconds

    def add_step(self, seconds: float, images: int, area: float = 1.0) -> None:
        self.step += 1
        self.run.add_step(seconds, images, area)
        self.current.add_step(seconds, images, area)

    def add_losses(self, total: float) -> None:
        """The summed losses of the steps since the last check (read from the device then)."""
        self.run.loss_sum += total
        self.current.loss_sum += total

    def state(self) -> dict:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict) -> Position:
        """From a checkpoint: this layout, or the flat one of checkpoints before it."""
        state = dict(state)
        if "run" not in state:  # flat: train_s, ..., epoch_train_s, ...
            flat = {k: state.pop(k) for k in list(state) if k not in _SCALARS}
            state["run"] = {
                "train_s": flat.get("train_s", 0.0),
                "data_wait_s": flat.get("data_wait_s", 0.0),
                "images": flat.get("images", 0),
            }
            state["current"] = {
                "train_s": flat.get("epoch_train_s", 0.0),
                "data_wait_s": flat.get("epoch_data_wait_s", 0.0),
                "images": flat.get("epoch_images", 0),
                "loss_sum": flat.get("epoch_loss_sum", 0.0),
                "loss_count": flat.get("epoch_loss_count", 0),
            }
        for key in ("run", "current"):  # before progressive resizing every step was full size
            state[key] = dict(state[key])
            state[key].setdefault("full_steps", float(state[key].get("loss_count", 0)))
        run, current = Totals(**state.pop("run")), Totals(**state.pop("current"))
        return cls(**state, run=run, current=current)


_SCALARS = ("step", "epoch", "total_steps", "best_top1", "wall_s", "calibrated")
