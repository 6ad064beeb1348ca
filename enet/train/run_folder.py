"""The run folder (DESIGN.md): config.yaml, env.json, metrics.jsonl, summary.json, checkpoints/."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from .. import __version__
from ..errors import EnetError
from ..fileio import write_text_atomic
from ..runtime import memory_retained

# what --overwrite removes: enet's own files (trackers.json too: a new run is a new tracker run;
# tensorboard/, whose old events would mix into the new run's curves); a tracker's own store
# (wandb/'s offline runs, perhaps not yet synced) stays
ENET_FILES = (
    "config.yaml", "env.json", "metrics.jsonl", "summary.json", "checkpoints", "eval",
    "trackers.json", "tensorboard", "predictions.csv.gz",
)  # fmt: skip


class RunFolder:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.last = self.checkpoints / "last.pt"
        self.best = self.checkpoints / "best.pt"
        self.metrics = self.path / "metrics.jsonl"
        self.summary = self.path / "summary.json"
        self.predictions = self.path / "predictions.csv.gz"  # the last evaluation's, per image

    def check(self, resume: bool, overwrite: bool) -> None:
        """Refuse what would lose or mix up a user's results (read-only: every rank runs it)."""
        if resume:
            if not self.last.is_file():
                raise EnetError(f"--resume: no checkpoint at {self.last} to continue from")
            return
        if self.path.exists() and not self.path.is_dir():
            raise EnetError(f"--out {self.path} is a file, not a folder")
        if self.path.is_dir() and any(self.path.iterdir()) and not overwrite:
            raise EnetError(
                f"--out {self.path} is not empty; pass --resume to continue that run or "
                f"--overwrite to start over in it"
            )

    def prepare(self, resume: bool, overwrite: bool) -> None:
        """Main rank only: create the folder; with --overwrite, remove the old run's files."""
        if overwrite and not resume and self.path.is_dir():
            for name in ENET_FILES:
                target = self.path / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        self.checkpoints.mkdir(parents=True, exist_ok=True)

    def write_config(self, yaml_text: str) -> None:
        write_text_atomic(self.path / "config.yaml", yaml_text)

    def write_env(self, info: dict) -> None:
        write_text_atomic(self.path / "env.json", json.dumps(info, indent=2) + "\n")

    def append_metrics(self, record: dict) -> None:
        with open(self.metrics, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read_metrics(self) -> list[dict]:
        if not self.metrics.is_file():
            return []
        records = []
        for line in self.metrics.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue  # a line cut by a crash
        return records

    def truncate_metrics(self, step: int) -> None:
        """On resume: drop records written after the checkpoint (they will be written again)."""
        kept = [r for r in self.read_metrics() if r.get("step", 0) <= step]
        write_text_atomic(self.metrics, "".join(json.dumps(r) + "\n" for r in kept))

    def write_summary(self, summary: dict) -> None:
        write_text_atomic(self.summary, json.dumps(summary, indent=2) + "\n")


def environment(device: torch.device, world_size: int) -> dict:
    """Versions, device, world size, git commit: what a reader needs to reproduce the run."""

    info = {
        "enet": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "retained_cpu_memory": memory_retained(),  # glibc keeps freed memory (enet/runtime.py)
        "device": str(device),
        "world_size": world_size,
        "argv": sys.argv,
    }
    try:
        import torchvision

        info["torchvision"] = torchvision.__version__
    except ImportError:
        pass
    try:
        import nvidia.dali

        info["dali"] = nvidia.dali.__version__
    except Exception:  # noqa: BLE001
        info["dali"] = None
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    try:
        here = Path(__file__).resolve().parent
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if commit.returncode == 0:
            info["git_commit"] = commit.stdout.strip()
            dirty = subprocess.run(
                ["git", "-C", str(here), "status", "--porcelain"],
                capture_output=True,
                text=True,
                timeout=5,
            )
            info["git_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return info
