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
        self._params = list(self.module.parameters())
        self._buffers = list(self.module.buffers())

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One fused call per kind (torch._foreach_*): a few kernels, not one per tensor."""
        torch._foreach_lerp_(self._params, [p.detach() for p in model.parameters()], 1 - self.decay)
        torch._foreach_copy_(self._buffers, list(model.buffers()))

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)
