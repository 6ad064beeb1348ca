"""Optimisers: SGD (Nesterov), AdamW, TensorFlow-style RMSprop, RAdam, and Ranger (RAdam +
Lookahead). RAdam's weight decay is decoupled (AdamW's, as fastai applies it). RAdam is torch's,
with its epsilon rescaled every step so that it lands where fastai's does (`RAdam` below).

Weight decay is never applied to BatchNorm weights or biases (any parameter with one dimension).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config import OptimConfig, Optimizer, one_of
from ..errors import EnetError


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(cfg: OptimConfig, model: nn.Module) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, cfg.beta2), eps=cfg.eps)
    if cfg.name == "rmsprop-tf":
        return RMSpropTF(groups, lr=cfg.lr, alpha=cfg.beta2, eps=cfg.eps, momentum=cfg.momentum)
    if cfg.name not in ("radam", "ranger"):
        raise EnetError(f"optim.name must be {one_of(Optimizer)}, got {cfg.name!r}")
    radam = RAdam(
        groups, lr=cfg.lr, betas=(cfg.momentum, cfg.beta2), eps=cfg.eps, decoupled_weight_decay=True
    )
    return Lookahead(radam) if cfg.name == "ranger" else radam


class RAdam(torch.optim.RAdam):
    """torch's RAdam with epsilon added after the bias correction, where fastai's RAdam (and
    torch's own Adam) add it. torch's adds eps to sqrt(v) and then divides by
    sqrt(1 - beta2^t), which makes eps effectively 1/sqrt(1 - beta2^t) times larger early on
    (4.1x at step 6 with beta2 0.99, 1.3x at step 100). Before each step the group's eps is set
    to the configured eps times sqrt(1 - beta2^t), which cancels that factor exactly; the rest
    is torch's implementation (its foreach kernels and state). t is the group's step count
    (a parameter that missed steps for want of a gradient is off by those steps).
    """

    def step(self, closure=None):
        for group in self.param_groups:
            base_eps = group.setdefault("base_eps", group["eps"])
            step = next((float(self.state[p]["step"]) for p in group["params"] if self.state[p]), 0)
            group["eps"] = base_eps * math.sqrt(1 - group["betas"][1] ** (step + 1))
        return super().step(closure)


class RMSpropTF(torch.optim.Optimizer):
    """RMSprop as TensorFlow computes it (the EfficientNet paper's optimiser).

    Two differences from torch.optim.RMSprop: epsilon is added *inside* the square root, and the
    mean square starts at 1, not 0 (so the first steps are not huge). Weight decay is L2, added
    to the gradient, as TF's regularisers do; momentum accumulates the scaled step (lr inside).
    """

    def __init__(
        self,
        params,
        lr: float = 0.016,
        alpha: float = 0.9,
        eps: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
    ) -> None:
        defaults = dict(lr=lr, alpha=alpha, eps=eps, momentum=momentum, weight_decay=weight_decay)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """One fused call per operation and group (torch._foreach_*), not one per tensor."""
        loss = None if closure is None else closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            for p in params:
                state = self.state[p]
                if not state:
                    state["square_avg"] = torch.ones_like(p)
                    state["momentum_buffer"] = torch.zeros_like(p)
            square_avg = [self.state[p]["square_avg"] for p in params]
            bufs = [self.state[p]["momentum_buffer"] for p in params]
            torch._foreach_mul_(square_avg, group["alpha"])
            torch._foreach_addcmul_(square_avg, grads, grads, value=1 - group["alpha"])
            denom = torch._foreach_add(square_avg, group["eps"])
            torch._foreach_sqrt_(denom)
            updates = torch._foreach_div(grads, denom)
            torch._foreach_mul_(bufs, group["momentum"])
            torch._foreach_add_(bufs, updates, alpha=group["lr"])
            torch._foreach_sub_(params, bufs)
        return loss


class Lookahead(torch.optim.Optimizer):
    """Lookahead (Zhang et al. 2019) around any optimiser: every k steps the slow weights move
    alpha of the way to the fast ones, and the fast weights restart from there.

    Ranger = Lookahead(RAdam), as fastai's Imagenette leaderboard entries train. The slow weights
    live in the inner optimiser's per-parameter state, so `state_dict()` holds everything.
    """

    def __init__(self, base: torch.optim.Optimizer, k: int = 6, alpha: float = 0.5) -> None:
        self.base = base
        self.k, self.alpha = k, alpha
        self.param_groups = base.param_groups
        self.defaults = base.defaults
        self.state = base.state
        for group in self.param_groups:
            group.setdefault("lookahead_count", 0)

    def __getstate__(self):
        return {"base": self.base, "k": self.k, "alpha": self.alpha}

    @torch.no_grad()
    def step(self, closure=None):
        # The slow weights start where a parameter's training starts (fastai's Lookahead): copied
        # before its first step, stored after it, since the inner optimiser sets up a
        # parameter's state only while that state is empty.
        fresh = {
            p: p.detach().clone()
            for group in self.param_groups
            for p in group["params"]
            if not self.base.state[p]
        }
        loss = self.base.step(closure)
        for p, start in fresh.items():
            if self.base.state[p]:  # stepped now (a parameter without a gradient is not)
                self.base.state[p]["lookahead_slow"] = start
        for group in self.param_groups:
            group["lookahead_count"] += 1
            if group["lookahead_count"] % self.k:
                continue
            for p in group["params"]:
                slow = self.base.state[p].get("lookahead_slow")
                if slow is not None:
                    slow.add_(p - slow, alpha=self.alpha)
                    p.copy_(slow)
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base.zero_grad(set_to_none=set_to_none)

    def state_dict(self):
        return self.base.state_dict()

    def load_state_dict(self, state_dict) -> None:
        self.base.load_state_dict(state_dict)
        self.param_groups = self.base.param_groups
        self.state = self.base.state
