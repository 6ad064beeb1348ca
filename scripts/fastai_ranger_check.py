"""Set enet's Ranger (and RAdam) against fastai's on the same small network, step for step.

Both start from the same weights and see the same batch; the script prints the largest weight
difference after N steps beside how far the weights moved. Run with fastai importable (checked
with fastai 2.8.12), from the repository root:

    python scripts/fastai_ranger_check.py            # the leaderboard recipe's eps, 1e-6
    python scripts/fastai_ranger_check.py --eps 1e-12

They agree to float precision (about 1e-7 after 60 steps, the weights having moved by 8e-2)
with either eps. Before enet's RAdam moved epsilon after the bias correction, as fastai's,
they differed by 2.3e-4 with eps 1e-6, and before its Lookahead's slow weights started at the
initial weights by 4.1e-3 (docs/results/study-xse-128-5ep/).
"""

from __future__ import annotations

import argparse
import copy
import warnings

import torch
from torch import nn

from enet.config import OptimConfig
from enet.train.optim import build_optimizer


def train(model: nn.Module, opt, steps: int) -> None:
    torch.manual_seed(1)
    x, y = torch.randn(64, 16), torch.randint(0, 5, (64,))
    for _ in range(steps):
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad()


def largest(a: nn.Module, b: nn.Module) -> float:
    return max(
        (p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters(), strict=True)
    )


def main() -> None:
    warnings.filterwarnings("ignore")
    from fastai.optimizer import RAdam, ranger

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eps", type=float, default=1e-6)
    ap.add_argument("--steps", type=int, default=60)
    args = ap.parse_args()
    theirs = {"ranger": ranger, "radam": RAdam}
    for name in ("ranger", "radam"):
        for wd in (1e-4, 1e-2):
            torch.manual_seed(0)
            start = nn.Sequential(
                nn.Linear(16, 32, bias=False), nn.Tanh(), nn.Linear(32, 5, bias=False)
            )
            ours, fastai = copy.deepcopy(start), copy.deepcopy(start)
            hp = dict(lr=8e-3, eps=args.eps)
            cfg = OptimConfig(name=name, momentum=0.95, beta2=0.99, weight_decay=wd, **hp)
            train(ours, build_optimizer(cfg, ours), args.steps)
            opt = theirs[name](list(fastai.parameters()), mom=0.95, sqr_mom=0.99, wd=wd, **hp)
            train(fastai, opt, args.steps)
            print(
                f"{name} wd {wd:g} eps {args.eps:g}, {args.steps} steps: max |enet - fastai| "
                f"{largest(ours, fastai):.2e}, weights moved up to {largest(start, fastai):.2e}"
            )


if __name__ == "__main__":
    main()
