"""Evaluation: top-1/top-5, loss and per-class counts of a model on a loader (all ranks), and
`enet eval CHECKPOINT` (tables, a confusion-matrix PNG and eval.json)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from torch import nn

from .config import check_res
from .data import build_eval_loader
from .data.datasets import check_data_present
from .errors import EnetError
from .models import create_model
from .report.aggregate import eval_record
from .report.files import print_eval, write_eval
from .runtime import retain_on_cpu
from .settings import (
    model_options,
    resolve_crop_pct,
    resolve_normalization,
    resolve_precision,
    resolve_resolution,
)
from .train.checkpoint import open_checkpoint
from .train.distributed import resolve_device
from .train.evaluation import evaluate
from .train.records import write_predictions

# ---------------------------------------------------------------------------------------------
# enet eval


def eval_folder(checkpoint: Path, res: int, tta: bool, ema: bool, data: str | None) -> Path:
    """<run>/eval/<checkpoint>-<res>px[-tta][-ema][-<data>]: one folder per set of options, so a
    second evaluation never replaces another's files."""
    name = f"{checkpoint.stem}-{res}px" + ("-tta" if tta else "") + ("-ema" if ema else "")
    if data:
        name += "-" + Path(data).name.replace(" ", "_")
    return checkpoint.resolve().parent.parent / "eval" / name


def _val_loader(cfg, data, eval_res, batch_size, loader, dev, workers):
    """The validation images as the run evaluated them (its crop, normalisation, channel
    layout), from --data or the run's own data: (loader, the data's classes)."""
    mean, std = resolve_normalization(cfg)
    return build_eval_loader(
        data or cfg.data.data,
        eval_res,
        batch_size or cfg.train.batch_size,
        loader=loader,
        device=dev,
        crop_pct=resolve_crop_pct(cfg),
        workers=workers,
        channels_last=cfg.train.channels_last,
        mean=mean,
        std=std,
        # the run's own held-out split, made again; another --data brings its own
        val_pct=cfg.data.val_pct if data is None else None,
        split_seed=cfg.data.split_seed,
    )


def run_eval(
    checkpoint: str,
    *,
    data: str | None = None,
    res: int | None = None,
    batch_size: int | None = None,
    tta: bool = False,
    ema: bool = False,
    out: str | None = None,
    overwrite: bool = False,
    device: str = "auto",
    loader: str = "auto",
    workers: int | None = None,
    console=None,
) -> dict:
    """Evaluate a checkpoint: print the results, then write eval.json, per_class.csv and the
    plots into OUT. Returns the record written to eval.json."""
    console = console or Console()
    check_res(res)
    if batch_size is not None and batch_size < 1:
        raise EnetError(f"--batch-size must be >= 1, got {batch_size}")
    path, cfg, classes, weights, step, val_digest = open_checkpoint(checkpoint, ema)
    if data is None:
        check_data_present(cfg.data.data, "enet eval")
    eval_res = res or cfg.data.eval_res or resolve_resolution(cfg)
    out_dir = Path(out) if out else eval_folder(path, eval_res, tta, ema, data)
    options = dict(
        checkpoint=str(path), data=str(data or cfg.data.data), res=eval_res, tta=tta, ema=ema
    )
    _check_out(out_dir, options, overwrite)
    dev = resolve_device(device)
    retain_on_cpu(dev, cfg.train.retain_cpu_memory)
    val, data_classes = _val_loader(cfg, data, eval_res, batch_size, loader, dev, workers)
    _check_classes(classes, data_classes)
    if data is None and cfg.data.val_pct and val_digest not in (None, val.val_digest):
        raise EnetError(
            f"enet eval: {cfg.data.data} changed since the run: its held-out validation split "
            f"(data.val_pct {cfg.data.val_pct}) no longer holds the images the run held out"
        )
    model = load_model(cfg, weights, len(classes), dev)
    with _progress(console, f"evaluating {val.num_samples} images") as on_batch:
        result = evaluate(
            model,
            val,
            len(classes),
            device=dev,
            precision=resolve_precision(cfg.train.precision, dev, cfg.model.name, inference=True),
            tta=tta,
            confusion=True,
            on_batch=on_batch,
            predictions=True,
        )
    record = eval_record(result, classes, options, step=step)
    title = (
        f"{cfg.model.name} on {options['data']} ({result.count} images, {eval_res}px"
        f"{', TTA' if tta else ''}{', EMA' if ema else ''})"
    )
    print_eval(record, title, console)  # the results first: the files may take a while
    files = write_eval(
        record, result.confusion, out_dir, f"{cfg.model.name}: top-1 {result.top1:.2f}%"
    )
    files.append(
        write_predictions(out_dir / "predictions.csv.gz", result.predictions, val.files, classes)
    )
    console.print(f"wrote {', '.join(str(f) for f in files)}", highlight=False, soft_wrap=True)
    return record


def load_model(cfg, weights: dict, num_classes: int, device: torch.device) -> nn.Module:
    model = create_model(cfg.model.name, num_classes, **model_options(cfg))
    model.load_state_dict(weights)
    memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    return model.to(device, memory_format=memory_format)


def _check_out(out_dir: Path, options: dict, overwrite: bool) -> None:
    """Refuse to replace another evaluation's files (other options) without --overwrite."""
    previous = out_dir / "eval.json"
    if overwrite or not previous.is_file():
        return

    try:
        old = json.loads(previous.read_text())
    except ValueError:
        old = {}
    if any(old.get(k) != v for k, v in options.items()):
        raise EnetError(
            f"{out_dir} holds an evaluation with other options ({old.get('checkpoint')}, "
            f"{old.get('res')}px, tta {old.get('tta')}, ema {old.get('ema')}); pass another "
            "--out or --overwrite"
        )


def _check_classes(classes: list[str], data_classes: list[str]) -> None:
    if data_classes == classes:
        return
    only_ckpt = sorted(set(classes) - set(data_classes))
    only_data = sorted(set(data_classes) - set(classes))
    raise EnetError(
        f"the checkpoint's {len(classes)} classes do not match the data's {len(data_classes)}"
        f" (only in the checkpoint: {', '.join(only_ckpt[:5]) or '-'}; only in the data: "
        f"{', '.join(only_data[:5]) or '-'}"
        + ("; same names, other order" if not (only_ckpt or only_data) else "")
        + ")"
    )


class _progress:
    """A transient progress bar on a terminal (a start line otherwise); yields on_batch."""

    def __init__(self, console, description: str) -> None:
        self.console, self.description = console, description
        self.bar = None

    def __enter__(self):
        if not self.console.is_terminal:
            self.console.print(f"{self.description} ...", highlight=False)
            return None
        self.bar = Progress(
            f"[bold]{self.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.bar.start()
        task = self.bar.add_task("eval", total=None)
        return lambda done, total: self.bar.update(task, completed=done, total=total)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
