"""`enet train`: one explicit training loop.

Per optimiser step: set the lr for the step -> forward under autocast -> loss -> backward
(scaled only for fp16) -> optional clip -> optimiser step -> EMA update -> log. At each epoch
end: evaluate (and the EMA), write a metrics line, save checkpoints. A checkpoint holds every
state the next step depends on, so a run killed at any moment and resumed ends with the same
weights, bit for bit, as one never interrupted (on the CPU; the test kills one with SIGKILL).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import math
import random
import resource
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from rich.console import Console
from torch import nn

from ..config import Config, to_yaml
from ..errors import EnetError, TrainingFailed
from ..evaluate import evaluate
from ..models import create_model, get_model_info
from ..runtime import retain_on_cpu
from ..settings import autocast_dtype, model_options, resolve_precision, resolve_resolution
from . import distributed
from .checkpoint import atomic_torch_save, load_checkpoint, rng_state, set_rng_state
from .ema import EMA
from .optim import build_optimizer
from .progress import Reporter
from .run_folder import RunFolder, environment
from .schedule import make_schedule

CALIBRATION_STEPS = 10  # with a time budget: steps timed before the schedule's length is fixed


def default_out(cfg: Config) -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return str(Path("runs") / f"{cfg.model.name}-{stamp}")


# ---------------------------------------------------------------------------------------------
# signals


class StopSignals:
    """SIGTERM / SIGINT set a flag; the loop saves at the next step boundary and exits."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous = {}

    def __enter__(self) -> StopSignals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.received = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Stopped(Exception):
    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum


# ---------------------------------------------------------------------------------------------
# the run


@dataclass
class Position:
    step: int = 0  # optimiser steps done
    epoch: int = 0  # epochs completed
    total_steps: int = 0
    best_top1: float = -1.0
    wall_s: float = 0.0  # training and evaluation time, over every resume
    train_s: float = 0.0  # training steps only
    data_wait_s: float = 0.0  # of train_s, spent waiting for the loader's next batch
    images: int = 0  # training images seen (all ranks)
    calibrated: bool = False  # time budget: total_steps fixed from measured step times
    # the running epoch, so that a run resumed mid-epoch reports the same epoch metrics
    epoch_loss_sum: float = 0.0
    epoch_loss_count: int = 0
    epoch_images: int = 0
    epoch_train_s: float = 0.0
    epoch_data_wait_s: float = 0.0


def fit(cfg: Config, console: Console | None = None) -> dict:
    """Train as `cfg` says; returns the summary (also written to OUT/summary.json)."""
    env = distributed.setup(cfg.train.device)
    try:
        return _fit(cfg, env, console)
    finally:
        distributed.cleanup()


def _timed(loader, pos: Position):
    """The loader's batches, adding the time spent waiting for each to `pos` (the part of the
    training time the loader's work did not hide behind the model's)."""
    batches = iter(loader)
    while True:
        start = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            return
        waited = time.perf_counter() - start
        pos.data_wait_s += waited
        pos.epoch_data_wait_s += waited
        yield batch


