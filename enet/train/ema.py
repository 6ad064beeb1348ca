"""Exponential moving average of a model's weights (evaluated beside the raw weights)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """ema = decay * ema + (1 - decay) * weights after each optimiser step; buffers (BatchNorm
    statistics) are copied, as timm's ModelEmaV2 does."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for ema_p, p in zip(self.module.parameters(), model.parameters(), strict=True):
            ema_p.lerp_(p.detach(), 1.0 - self.decay)
        for ema_b, b in zip(self.module.buffers(), model.buffers(), strict=True):
            ema_b.copy_(b)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)
