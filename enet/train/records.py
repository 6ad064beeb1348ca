"""The run record, typed: an epoch's line of metrics.jsonl (`EpochRecord`) and summary.json
(`Summary`). The run folder, the console and every tracker take them as they are (through
`to_dict`), and compare's results.csv reads summary.json's fields by these names. Beside them,
per image: predictions.csv.gz (`write_predictions`), from a run's last evaluation and from
`enet eval`."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..config import Config
from ..fileio import atomic_write
from ..models import get_model_info, num_params
from ..settings import model_options
from .distributed import DistEnv
from .position import Position


@dataclass
class EpochRecord:
    """One epoch's end: top-1/top-5 in %, times in seconds, throughputs in images per second."""

    epoch: int
    step: int  # optimiser steps so far
    lr: float  # the epoch's last step's
    train_loss: float  # mean over the epoch's steps
    val_loss: float
    top1: float
    top5: float
    ema_top1: float | None  # the EMA's weights (train.ema_decay), else None
    ema_top5: float | None
    img_per_s: float  # training
    res: int  # the epoch's last training batch's size (progressive resizing)
    train_s: float
    data_wait_s: float  # of train_s, waiting for the loader
    eval_img_per_s: float
    epoch_s: float
    wall_s: float  # since the run began (resumes included)
    diverged: bool = False  # the validation loss exploded (enet/divergence.py)

    def to_dict(self) -> dict:
        """metrics.jsonl's line; `diverged` only where true."""
        record = dataclasses.asdict(self)
        if not self.diverged:
            del record["diverged"]
        return record


@dataclass
class Summary:
    """summary.json: the last epoch's results, the best top-1, time, throughput and cost."""

    status: str  # finished
    model: str
    data: str
    classes: int
    res: int
    min_res: int | None  # progressive resizing's first size
    eval_res: int
    epochs: int
    steps: int
    top1: float
    top5: float
    best_top1: float
    ema_top1: float | None
    train_loss: float
    val_loss: float
    diverged: bool  # any epoch's validation loss exploded
    wall_s: float
    train_s: float
    data_wait_s: float
    img_per_s: float
    eval_img_per_s: float | None
    params: int
    gflops: float  # forward, one image at `res`
    peak_memory_bytes: int  # CUDA: device memory in use; CPU: the process's resident set
    peak_torch_memory_bytes: int | None  # CUDA: torch's allocator peak
    precision: str
    world_size: int
    loader: str
    # files left out: at listing (header check, `enet data check`'s findings) and, on this
    # rank, those that failed to decode during the run (skipped, and recorded for later runs)
    skipped_files: int
    decode_failures: list[str]
    ranks_in_sync: bool
    seed: int
    init: str  # the initial weights: random, torchvision's, or a file

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def summarise(
    cfg: Config,
    pos: Position,
    last: dict,
    records: list[dict],
    *,
    model: nn.Module,
    classes: int,
    res: int,
    precision: str,
    env: DistEnv,
    loaders: tuple,
    ranks_in_sync: bool,
    peak_memory: int,
    init: str,
) -> Summary:
    """The summary of a finished run from its last epoch record and every record so far."""
    cuda = env.device.type == "cuda"
    failed = sorted(set(loaders[0].failures.files) | set(loaders[1].failures.files))
    return Summary(
        status="finished",
        model=cfg.model.name,
        data=cfg.data.data,
        classes=classes,
        res=res,
        min_res=cfg.data.min_res or None,
        eval_res=cfg.data.eval_res or res,
        epochs=pos.epoch,
        steps=pos.step,
        top1=last["top1"],
        top5=last["top5"],
        best_top1=pos.best_top1,
        ema_top1=last.get("ema_top1"),
        train_loss=last["train_loss"],
        val_loss=last["val_loss"],
        diverged=any(r.get("diverged") for r in records),
        wall_s=pos.wall_s,
        train_s=pos.run.train_s,
        data_wait_s=pos.run.data_wait_s,
        img_per_s=pos.run.img_per_s,
        eval_img_per_s=last.get("eval_img_per_s"),
        params=num_params(model),
        gflops=get_model_info(cfg.model.name).gflops(res, classes, **model_options(cfg)),
        peak_memory_bytes=int(peak_memory),
        peak_torch_memory_bytes=torch.cuda.max_memory_allocated(env.device) if cuda else None,
        precision=precision,
        world_size=env.world_size,
        loader=loaders[0].backend,
        skipped_files=loaders[0].skipped + len(failed),
        decode_failures=failed,
        ranks_in_sync=ranks_in_sync,
        seed=cfg.train.seed,
        init=init,
    )


def write_predictions(path: Path, predictions: dict, files: list, classes: list[str]) -> Path:
    """predictions.csv.gz: a row per image in the split's file order: its index and file (class
    folder/name), the true and predicted class IDs, correct (1/0), the true class's probability.
    Gzip, written atomically (and byte for byte reproducible: no time stamp)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["index", "file", "true", "predicted", "correct", "p_true"])
    for i, label, pred, p in zip(
        predictions["index"].tolist(), predictions["label"].tolist(),
        predictions["predicted"].tolist(), predictions["p_true"].tolist(), strict=True,
    ):  # fmt: skip
        name = Path(files[i])
        file = f"{name.parent.name}/{name.name}"
        writer.writerow([i, file, classes[label], classes[pred], int(label == pred), f"{p:.4g}"])
    data = gzip.compress(buf.getvalue().encode(), mtime=0)
    atomic_write(path, lambda f: f.write(data), mode="wb")
    return path