def _fit(cfg: Config, env: distributed.DistEnv, console: Console | None) -> dict:
    t, d = cfg.train, cfg.data
    out = RunFolder(cfg.run.out or default_out(cfg))
    out.check(cfg.run.resume, cfg.run.overwrite)
    ckpt = load_checkpoint(out.last) if cfg.run.resume else None
    if ckpt is not None and ckpt["config"]["model"]["name"] != cfg.model.name:
        raise EnetError(
            f"--resume: {out.path} trains {ckpt['config']['model']['name']}, "
            f"not {cfg.model.name}; use another --out for a new model"
        )
    reporter = Reporter(env.is_main, console, t.log_every_steps)

    # -- data
    device = env.device
    precision = resolve_precision(t.precision, device)
    channels_last = t.channels_last
    retain_on_cpu(device, t.retain_cpu_memory)  # before the loaders: their workers inherit it
    res = resolve_resolution(cfg)
    from ..data import build_loaders

    train_loader, val_loader, classes = build_loaders(
        d.data,
        res,
        t.batch_size,
        eval_res=d.eval_res or res,
        loader=d.loader,
        device=device,
        randaugment=(d.randaugment_n, d.randaugment_m),
        min_scale=d.min_scale,
        crop=d.crop,
        crop_pct=d.crop_pct,
        rank=env.rank,
        world_size=env.world_size,
        seed=t.seed,
        workers=d.workers,
        channels_last=channels_last,
    )
    if ckpt is not None and list(ckpt["classes"]) != classes:
        raise EnetError(
            f"--resume: the checkpoint has {len(ckpt['classes'])} classes, "
            f"{d.data} has {len(classes)} (or other names); use the run's data"
        )
    steps_per_epoch = len(train_loader) // t.accum_steps
    if steps_per_epoch == 0:
        raise EnetError(
            f"train.accum_steps {t.accum_steps} exceeds the {len(train_loader)} batches of an epoch"
        )

    # -- model, optimiser, EMA: the same initialisation on every rank
    torch.manual_seed(t.seed)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    raw_model = create_model(cfg.model.name, len(classes), **model_options(cfg))
    raw_model.to(device, memory_format=memory_format)
    if t.sync_bn and env.distributed:
        raw_model = nn.SyncBatchNorm.convert_sync_batchnorm(raw_model)
    ema = EMA(raw_model, t.ema_decay) if t.ema_decay else None
    optimizer = build_optimizer(cfg.optim, raw_model)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    # Dropout and drop-connect draw from the global generator: a stream of its own per rank.
    torch.manual_seed(t.seed * 1000 + 1 + env.rank)
    random.seed(t.seed + env.rank)
    np.random.seed(t.seed + env.rank)

    pos = Position(total_steps=t.epochs * steps_per_epoch)
    if ckpt is not None:
        raw_model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        if ema is not None and ckpt.get("ema") is not None:
            ema.load_state_dict(ckpt["ema"])
        pos = Position(**ckpt["position"])
        _extend(pos, cfg, ckpt, steps_per_epoch, out, reporter)
        if ckpt["world_size"] == env.world_size:
            train_loader.load_state_dict(ckpt["loaders"][env.rank])
            set_rng_state(ckpt["rng"][env.rank])
        else:
            reporter.print(
                f"[yellow]resuming on {env.world_size} ranks a run of "
                f"{ckpt['world_size']}: the data order changes from here on"
            )
            state = dict(ckpt["loaders"][0])
            state.pop("dali_checkpoint", None)
            train_loader.load_state_dict(state)

    model: nn.Module = raw_model
    if env.distributed:
        model = nn.parallel.DistributedDataParallel(
            raw_model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if t.compile:
        model = torch.compile(model)

    # -- the run folder (main rank writes; the others wait)
    if env.is_main:
        out.prepare(cfg.run.resume, cfg.run.overwrite)
        out.write_config(to_yaml(cfg))
        out.write_env(
            environment(device, env.world_size)
            | {"precision": precision, "loader": train_loader.backend_note}
        )
        if ckpt is not None:
            out.truncate_metrics(pos.step)
    if env.distributed:
        dist.barrier()
    info = get_model_info(cfg.model.name)
    reporter.print(
        f"{cfg.model.name}: {info.params(len(classes)):,} parameters, {len(classes)} classes, "
        f"{res}px, {precision}, {env.world_size} rank(s) on {device.type}; loader "
        f"{train_loader.backend_note}"
        + (f"; skipped {train_loader.skipped} unreadable files" if train_loader.skipped else "")
        + (f"; resuming at step {pos.step}" if ckpt is not None else ""),
        highlight=False,
    )

    def save(path: Path, full: bool = True) -> None:
        """Every rank hands over its loader position and RNG state; the main rank writes.
        `full=False` (best.pt): what evaluation needs, without optimiser, loader and RNG state."""
        state = {
            "model": raw_model.state_dict(),
            "ema": ema.state_dict() if ema is not None else None,
            "position": vars(pos).copy(),
            "world_size": env.world_size,
            "config": cfg.to_dict(),
            "classes": classes,
            "model_name": cfg.model.name,
            "num_classes": len(classes),
        }
        if full:
            loaders, rngs = [train_loader.state_dict()], [rng_state()]
            if env.distributed:
                loaders, rngs = _gather(loaders[0], env), _gather(rngs[0], env)
            state |= {
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "loaders": loaders,
                "rng": rngs,
            }
        if env.is_main:
            atomic_torch_save(state, path)

    lr_at = make_schedule(cfg.schedule, cfg.optim.lr, pos.total_steps)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.optim.label_smoothing)
    amp_dtype = autocast_dtype(precision)
    global_batch = t.batch_size * t.accum_steps * env.world_size
    budget_s = t.minutes * 60 if t.minutes else None
    reporter.start(pos.total_steps, pos.step)
    run_start = time.perf_counter() - pos.wall_s
    last_record: dict | None = None
    first_val_loss: float | None = None

    with StopSignals() as signals:
        try:
            while pos.step < pos.total_steps:
                # ---------------- one epoch of training steps
                model.train()
                epoch_start = time.perf_counter()
                accumulated = torch.zeros((), device=device)
                step_start = time.perf_counter()
                for images, labels in _timed(train_loader, pos):
                    micro = train_loader.batch  # this batch's 1-based place in the epoch
                    if micro > steps_per_epoch * t.accum_steps:
                        continue  # leftover micro-batches that cannot fill an optimiser step
                    lr = lr_at(pos.step)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    last_micro = micro % t.accum_steps == 0
                    sync = contextlib.nullcontext()
                    if env.distributed and not last_micro:
                        sync = model.no_sync()
                    with sync:
                        with torch.autocast(
                            device.type,
                            dtype=amp_dtype or torch.float32,
                            enabled=amp_dtype is not None,
                        ):
                            loss = criterion(model(images), labels)
                        scaler.scale(loss / t.accum_steps).backward()
                    accumulated += loss.detach()
                    if not last_micro:
                        continue
                    if cfg.optim.grad_clip:
                        scaler.unscale_(optimizer)
                        nn.utils.clip_grad_norm_(raw_model.parameters(), cfg.optim.grad_clip)
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                    if ema is not None:
                        ema.update(raw_model)
                    pos.step += 1
                    step_loss = accumulated.item() / t.accum_steps
                    accumulated.zero_()
                    now = time.perf_counter()
                    pos.train_s += now - step_start
                    pos.epoch_train_s += now - step_start
                    pos.images += global_batch
                    pos.epoch_images += global_batch
                    # one collective for both checks: a non-finite loss or a stop signal
                    bad, stop = _any_ranks(
                        [not math.isfinite(step_loss), signals.received is not None], env
                    )
                    if bad:
                        raise TrainingFailed(
                            f"the loss became non-finite ({step_loss}) at step {pos.step} "
                            f"(epoch {pos.epoch + 1}); the last good checkpoint stays at "
                            f"{out.last if out.last.exists() else '(none saved yet)'}; "
                            f"try a lower --lr"
                        )
                    pos.epoch_loss_sum += step_loss
                    pos.epoch_loss_count += 1
                    reporter.step(
                        pos.step,
                        pos.epoch + 1,
                        step_loss,
                        lr,
                        pos.epoch_images / max(pos.epoch_train_s, 1e-9),
                    )
                    if budget_s and not pos.calibrated and pos.step >= CALIBRATION_STEPS:
                        pos.calibrated = True
                        pos.total_steps = _fit_budget(
                            pos, budget_s, run_start, steps_per_epoch, len(val_loader), env
                        )
                        lr_at = make_schedule(cfg.schedule, cfg.optim.lr, pos.total_steps)
                        reporter.set_total(pos.total_steps)
                    if t.save_every_steps and pos.step % t.save_every_steps == 0:
                        pos.wall_s = time.perf_counter() - run_start
                        save(out.last)
                    if stop:
                        pos.wall_s = time.perf_counter() - run_start
                        save(out.last)
                        name = signal.Signals(signals.received or signal.SIGTERM).name
                        raise Stopped(
                            signals.received or signal.SIGTERM,
                            f"stopped by {name} at step {pos.step}; saved {out.last}; "
                            f"continue with: enet train --out {out.path} --resume",
                        )
                    if pos.step >= pos.total_steps:
                        break
                    step_start = time.perf_counter()
                # ---------------- evaluation, metrics, checkpoints
                _sync_buffers(raw_model, env)
                result = evaluate(
                    raw_model,
                    val_loader,
                    len(classes),
                    device=device,
                    precision=precision,
                    env=env,
                    on_batch=reporter.validation(len(val_loader)),
                )
                ema_result = (
                    evaluate(
                        ema.module,
                        val_loader,
                        len(classes),
                        device=device,
                        precision=precision,
                        env=env,
                    )
                    if ema is not None
                    else None
                )
                pos.epoch += 1
                train_loss = _mean_over_ranks(pos.epoch_loss_sum, pos.epoch_loss_count, env)
                record = {
                    "epoch": pos.epoch,
                    "step": pos.step,
                    "lr": lr_at(max(pos.step - 1, 0)),
                    "train_loss": train_loss,
                    "val_loss": result.loss,
                    "top1": result.top1,
                    "top5": result.top5,
                    "ema_top1": ema_result.top1 if ema_result else None,
                    "ema_top5": ema_result.top5 if ema_result else None,
                    "img_per_s": pos.epoch_images / max(pos.epoch_train_s, 1e-9),
                    "train_s": pos.epoch_train_s,
                    "data_wait_s": pos.epoch_data_wait_s,
                    "eval_img_per_s": result.img_per_s,
                    "epoch_s": time.perf_counter() - epoch_start,
                    "wall_s": time.perf_counter() - run_start,
                }
                if first_val_loss is None:
                    first_val_loss = _first_val_loss(out, result.loss)
                if _diverged(result.loss, first_val_loss):
                    record["diverged"] = True
                    reporter.print(
                        f"[bold red]warning: the validation loss exploded ({result.loss:.3g}, "
                        f"first epoch {first_val_loss:.3g}) at epoch {pos.epoch}: the run is "
                        "diverging; try a lower --lr or a recipe from configs/",
                        highlight=False,
                    )
                last_record = record
                pos.epoch_loss_sum, pos.epoch_loss_count = 0.0, 0
                pos.epoch_images, pos.epoch_train_s, pos.epoch_data_wait_s = 0, 0.0, 0.0
                improved = result.top1 > pos.best_top1
                pos.best_top1 = max(pos.best_top1, result.top1)
                pos.wall_s = time.perf_counter() - run_start
                if env.is_main:
                    out.append_metrics(record)
                reporter.epoch_end(record)
                save(out.last)
                if improved:
                    save(out.best, full=False)
        except Stopped as stopped:
            reporter.stop()
            reporter.print(f"[yellow]{stopped}", highlight=False)
            raise SystemExit(128 + stopped.signum) from None
        finally:
            reporter.stop()

    # ---------------- the end: summary
    _sync_buffers(raw_model, env)
    if last_record is None:  # resumed a run that had already finished
        records = out.read_metrics()
        last_record = records[-1] if records else None
        if last_record is None:
            raise EnetError(f"{out.path} holds a finished checkpoint but no metrics")
    in_sync = _ranks_in_sync(raw_model, env)
    peak = (
        torch.cuda.max_memory_allocated(device)
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    summary = {
        "status": "finished",
        "model": cfg.model.name,
        "data": d.data,
        "classes": len(classes),
        "res": res,
        "eval_res": d.eval_res or res,
        "epochs": pos.epoch,
        "steps": pos.step,
        "top1": last_record["top1"],
        "top5": last_record["top5"],
        "best_top1": pos.best_top1,
        "ema_top1": last_record.get("ema_top1"),
        "train_loss": last_record["train_loss"],
        "val_loss": last_record["val_loss"],
        "wall_s": pos.wall_s,
        "train_s": pos.train_s,
        "data_wait_s": pos.data_wait_s,
        "img_per_s": pos.images / max(pos.train_s, 1e-9),
        "eval_img_per_s": last_record.get("eval_img_per_s"),
        "params": info.params(len(classes)),
        "gflops": info.gflops(res, len(classes)),
        "peak_memory_bytes": int(peak),
        "precision": precision,
        "world_size": env.world_size,
        "loader": train_loader.backend,
        "ranks_in_sync": in_sync,
        "seed": t.seed,
    }
    if env.is_main:
        out.write_summary(summary)
    reporter.results(summary, str(out.path))
    return summary


# ---------------------------------------------------------------------------------------------
# helpers


def _extend(pos: Position, cfg: Config, ckpt: dict, steps_per_epoch: int, out, reporter) -> None:
    """--resume with another --epochs: a longer run continues to the new length, its schedule
    recomputed for the new total (the lr of every remaining step is the new schedule's at that
    step, as if the run had been planned that long); fewer epochs than done is refused."""
    saved_epochs = ckpt["config"]["train"]["epochs"]
    if cfg.train.minutes or ckpt["config"]["train"].get("minutes"):
        return  # a time budget fixes its own length
    planned = cfg.train.epochs * steps_per_epoch
    if planned == pos.total_steps:
        if pos.step >= pos.total_steps:
            reporter.print(
                f"{out.path} already finished its {pos.epoch} epochs; nothing to train (give "
                "--epochs N to extend it)",
                highlight=False,
            )
        return
    if planned < pos.step:
        done = math.ceil(pos.step / steps_per_epoch)
        raise EnetError(
            f"--resume --epochs {cfg.train.epochs}: {out.path} has already trained "
            f"{pos.step} steps ({pos.epoch} epochs); give --epochs {done} or more"
        )
    reporter.print(
        f"[yellow]extending {out.path} from {saved_epochs} to {cfg.train.epochs} epochs: the "
        f"{cfg.schedule.name} schedule is recomputed for {planned} steps and continues at step "
        f"{pos.step}",
        highlight=False,
    )
    pos.total_steps = planned


def _fit_budget(
    pos: Position, budget_s: float, run_start: float, steps_per_epoch: int, val_batches: int, env
) -> int:
    """With a wall-clock budget: from the time of the steps so far, how many steps end on time.

    Evaluation passes are budgeted as one per epoch, each estimated at a third of a training
    step per batch (a forward pass without backward). The ranks agree on the smallest answer.
    """
    elapsed = time.perf_counter() - run_start
    step_s = pos.train_s / max(pos.step, 1)
    left = budget_s - elapsed
    steps_left = max(0, int(left / step_s))
    for _ in range(3):  # settle the evaluations the remaining epochs will need
        epochs = math.ceil((pos.step + steps_left) / steps_per_epoch)
        eval_s = epochs * val_batches * step_s / 3
        steps_left = max(0, int((left - eval_s) / step_s))
    total = max(pos.step + 1, pos.step + steps_left)
    if env.distributed:
        t = torch.tensor(
            [total], dtype=torch.float64, device=env.device if env.device.type == "cuda" else "cpu"
        )
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        total = int(t.item())
    return total


DIVERGED_FACTOR = 10.0  # a validation loss this many times its first value is an explosion


def _first_val_loss(out, current: float) -> float:
    """The run's first epoch validation loss (from metrics.jsonl when resumed)."""
    records = out.read_metrics() if out.metrics.is_file() else []
    return records[0]["val_loss"] if records else current


def _diverged(loss: float, first: float) -> bool:
    return not math.isfinite(loss) or loss > DIVERGED_FACTOR * max(first, 1e-3)


def _any_ranks(flags: list[bool], env) -> list[bool]:
    if not env.distributed:
        return flags
    values = distributed.all_reduce_sum([float(f) for f in flags], env)
    return [v > 0 for v in values]


def _mean_over_ranks(total: float, count: int, env) -> float:
    total, count = distributed.all_reduce_sum([total, float(count)], env)
    return total / max(count, 1)


def _gather(obj, env) -> list:
    gathered = [None] * env.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def _sync_buffers(model: nn.Module, env) -> None:
    """Give every rank the main rank's buffers (BatchNorm statistics).

    DDP broadcasts them at the start of each forward pass, so after the last training step
    each rank holds statistics updated from its own batch: evaluating with the main rank's
    makes every shard use the weights the checkpoint saves.
    """
    if not env.distributed:
        return
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)


def _ranks_in_sync(model: nn.Module, env) -> bool:
    """Do all ranks hold bit-identical weights? (DDP should guarantee it; this checks.)"""
    if not env.distributed:
        return True
    digest = hashlib.sha1()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    digests = _gather(digest.hexdigest(), env)
    return len(set(digests)) == 1
