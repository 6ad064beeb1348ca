"""`enet train`: one explicit training loop.

    fit -> _setup (data, model, optimiser, resume, run folder)
        -> per epoch: _train_epoch (the steps) -> _end_epoch (evaluate, metrics, checkpoints)
        -> _finish (summary.json)

Per optimiser step (`_step`): set the lr for the step -> forward under autocast -> loss ->
backward (scaled only for fp16) -> optional clip -> optimiser step -> EMA update. A checkpoint
holds every state the next step depends on, so a run killed at any moment and resumed ends with
the same weights, bit for bit, as one never interrupted (on the CPU; the test kills one with
SIGKILL).
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from rich.console import Console
from torch import nn

from ..config import Config, to_yaml
from ..data.batch_augment import BatchAugment
from ..divergence import epoch_warning
from ..errors import EnetError, TrainingFailed
from ..models import get_model_info, num_params
from ..runtime import PeakMemory, retain_on_cpu
from ..settings import (
    autocast,
    model_options,
    precision_choice,
    resolve_resolution,
    use_fast_cuda_kernels,
    use_threads,
    zoo_defaults_note,
)
from . import distributed
from .budget import TimeBudget
from .build import build_data, build_trainable
from .checkpoint import (
    load_checkpoint,
    restore_training_state,
    save_training_state,
)
from .ema import EMA
from .evaluation import EvalResult, evaluate
from .position import Position
from .progress import Reporter
from .records import EpochRecord, summarise, write_predictions
from .run_config import default_out
from .run_folder import RunFolder, environment
from .schedule import make_schedule
from .signals import Stopped, StopSignals
from .trackers import RunFolderSink, RunInfo, Trackers, build_trackers
from .window import LossWindow

# ---------------------------------------------------------------------------------------------
# the run


@dataclass
class Run:
    """Everything one training run holds, built by `_setup`."""

    cfg: Config
    env: distributed.DistEnv
    out: RunFolder
    reporter: Reporter
    precision: str
    precision_reason: str  # why this precision (auto's choice, or asked for)
    res: int
    train_loader: object
    val_loader: object
    classes: list[str]
    steps_per_epoch: int
    raw_model: nn.Module  # the weights (what checkpoints hold)
    model: nn.Module  # what the step calls: raw_model, maybe in DDP and compiled
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    ema: EMA | None
    pos: Position
    trackers: Trackers
    lr_at: Callable[[int], float] | None = None
    run_start: float = 0.0
    epoch_start: float = 0.0
    first_val_loss: float | None = None
    last_record: dict | None = None
    budget: TimeBudget | None = None  # --minutes
    size: int = 0  # the last training batch's resolution
    init: str = "random"  # the weights the run started from
    augment: BatchAugment | None = None  # MixUp / CutMix / erasing on the device
    memory: PeakMemory | None = None

    @property
    def device(self) -> torch.device:
        return self.env.device


def fit(cfg: Config, console: Console | None = None) -> dict:
    """Train as `cfg` says; returns the summary (also written to OUT/summary.json)."""
    env = distributed.setup(cfg.train.device)
    use_threads(cfg.train.threads)
    try:
        run = _setup(cfg, env, console)
        summary = _train(run)
    except BaseException:
        # Never destroy the process group on the rank that failed: its peers may be waiting in
        # a collective, and a graceful destroy then waits with them (until the timeout).
        # Abort it; this rank exits with its error and torchrun ends the others.
        distributed.abort()
        raise
    distributed.cleanup()
    return summary


def _train(run: Run) -> dict:
    pos = run.pos
    _set_total(run, pos.total_steps)
    run.reporter.begin(pos.total_steps, pos.step)
    cfg = run.cfg
    tags = dict(tag.split("=", 1) for tag in cfg.run.tags)
    run.trackers.start(RunInfo(run.out.path.name, run.out, cfg.to_dict(), tags, pos.step))
    run.run_start = time.perf_counter() - pos.wall_s
    if run.budget is not None:
        run.budget.begin(pos.wall_s)
    status = "failed"
    with StopSignals() as signals:
        try:
            while pos.step < pos.total_steps:
                _train_epoch(run, signals)
                _end_epoch(run)
            summary = _finish(run)
            status = "finished"
        except Stopped as stopped:
            status = "stopped"
            run.reporter.stop()
            run.reporter.print(f"[yellow]{stopped}", highlight=False)
            raise SystemExit(128 + stopped.signum) from None
        finally:
            run.trackers.close(status)
    return summary


# ---------------------------------------------------------------------------------------------
# set-up


def _setup(cfg: Config, env: distributed.DistEnv, console: Console | None) -> Run:
    out = RunFolder(cfg.run.out or default_out(cfg))
    out.check(cfg.run.resume, cfg.run.overwrite)
    ckpt = load_checkpoint(out.last) if cfg.run.resume else None
    if ckpt is not None and ckpt["config"]["model"]["name"] != cfg.model.name:
        raise EnetError(
            f"--resume: {out.path} trains {ckpt['config']['model']['name']}, "
            f"not {cfg.model.name}; use another --out for a new model"
        )
    reporter = Reporter(env.is_main, console, cfg.train.log_every_steps)
    names = cfg.run.trackers + (("tensorboard",) if cfg.run.tensorboard else ())
    required = [RunFolderSink(out), reporter] if env.is_main else [reporter]
    trackers = build_trackers(names, out, required, env.is_main, reporter.print)
    precision, precision_reason = precision_choice(cfg.train.precision, env.device, cfg.model.name)
    use_fast_cuda_kernels(env.device)
    retain_on_cpu(env.device, cfg.train.retain_cpu_memory)  # before the loaders' workers start
    res = resolve_resolution(cfg)
    train_loader, val_loader, classes = build_data(cfg, env, res, ckpt and ckpt.get("left_out"))
    train_loader.failures.warn = val_loader.failures.warn = reporter.print
    # a model that cannot take res x res inputs (a ViT's fixed size): one line, before training
    get_model_info(cfg.model.name).gflops(res, len(classes), **model_options(cfg))
    if ckpt is not None and list(ckpt["classes"]) != classes:
        raise EnetError(
            f"--resume: the checkpoint has {len(ckpt['classes'])} classes, "
            f"{cfg.data.data} has {len(classes)} (or other names); use the run's data"
        )
    steps_per_epoch = len(train_loader) // cfg.train.accum_steps
    if steps_per_epoch == 0:
        raise EnetError(
            f"train.accum_steps {cfg.train.accum_steps} exceeds the {len(train_loader)} "
            "batches of an epoch"
        )
    raw_model, optimizer, scaler, ema, init = build_trainable(cfg, env, len(classes), precision)
    run = Run(
        cfg, env, out, reporter, precision, precision_reason, res, train_loader, val_loader,
        classes, steps_per_epoch, raw_model, raw_model, optimizer, scaler, ema,
        Position(total_steps=cfg.train.epochs * steps_per_epoch), trackers,
    )  # fmt: skip
    run.init = ckpt["init"] if ckpt is not None else init
    run.augment = _batch_augment(cfg, len(classes))
    run.memory = PeakMemory(env.device)
    if ckpt is None and init != "random":
        reporter.print(f"initial weights: {init}", highlight=False, soft_wrap=True)
    if ckpt is not None:
        _restore(run, ckpt)
    run.model = _wrap(raw_model, cfg, env)
    if cfg.train.minutes:
        run.budget = TimeBudget(
            cfg.train.minutes, steps_per_epoch, cfg.train.accum_steps, train_loader.sizes,
            len(val_loader), env, clock=lambda: _device_clock(env.device),
        )  # fmt: skip
    _prepare_folder(run, resumed=ckpt is not None)
    params = num_params(raw_model)  # the model as built, with its options
    reporter.print(
        f"{cfg.model.name}: {params:,} parameters, {len(classes)} classes, "
        f"{res}px{zoo_defaults_note(cfg)}, {precision} ({precision_reason}), "
        f"{env.world_size} rank(s) on {env.device.type}; loader {train_loader.backend_note}"
        + (f"; skipped {train_loader.skipped} unreadable files" if train_loader.skipped else "")
        + (f"; {val_loader.split_note}" if val_loader.split_note else "")
        + (f"; resuming at step {run.pos.step}" if ckpt is not None else ""),
        highlight=False,
        soft_wrap=True,
    )
    return run


def _batch_augment(cfg: Config, num_classes: int) -> BatchAugment | None:
    d = cfg.data
    augment = BatchAugment(
        num_classes, mixup_alpha=d.mixup_alpha, cutmix_alpha=d.cutmix_alpha, erase_p=d.erase_p
    )
    return augment if augment.active else None


def _restore(run: Run, ckpt: dict) -> None:
    run.pos = restore_training_state(
        ckpt, model=run.raw_model, optimizer=run.optimizer, scaler=run.scaler, ema=run.ema,
        loader=run.train_loader, env=run.env, warn=run.reporter.print,
    )  # fmt: skip
    _extend(run, ckpt)


def _wrap(raw_model: nn.Module, cfg: Config, env: distributed.DistEnv) -> nn.Module:
    model = raw_model
    if env.distributed:
        device_ids = [env.device.index] if env.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(raw_model, device_ids=device_ids)
    return torch.compile(model) if cfg.train.compile else model


def _prepare_folder(run: Run, resumed: bool) -> None:
    """The main rank writes the run folder's config and environment; the others wait."""
    cfg, env, out = run.cfg, run.env, run.out
    if env.is_main:
        out.prepare(cfg.run.resume, cfg.run.overwrite)
        out.write_config(to_yaml(cfg))
        out.write_env(
            environment(env.device, env.world_size)
            | {
                "precision": run.precision,
                "precision_reason": run.precision_reason,
                "loader": run.train_loader.backend_note,
            }
        )
        if resumed:
            out.truncate_metrics(run.pos.step)
    if env.distributed:
        dist.barrier()


