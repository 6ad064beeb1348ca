"""The steps since the last check, kept on the training device.

Reading a loss (`.item()`) makes the host wait for the device. The loop instead adds each
step's loss here, on the device, with the first step whose loss was not finite; every
`log_every_steps` (and before any checkpoint) one small tensor — loss sum, first bad step, stop
flag — is all-reduced over the ranks and read back: one synchronisation per window instead of
one or two per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist

NO_BAD_STEP = math.inf


class LossWindow:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.first_bad = torch.full((), NO_BAD_STEP, dtype=torch.float64, device=device)
        self.first_step: int | None = None  # the window's first step (1-based)
        self.steps = 0

    def add(self, step: int, loss: torch.Tensor) -> None:
        """Step `step`'s loss (a 0-d tensor on the device): no host synchronisation."""
        loss = loss.to(torch.float64)
        if self.first_step is None:
            self.first_step = step
        self.steps += 1
        finite = torch.isfinite(loss)
        self.loss_sum += torch.where(finite, loss, 0.0)
        here = torch.full((), float(step), dtype=torch.float64, device=self.device)
        self.first_bad = torch.minimum(self.first_bad, torch.where(finite, NO_BAD_STEP, here))

    def read(self, stop: bool, world_size: int) -> WindowResult:
        """Close the window and start the next. Under DDP one all-gather of three numbers per
        rank; then one read of the device."""
        flag = torch.tensor(float(stop), dtype=torch.float64, device=self.device)
        values = torch.stack([self.loss_sum, self.first_bad, flag])
        if world_size > 1:
            if dist.get_backend() == "gloo":
                values = values.cpu()
            gathered = [torch.empty_like(values) for _ in range(world_size)]
            dist.all_gather(gathered, values)
            every = torch.stack(gathered)
            values = torch.stack([every[:, 0].sum(), every[:, 1].min(), every[:, 2].max()])
        loss_sum, first_bad, stop_any = values.tolist()
        result = WindowResult(
            self.steps, self.first_step, loss_sum / world_size, first_bad, stop_any > 0
        )
        self.loss_sum.zero_()
        self.first_bad.fill_(NO_BAD_STEP)
        self.first_step, self.steps = None, 0
        return result


@dataclass
class WindowResult:
    steps: int
    first_step: int | None
    loss_total: float  # the steps' losses (each the mean over ranks), summed
    first_bad: float  # the first step whose loss was not finite on some rank; inf: none
    stop: bool  # some rank was asked to stop

    @property
    def mean_loss(self) -> float:
        return self.loss_total / max(self.steps, 1)

    @property
    def failed(self) -> bool:
        return math.isfinite(self.first_bad)
