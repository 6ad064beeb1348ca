"""Exponential moving average of a model's weights (evaluated beside the raw weights)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """ema = decay * ema + (1 - decay) * weights every `every` optimiser steps; buffers
    (BatchNorm statistics) are copied, as timm's ModelEmaV2 does.

    `warmup`: timm's ModelEmaV3 warm-up, the decay after step t (1-based) is
    min(decay, 1 - t^-3/4): 0 at the first step, so the average starts from trained weights
    instead of the random ones a 0.999 decay would keep for thousands of steps (what makes an
    EMA useless in short runs). `every` > 1 updates every `every` steps with decay^every: the
    same horizon in steps for a fraction of the (memory-bound) updates.
    """

    WARMUP_POWER = 0.75

    def __init__(self, model: nn.Module, decay: float, warmup: bool = False, every: int = 1):
        self.decay, self.warmup, self.every = decay, warmup, every
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self._params = list(self.module.parameters())
        self._buffers = list(self.module.buffers())

    def decay_at(self, step: int) -> float:
        """The decay of the update after optimiser step `step` (1-based), per update."""
        decay = self.decay
        if self.warmup:
            decay = min(decay, 1.0 - float(step) ** -self.WARMUP_POWER)
        return decay**self.every

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """After optimiser step `step` (1-based); one fused call per kind (torch._foreach_*)."""
        if step % self.every:
            return
        weight = 1.0 - self.decay_at(step)
        torch._foreach_lerp_(self._params, [p.detach() for p in model.parameters()], weight)
        if self._buffers:
            torch._foreach_copy_(self._buffers, list(model.buffers()))

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)
