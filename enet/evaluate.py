"""Evaluation: top-1/top-5, loss and per-class counts of a model on a loader (all ranks), and
`enet eval CHECKPOINT` (tables, a confusion-matrix PNG and eval.json)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import EnetError
from .runtime import retain_on_cpu


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

    def summary(self) -> dict:
        return dict(
            loss=self.loss,
            top1=self.top1,
            top5=self.top5,
            count=self.count,
            img_per_s=self.img_per_s,
        )


def autocast_dtype(precision: str) -> torch.dtype | None:
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


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
) -> EvalResult:
    """One pass over `loader`; sums are reduced over ranks when `env` is distributed."""
    model.eval()
    dtype = autocast_dtype(precision)
    n = num_classes
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct1 = torch.zeros((), dtype=torch.float64, device=device)
    correct5 = torch.zeros((), dtype=torch.float64, device=device)
    matrix = torch.zeros(n * n, dtype=torch.int64, device=device)
    start = time.perf_counter()
    for images, labels in loader:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
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
        matrix += torch.bincount(labels * n + top[:, 0], minlength=n * n)
    elapsed = time.perf_counter() - start
    if env is not None and env.distributed:
        import torch.distributed as dist

        sums = torch.stack([loss_sum, correct1, correct5]).to(env.device)
        dist.all_reduce(sums)
        loss_sum, correct1, correct5 = sums
        matrix = matrix.to(env.device)
        dist.all_reduce(matrix)
    matrix = matrix.view(n, n).cpu()
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
    )


# ---------------------------------------------------------------------------------------------
# enet eval


def run_eval(
    checkpoint: str,
    *,
    data: str | None = None,
    res: int | None = None,
    batch_size: int | None = None,
    tta: bool = False,
    ema: bool = False,
    out: str | None = None,
    device: str = "auto",
    loader: str = "auto",
    workers: int | None = None,
    console=None,
) -> dict:
    """Evaluate a checkpoint; write eval.json and confusion.png into OUT; return the results."""
    from rich.console import Console
    from rich.table import Table

    from .config import config_from_dict
    from .data import build_eval_loader
    from .models import create_model
    from .train.checkpoint import load_checkpoint
    from .train.distributed import resolve_device
    from .train.loop import model_options, resolve_precision, resolve_resolution

    console = console or Console()
    ckpt = load_checkpoint(checkpoint)
    if "model" not in ckpt or "config" not in ckpt:
        raise EnetError(f"{checkpoint} is not an enet checkpoint (no model or config)")
    cfg = config_from_dict(ckpt["config"])
    classes = list(ckpt["classes"])
    dev = resolve_device(device)
    precision = resolve_precision(cfg.train.precision, dev)
    eval_res = res or cfg.data.eval_res or resolve_resolution(cfg)
    channels_last = cfg.train.channels_last
    retain_on_cpu(dev, cfg.train.retain_cpu_memory)
    val, data_classes = build_eval_loader(
        data or cfg.data.data,
        eval_res,
        batch_size or cfg.train.batch_size,
        loader=loader,
        device=dev,
        crop_pct=cfg.data.crop_pct,
        workers=workers,
        channels_last=channels_last,
    )
    if data_classes != classes:
        only_ckpt = sorted(set(classes) - set(data_classes))
        only_data = sorted(set(data_classes) - set(classes))
        raise EnetError(
            f"the checkpoint's {len(classes)} classes do not match the data's {len(data_classes)}"
            f" (only in the checkpoint: {', '.join(only_ckpt[:5]) or '-'}; only in the data: "
            f"{', '.join(only_data[:5]) or '-'}"
            + ("; same names, other order" if not (only_ckpt or only_data) else "")
            + ")"
        )
    model = create_model(cfg.model.name, len(classes), **model_options(cfg))
    if ema:
        if ckpt.get("ema") is None:
            raise EnetError(
                f"{checkpoint} has no EMA weights (train with --set train.ema_decay=0.999)"
            )
        model.load_state_dict(ckpt["ema"])
    else:
        model.load_state_dict(ckpt["model"])
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(dev, memory_format=memory_format)
    result = evaluate(
        model, val, len(classes), device=dev, precision=precision, tta=tta, confusion=True
    )
    out_dir = Path(out) if out else Path(checkpoint).resolve().parent.parent / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    record = dict(
        checkpoint=str(checkpoint),
        data=str(data or cfg.data.data),
        res=eval_res,
        tta=tta,
        ema=ema,
        classes=classes,
        step=ckpt.get("step"),
        **asdict(result),
    )
    from .fileio import write_json_atomic
    from .report import confusion_plot

    write_json_atomic(out_dir / "eval.json", record)
    confusion_plot(
        result.confusion,
        classes,
        out_dir / "confusion.png",
        title=f"{cfg.model.name}: top-1 {result.top1:.2f}%",
    )

    table = Table(
        title=f"{cfg.model.name} on {data or cfg.data.data} ({result.count} images, "
        f"{eval_res}px{', TTA' if tta else ''}{', EMA' if ema else ''})"
    )
    for col in ("top-1 %", "top-5 %", "loss", "img/s"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{result.top1:.2f}", f"{result.top5:.2f}", f"{result.loss:.4f}", f"{result.img_per_s:.0f}"
    )
    console.print(table)
    per_class = Table(title="per-class accuracy")
    for col in ("class", "correct", "images", "accuracy %"):
        per_class.add_column(col, justify="left" if col == "class" else "right")
    for name, c, t in zip(classes, result.per_class_correct, result.per_class_total, strict=True):
        per_class.add_row(name, str(c), str(t), f"{100 * c / t:.1f}" if t else "-")
    console.print(per_class)
    console.print(f"wrote {out_dir / 'eval.json'} and {out_dir / 'confusion.png'}")
    return record
