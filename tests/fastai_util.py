"""The seeded XResNet behind the fastai reference outputs (scripts/fastai_reference.py writes
them with this function, tests/test_models.py checks against them with it)."""

from __future__ import annotations

import torch
from torch import nn

from enet.models import create_model


def seeded_model(name: str, opts: dict) -> nn.Module:
    """enet's model with seed 0 and every path made to matter: zero-initialised BatchNorm weights
    and self-attention's gamma set away from zero, running statistics made non-trivial (else a
    wrong conv path behind a zero gate would go unnoticed)."""
    torch.manual_seed(0)
    model = create_model(name, 10, **opts)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        for pname, p in model.named_parameters():
            if pname.endswith("gamma"):
                p.fill_(0.5)
    return model


def reference_input() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
