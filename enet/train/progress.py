"""Progress while training, on the main rank: a rich live display on a terminal, plain lines
otherwise (logs, CI); a results table at the end."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..tables import train_results_table
from .trackers import RunInfo, Tracker


class Reporter(Tracker):
    """The console: a sink like the trackers (trackers.py), whose errors stop the run."""

    name = "console"
    guarded = False

    def __init__(self, enabled: bool, console: Console | None, log_every: int) -> None:
        self.enabled = enabled
        self.console = console or Console()
        self.live = enabled and self.console.is_terminal
        self.log_every = log_every
        self.progress: Progress | None = None
        self.task = None
        self.total_steps = 0
        self.epoch = 1
        self.out: Path | None = None

    def start(self, run: RunInfo, run_id: str | None) -> None:
        self.out = run.folder.path

    def print(self, *args, **kwargs) -> None:
        if self.enabled:
            self.console.print(*args, **kwargs)

    def begin(self, total_steps: int, first_step: int) -> None:
        """The progress bar (on a terminal) from the run's first step."""
        self.total_steps = total_steps
        if not self.live:
            return
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.2e}  "
                "{task.fields[ips]:.0f} img/s"
            ),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task(
            "train",
            total=total_steps,
            completed=first_step,
            epoch=0,
            loss=float("nan"),
            lr=0.0,
            ips=0.0,
        )

    def set_total(self, total_steps: int) -> None:
        self.total_steps = total_steps
        if self.progress is not None:
            self.progress.update(self.task, total=total_steps)

    def advance(self, step: int, epoch: int, img_per_s: float) -> None:
        """Every step: the live bar moves (the loss shown is the last one read)."""
        self.epoch = epoch
        if self.progress is not None:
            self.progress.update(self.task, completed=step, epoch=epoch, ips=img_per_s)

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        """At each check: the loss is the mean over the steps since the last one."""
        if not self.enabled:
            return
        epoch, loss, lr = self.epoch, metrics["loss"], metrics["lr"]
        img_per_s = metrics["img_per_s"]
        if self.progress is not None:
            self.progress.update(
                self.task, completed=step, epoch=epoch, loss=loss, lr=lr, ips=img_per_s
            )
        elif step % self.log_every == 0:
            self.console.print(
                f"epoch {epoch} step {step}/{self.total_steps} loss {loss:.4f} lr {lr:.3e} "
                f"{img_per_s:.1f} img/s",
                highlight=False,
            )

    def validation(self, batches: int):
        """A callback for `evaluate(on_batch=...)`: a bar under the training one on a terminal,
        a start line in plain output; None when this rank shows nothing."""
        if not self.enabled:
            return None
        if self.progress is None:
            self.console.print(f"validating ({batches} batches) ...", highlight=False)
            return None
        task = self.progress.add_task(
            "val", total=batches, epoch="val", loss=float("nan"), lr=0.0, ips=0.0
        )

        def on_batch(done: int, total: int) -> None:
            self.progress.update(task, completed=done)
            if done >= total:
                self.progress.remove_task(task)

        return on_batch

    def log_epoch(self, record: dict) -> None:
        if not self.enabled:
            return
        ema = f" ema top-1 {record['ema_top1']:.2f}%" if record.get("ema_top1") is not None else ""
        self.print(
            f"epoch {record['epoch']} done: train loss {record['train_loss']:.4f}, val loss "
            f"{record['val_loss']:.4f}, top-1 {record['top1']:.2f}%, top-5 {record['top5']:.2f}%"
            f"{ema}, {record['img_per_s']:.1f} img/s, {record['epoch_s']:.1f} s",
            highlight=False,
        )

    def stop(self) -> None:
        """The progress bar ends (before a message that must stay below it)."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def close(self, status: str) -> None:
        self.stop()

    def finish(self, summary: dict, files: dict[str, Path]) -> None:
        self.stop()
        if not self.enabled:
            return
        self.console.print(train_results_table(summary))
        self.console.print(f"run folder: {self.out}", highlight=False)
