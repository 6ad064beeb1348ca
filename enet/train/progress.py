"""Progress while training, on the main rank: a rich live display on a terminal, plain lines
otherwise (logs, CI); a results table at the end."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..errors import EnetError
from ..tables import train_results_table

EPOCH_SCALARS = (
    "train_loss", "val_loss", "top1", "top5", "ema_top1", "ema_top5", "img_per_s", "train_s",
    "data_wait_s", "eval_img_per_s", "epoch_s",
)  # fmt: skip


class Reporter:
    def __init__(
        self,
        enabled: bool,
        console: Console | None,
        log_every: int,
        tensorboard: Path | None = None,
    ) -> None:
        """`tensorboard`: a folder for TensorBoard event files (torch.utils.tensorboard), or
        None; the writer opens at `start` (then the run's first step is known)."""
        self.tensorboard_dir = tensorboard
        self.writer = None
        if tensorboard is not None:
            try:
                import tensorboard as _  # noqa: F401
            except ImportError:
                raise EnetError(
                    "run.tensorboard needs the tensorboard package: pip install 'enet[tensorboard]'"
                ) from None
        self.enabled = enabled
        self.console = console or Console()
        self.live = enabled and self.console.is_terminal
        self.log_every = log_every
        self.progress: Progress | None = None
        self.task = None
        self.total_steps = 0

    def print(self, *args, **kwargs) -> None:
        if self.enabled:
            self.console.print(*args, **kwargs)

    def start(self, total_steps: int, first_step: int) -> None:
        self.total_steps = total_steps
        if self.tensorboard_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step: a resumed run drops what its first run logged after the checkpoint
            self.writer = SummaryWriter(str(self.tensorboard_dir), purge_step=first_step or None)
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
        if self.progress is not None:
            self.progress.update(self.task, completed=step, epoch=epoch, ips=img_per_s)

    def step(self, step: int, epoch: int, loss: float, lr: float, img_per_s: float) -> None:
        """At each check: `loss` is the mean over the steps since the last one."""
        if not self.enabled:
            return
        if self.writer is not None and step % self.log_every == 0:
            for name, value in (("loss", loss), ("lr", lr), ("img_per_s", img_per_s)):
                self.writer.add_scalar(f"train/{name}", value, step)
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

    def epoch_end(self, record: dict) -> None:
        if not self.enabled:
            return
        if self.writer is not None:
            for key in EPOCH_SCALARS:
                if record.get(key) is not None:
                    self.writer.add_scalar(f"epoch/{key}", record[key], record["step"])
            self.writer.flush()
        ema = f" ema top-1 {record['ema_top1']:.2f}%" if record.get("ema_top1") is not None else ""
        self.print(
            f"epoch {record['epoch']} done: train loss {record['train_loss']:.4f}, val loss "
            f"{record['val_loss']:.4f}, top-1 {record['top1']:.2f}%, top-5 {record['top5']:.2f}%"
            f"{ema}, {record['img_per_s']:.1f} img/s, {record['epoch_s']:.1f} s",
            highlight=False,
        )

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        self.close()

    def results(self, summary: dict, out: str) -> None:
        self.stop()
        if not self.enabled:
            return
        self.console.print(train_results_table(summary))
        self.console.print(f"run folder: {out}", highlight=False)
