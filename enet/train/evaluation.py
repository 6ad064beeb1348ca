"""One pass of a model over an evaluation loader: loss, top-1, top-5, per-class counts and the
confusion matrix, reduced over ranks. The training loop's validation and `enet eval` share it."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..errors import EnetError
from ..settings import autocast


@dataclass
class EvalResult:
    loss: float
    top1: float  # percent
    top5: float  # percent
    count: int
    img_per_s: float
    per_class_correct: list[int]
    per_class_total: list[int]
    confusion: list[list[int]] | None = None  # [true][predicted]
    # with predictions=True, per image in the split's file order: "index" (into the split's
    # files), "label", "predicted", "p_true" (the true class's probability), numpy arrays
    predictions: dict[str, np.ndarray] | None = None


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader,
    num_classes: int,
    *,
    device: torch.device,
    precision: str = "fp32",
    tta: bool = False,
    confusion: bool = False,
    env=None,
    on_batch=None,
    predictions: bool = False,
) -> EvalResult:
    """One pass over `loader`; sums are reduced over ranks when `env` is distributed.
    `on_batch(done, total)` is called after each batch (progress). `predictions`: also each
    image's result (the loader's `current` gives the images' places in the split: a batch may
    be short of files that failed to decode)."""
    model.eval()
    n = num_classes
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct1 = torch.zeros((), dtype=torch.float64, device=device)
    correct5 = torch.zeros((), dtype=torch.float64, device=device)
    matrix = torch.zeros(n * n, dtype=torch.int64, device=device)
    start = time.perf_counter()
    kept: list[tuple] = []
    for done, (images, labels) in enumerate(loader, 1):
        with autocast(device, precision):
            logits = model(images)
            if tta:  # average the class probabilities with those of the mirrored image
                probs = (logits.float().softmax(1) + model(images.flip(3)).float().softmax(1)) / 2
                log_probs = probs.clamp_min(1e-12).log()
            else:
                log_probs = logits.float().log_softmax(1)
        loss_sum += F.nll_loss(log_probs, labels, reduction="sum")
        top = log_probs.topk(min(5, n), 1).indices
        correct1 += (top[:, 0] == labels).sum()
        correct5 += (top == labels[:, None]).any(1).sum()
        # index_add_ rather than bincount: no host synchronisation on CUDA
        matrix.index_add_(0, labels * n + top[:, 0], torch.ones_like(labels))
        if predictions:
            p_true = log_probs.gather(1, labels[:, None])[:, 0].exp()
            kept.append((loader.current, labels, top[:, 0], p_true))
        if on_batch is not None:
            on_batch(done, len(loader))
    elapsed = time.perf_counter() - start
    if env is not None and env.distributed:
        sums = torch.stack([loss_sum, correct1, correct5]).to(env.device)
        dist.all_reduce(sums)
        loss_sum, correct1, correct5 = sums
        matrix = matrix.to(env.device)
        dist.all_reduce(matrix)
    matrix = matrix.view(n, n).cpu()
    per_image = _per_image(kept, env) if predictions else None
    count = int(matrix.sum())
    if count == 0:
        raise EnetError("the evaluation split is empty")
    return EvalResult(
        loss=float(loss_sum) / count,
        top1=100.0 * float(correct1) / count,
        top5=100.0 * float(correct5) / count,
        count=count,
        img_per_s=count / elapsed if elapsed > 0 else 0.0,
        per_class_correct=matrix.diag().tolist(),
        per_class_total=matrix.sum(1).tolist(),
        confusion=matrix.tolist() if confusion else None,
        predictions=per_image,
    )


def _per_image(kept: list[tuple], env) -> dict[str, np.ndarray]:
    """This rank's (or, distributed, every rank's) per-image results, in the split's order."""
    if kept:
        parts = {
            "index": np.concatenate([np.asarray(k[0], dtype=np.int64) for k in kept]),
            "label": torch.cat([k[1] for k in kept]).cpu().numpy(),
            "predicted": torch.cat([k[2] for k in kept]).cpu().numpy(),
            "p_true": torch.cat([k[3].float() for k in kept]).cpu().numpy(),
        }
    else:
        parts = {k: np.empty(0) for k in ("index", "label", "predicted", "p_true")}
    if env is not None and env.distributed:
        gathered = [None] * env.world_size
        dist.all_gather_object(gathered, parts)
        parts = {k: np.concatenate([g[k] for g in gathered]) for k in parts}
    order = np.argsort(parts["index"], kind="stable")
    return {k: v[order] for k, v in parts.items()}