def _extend(run: Run, ckpt: dict) -> None:
    """--resume with another --epochs: a longer run continues to the new length, its schedule
    recomputed for the new total (the lr of every remaining step is the new schedule's at that
    step, as if the run had been planned that long); fewer epochs than done is refused."""
    cfg, pos, out = run.cfg, run.pos, run.out
    if cfg.train.minutes or ckpt["config"]["train"].get("minutes"):
        return  # a time budget fixes its own length
    planned = cfg.train.epochs * run.steps_per_epoch
    if planned == pos.total_steps:
        if pos.step >= pos.total_steps:
            run.reporter.print(
                f"{out.path} already finished its {pos.epoch} epochs; nothing to train (give "
                "--epochs N to extend it)",
                highlight=False,
            )
        return
    if planned < pos.step:
        done = math.ceil(pos.step / run.steps_per_epoch)
        raise EnetError(
            f"--resume --epochs {cfg.train.epochs}: {out.path} has already trained "
            f"{pos.step} steps ({pos.epoch} epochs); give --epochs {done} or more"
        )
    run.reporter.print(
        f"[yellow]extending {out.path} from {ckpt['config']['train']['epochs']} to "
        f"{cfg.train.epochs} epochs: the {cfg.schedule.name} schedule is recomputed for "
        f"{planned} steps and continues at step {pos.step}",
        highlight=False,
    )
    pos.total_steps = planned


def save(run: Run, path: Path, full: bool = True) -> None:
    """last.pt (full: all a resume needs) or best.pt (`full=False`: what evaluation needs)."""
    extra = dict(optimizer=run.optimizer, scaler=run.scaler, loader=run.train_loader)
    data = dict(val_digest=run.val_loader.val_digest, left_out=run.train_loader.listing_skipped)
    save_training_state(
        path, model=run.raw_model, ema=run.ema, pos=run.pos, env=run.env, cfg=run.cfg,
        classes=run.classes, init=run.init, **data, **(extra if full else {}),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# training steps


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
        pos.wait(time.perf_counter() - start)
        yield batch


def _train_epoch(run: Run, signals: StopSignals) -> None:
    """Optimiser steps until the epoch (or the run) ends; micro-batches accumulate. Losses stay
    on the device until a check reads them (`_after_step`); the epoch's last steps are read
    before it ends."""
    t, pos = run.cfg.train, run.pos
    run.model.train()
    run.epoch_start = time.perf_counter()
    window = LossWindow(run.device)
    accumulated = torch.zeros((), device=run.device)
    step_start = time.perf_counter()
    for images, labels in _timed(run.train_loader, pos):
        micro = run.train_loader.batch  # this batch's 1-based place in the epoch
        if micro > run.steps_per_epoch * t.accum_steps:
            continue  # leftover micro-batches that cannot fill an optimiser step
        lr = run.lr_at(pos.step)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        last_micro = micro % t.accum_steps == 0
        accumulated += _forward_backward(run, images, labels, last_micro)
        if not last_micro:
            continue
        _optimizer_step(run)
        window.add(pos.step + 1, accumulated / t.accum_steps)  # a copy: reuse the sum
        accumulated.zero_()
        global_batch = t.batch_size * t.accum_steps * run.env.world_size
        run.size = images.shape[-1]
        pos.add_step(time.perf_counter() - step_start, global_batch, (run.size / run.res) ** 2)
        _after_step(run, signals, window, lr)
        if pos.step >= pos.total_steps:
            break
        step_start = time.perf_counter()
    if window.steps:
        _check(run, window, signals, lr)


def _forward_backward(run: Run, images, labels, last_micro: bool) -> torch.Tensor:
    """One micro-batch: forward under autocast, loss, backward (gradients synchronised across
    ranks only on the last micro-batch of a step). Returns the detached loss."""
    cfg = run.cfg
    sync = contextlib.nullcontext()
    if run.env.distributed and not last_micro:
        sync = run.model.no_sync()
    if run.augment is not None:
        images, labels = run.augment(images, labels)
    with sync:
        loss = loss_of(run.model, images, labels, run.precision, cfg.optim.label_smoothing)
        run.scaler.scale(loss / cfg.train.accum_steps).backward()
    return loss.detach()


def loss_of(model: nn.Module, images, labels, precision: str, label_smoothing: float):
    """The training loss of one batch: forward under autocast (bf16 / fp16) and cross-entropy
    with label smoothing (labels may be class probabilities: MixUp, CutMix)."""
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    with autocast(images.device, precision):
        return criterion(model(images), labels)


def _optimizer_step(run: Run) -> None:
    if run.cfg.optim.grad_clip:
        run.scaler.unscale_(run.optimizer)
        nn.utils.clip_grad_norm_(run.raw_model.parameters(), run.cfg.optim.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    if run.ema is not None:
        run.ema.update(run.raw_model, run.pos.step + 1)


def _after_step(run: Run, signals: StopSignals, window: LossWindow, lr: float) -> None:
    """Progress, the time budget's calibration, and every `log_every_steps` (or before a
    checkpoint, or at once on a stop signal in a single process) the check: non-finite loss
    and stop signal in one collective. A checkpoint is written only after a clean check."""
    t, pos, out = run.cfg.train, run.pos, run.out
    save_due = bool(t.save_every_steps and pos.step % t.save_every_steps == 0)
    stop_now = signals.received is not None and not run.env.distributed
    stop = False
    if pos.step % t.log_every_steps == 0 or save_due or stop_now:
        stop = _check(run, window, signals, lr)
    run.reporter.advance(pos.step, pos.epoch + 1, pos.current.img_per_s)
    if run.budget is not None:
        _set_total(run, run.budget.after_step(pos))
    if save_due or stop:
        pos.wall_s = time.perf_counter() - run.run_start
        save(run, out.last)
    if stop:
        name = signal.Signals(signals.received or signal.SIGTERM).name
        raise Stopped(
            signals.received or signal.SIGTERM,
            f"stopped by {name} at step {pos.step}; saved {out.last}; "
            f"continue with: enet train --out {out.path} --resume",
        )


def _check(run: Run, window: LossWindow, signals: StopSignals, lr: float) -> bool:
    """Read the window (one synchronisation): fail on a non-finite loss, report the loss,
    return whether any rank was asked to stop."""
    pos, out = run.pos, run.out
    result = window.read(signals.received is not None, run.env.world_size)
    if result.failed:
        raise TrainingFailed(
            f"the loss became non-finite at step {int(result.first_bad)} (epoch "
            f"{pos.epoch + 1}; checked at step {pos.step}); the last good checkpoint stays at "
            f"{out.last if out.last.exists() else '(none saved yet)'}; try a lower --lr"
        )
    pos.add_losses(result.loss_total)
    run.memory.sample()
    run.trackers.log_step(
        pos.step, {"loss": result.mean_loss, "lr": lr, "img_per_s": pos.current.img_per_s}
    )
    return result.stop


# ---------------------------------------------------------------------------------------------
# epoch end and the summary


def _set_total(run: Run, total: int | None) -> None:
    """The run's length in steps: the schedule and the sizes of progressive resizing follow
    (None, or the length it has: nothing changes)."""
    if total is None or (total == run.pos.total_steps and run.lr_at is not None):
        return
    run.pos.total_steps = total
    run.lr_at = make_schedule(run.cfg.schedule, run.cfg.optim.lr, total)
    run.train_loader.sizes.total = total * run.cfg.train.accum_steps
    run.reporter.set_total(total)


def _device_clock(device: torch.device) -> float:
    """The time once the device has finished the work queued so far."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _validate(run: Run, model: nn.Module, progress: bool) -> EvalResult:
    """The weights' validation (with its progress and the per-image results), or the EMA's."""
    on_batch = run.reporter.validation(len(run.val_loader)) if progress else None
    return evaluate(
        model,
        run.val_loader,
        len(run.classes),
        device=run.device,
        precision=run.precision,
        env=run.env,
        on_batch=on_batch,
        predictions=progress,
    )


def _end_epoch(run: Run) -> None:
    """Evaluate (and the EMA), write the metrics line, warn of divergence, save checkpoints."""
    pos, out = run.pos, run.out
    distributed.sync_buffers(run.raw_model, run.env)
    eval_start = time.perf_counter()
    result = _validate(run, run.raw_model, progress=True)
    ema_result = _validate(run, run.ema.module, progress=False) if run.ema else None
    eval_s = time.perf_counter() - eval_start
    if run.env.is_main:  # replaced each epoch: at the end, the last epoch's
        write_predictions(out.predictions, result.predictions, run.val_loader.files, run.classes)
    pos.epoch += 1
    current = pos.current
    record = EpochRecord(
        epoch=pos.epoch,
        step=pos.step,
        lr=run.lr_at(max(pos.step - 1, 0)),
        train_loss=current.loss_sum / max(current.loss_count, 1),
        val_loss=result.loss,
        top1=result.top1,
        top5=result.top5,
        ema_top1=ema_result.top1 if ema_result else None,
        ema_top5=ema_result.top5 if ema_result else None,
        img_per_s=current.img_per_s,
        res=run.size,
        train_s=current.train_s,
        data_wait_s=current.data_wait_s,
        eval_img_per_s=result.img_per_s,
        epoch_s=time.perf_counter() - run.epoch_start,
        wall_s=time.perf_counter() - run.run_start,
    )
    _warn_divergence(run, record)
    run.last_record = record.to_dict()
    pos.current = type(current)()
    if run.budget is not None:  # refitted from this epoch's steps and evaluation
        step_s = current.full_step_s if current.loss_count else None
        _set_total(run, run.budget.after_epoch(pos, eval_s, step_s))
    improved = result.top1 > pos.best_top1
    pos.best_top1 = max(pos.best_top1, result.top1)
    pos.wall_s = time.perf_counter() - run.run_start
    run.trackers.log_epoch(run.last_record)  # metrics.jsonl (main rank), the console, the trackers
    save(run, out.last)
    if improved:
        save(run, out.best, full=False)


def _warn_divergence(run: Run, record: EpochRecord) -> None:
    """Mark and warn of an epoch whose validation loss exploded (enet/divergence.py)."""
    if run.first_val_loss is None:
        records = run.out.read_metrics()
        run.first_val_loss = records[0]["val_loss"] if records else record.val_loss
    warning = epoch_warning(record.val_loss, record.epoch, run.first_val_loss, len(run.classes))
    if warning is not None:
        record.diverged = True
        run.reporter.print(f"[bold red]{warning}", highlight=False)


def _finish(run: Run) -> dict:
    """summary.json: the last epoch's results, the best top-1, time, throughput, cost."""
    cfg, pos, env = run.cfg, run.pos, run.env
    distributed.sync_buffers(run.raw_model, env)
    last = run.last_record
    if last is None:  # resumed a run that had already finished
        records = run.out.read_metrics()
        if not records:
            raise EnetError(f"{run.out.path} holds a finished checkpoint but no metrics")
        last = records[-1]
    summary = summarise(
        cfg, pos, last, run.out.read_metrics(), model=run.raw_model, classes=len(run.classes),
        res=run.res, precision=run.precision, env=env, loaders=(run.train_loader, run.val_loader),
        ranks_in_sync=distributed.ranks_in_sync(run.raw_model, env),
        peak_memory=run.memory.peak(), init=run.init,
    ).to_dict()  # fmt: skip
    files = {"summary.json": run.out.summary, "predictions.csv.gz": run.out.predictions}
    if cfg.run.log_checkpoints and run.out.best.is_file():
        files["best.pt"] = run.out.best
    run.trackers.finish(summary, files)  # summary.json first, then the console and trackers
    return summary
