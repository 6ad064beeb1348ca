"""Where a run's figures go: the tracker seam (torchtitan's `BaseLogger` / `LoggerContainer`).

The loop hands every sink the same four calls: `start` (the run and its config), `log_step` (the
loss, lr and throughput at each check), `log_epoch` (the epoch record that metrics.jsonl holds)
and `finish` (the summary, the run folder's files worth keeping). The console display
(progress.Reporter) and the run folder's metrics.jsonl / summary.json are sinks whose errors
stop the run; the optional trackers (`run.trackers`: TensorBoard, MLflow, Weights & Biases) are
guarded: one that fails (its package missing, its server down) warns once and is dropped, and
training goes on with nothing lost. They run on the main rank only.

A tracker keeps its run's id in OUT/trackers.json, so `enet train --out OUT --resume` continues
the same tracker run instead of opening a second one.

To add a tracker: subclass `Tracker`, name it in `choices.TRACKERS`, build it in `_build`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..fileio import write_text_atomic
from .run_folder import RunFolder


@dataclass(frozen=True)
class RunInfo:
    """What a tracker knows of the run when it starts."""

    name: str  # the run folder's name
    folder: RunFolder
    config: dict  # the resolved config (Config.to_dict())
    tags: dict[str, str]
    first_step: int  # 0, or the step a resumed run continues at


class Tracker:
    """A sink for the run's figures; every method may be left as it is (a no-op)."""

    name = "tracker"
    guarded = True  # a failure warns once and drops it (False: the error stops the run)

    def start(self, run: RunInfo, run_id: str | None) -> str | None:
        """Open (or with `run_id`, continue) the tracker's run; returns its id to keep."""
        return None

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        pass

    def log_epoch(self, record: dict) -> None:
        pass

    def finish(self, summary: dict, files: dict[str, Path]) -> None:
        """The run ended: `files` are the artifacts to keep (summary.json, best.pt)."""

    def close(self, status: str) -> None:
        """Release the tracker: status is finished, stopped (resumable) or failed."""


class RunFolderSink(Tracker):
    """The run folder's records: metrics.jsonl (a line per epoch) and summary.json."""

    name = "run folder"
    guarded = False

    def __init__(self, folder: RunFolder) -> None:
        self.folder = folder

    def log_epoch(self, record: dict) -> None:
        self.folder.append_metrics(record)

    def finish(self, summary: dict, files: dict[str, Path]) -> None:
        self.folder.write_summary(summary)


class Trackers:
    """The run's sinks, called in order; OUT/trackers.json keeps each tracker's run id."""

    def __init__(self, sinks: list[Tracker], folder: RunFolder, warn: Callable[[str], None]):
        self.sinks = sinks
        self.folder = folder
        self.warn = warn
        self.path = folder.path / "trackers.json"

    def start(self, run: RunInfo) -> None:
        ids, started = self._ids(), {}
        for sink in list(self.sinks):
            run_id = self._call(sink, "start", run, ids.get(sink.name))
            if run_id is not None and sink in self.sinks:
                started[sink.name] = run_id
        if started:  # only where a tracker runs (the main rank)
            write_text_atomic(self.path, json.dumps(ids | started, indent=2) + "\n")

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        self._each("log_step", step, metrics)

    def log_epoch(self, record: dict) -> None:
        self._each("log_epoch", record)

    def finish(self, summary: dict, files: dict[str, Path]) -> None:
        self._each("finish", summary, files)

    def close(self, status: str) -> None:
        self._each("close", status)

    def _each(self, method: str, *args) -> None:
        for sink in list(self.sinks):  # a copy: a failing tracker leaves the list
            self._call(sink, method, *args)

    def _ids(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def _call(self, sink: Tracker, method: str, *args):
        if not sink.guarded:
            return getattr(sink, method)(*args)
        try:
            return getattr(sink, method)(*args)
        except Exception as err:  # noqa: BLE001 (a tracker's own errors: network, package, disk)
            self.sinks.remove(sink)
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            self.warn(
                f"[yellow]warning: the {sink.name} tracker failed ({type(err).__name__}: "
                f"{first[:200]}); training goes on without it (metrics.jsonl keeps every figure)"
            )
            if method != "close":
                try:
                    sink.close("failed")
                except Exception:  # noqa: BLE001, S110 (it failed already; nothing more to say)
                    pass
            return None


def build_trackers(
    names: tuple[str, ...], folder: RunFolder, required: list[Tracker], enabled: bool, warn
) -> Trackers:
    """The required sinks (console, run folder) and, on the main rank, the named trackers. A
    tracker whose package is missing warns once here and is left out."""
    sinks = list(required)
    if enabled:
        for name in dict.fromkeys(names):
            try:
                sinks.append(_build(name))
            except ImportError as err:
                extra = "tensorboard" if name == "tensorboard" else name
                warn(
                    f"[yellow]warning: run.trackers names {name}, but {err.name or name} is not "
                    f"installed (pip install 'enet\\[{extra}]'); training goes on without it"
                )
    return Trackers(sinks, folder, warn)


def _build(name: str) -> Tracker:
    if name == "tensorboard":
        return TensorBoardTracker()
    if name == "mlflow":
        return MLflowTracker()
    if name == "wandb":
        return WandbTracker()
    raise ValueError(f"unknown tracker {name!r}")  # config validation names the choices first


def flat_params(config: dict, prefix: str = "") -> dict[str, str]:
    """A nested config as 'section.key' -> text (MLflow's params, W&B's config is nested)."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat |= flat_params(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = "" if value is None else str(value)
    return flat


def _epoch_scalars(record: dict) -> dict[str, float]:
    """The epoch record's numbers (not its epoch and step counters or flags)."""
    return {
        key: float(value)
        for key, value in record.items()
        if key not in ("epoch", "step")
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    }


# ---------------------------------------------------------------------------------------------
# the trackers


class TensorBoardTracker(Tracker):
    """Event files under OUT/tensorboard (torch.utils.tensorboard): train/* at each check,
    epoch/* at each epoch's end."""

    name = "tensorboard"

    def __init__(self) -> None:
        import tensorboard  # noqa: F401 (the writer needs it; say so before the run starts)

        self.writer = None

    def start(self, run: RunInfo, run_id: str | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: a resumed run drops what its first run logged after the checkpoint
        self.writer = SummaryWriter(
            str(run.folder.path / "tensorboard"), purge_step=run.first_step or None
        )

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(f"train/{key}", value, step)

    def log_epoch(self, record: dict) -> None:
        for key, value in _epoch_scalars(record).items():
            self.writer.add_scalar(f"epoch/{key}", value, record["step"])
        self.writer.flush()

    def close(self, status: str) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class MLflowTracker(Tracker):
    """An MLflow run: params = the resolved config (section.key), metrics train/* per check and
    epoch/* per epoch (at the optimiser step), artifacts summary.json and best.pt.

    The store is MLFLOW_TRACKING_URI, else a SQLite file ./mlflow.db (MLflow 3's own default:
    its file store is in maintenance mode); the experiment MLFLOW_EXPERIMENT_NAME, else enet.
    `mlflow ui --backend-store-uri sqlite:///mlflow.db` shows it."""

    name = "mlflow"

    def __init__(self) -> None:
        from mlflow.tracking import MlflowClient

        self.uri = os.environ.get("MLFLOW_TRACKING_URI") or (
            f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"
        )
        self.client = MlflowClient(tracking_uri=self.uri)
        self.run_id: str | None = None

    def start(self, run: RunInfo, run_id: str | None) -> str:
        from mlflow.entities import Param

        params = flat_params(run.config)
        if run_id is not None:  # --resume: the same run; params it has stay as they were
            logged = self.client.get_run(run_id).data.params
            params = {k: v for k, v in params.items() if k not in logged}
            self.client.update_run(run_id, status="RUNNING")
        else:
            experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME", "enet")
            found = self.client.get_experiment_by_name(experiment)
            experiment_id = (
                found.experiment_id if found else self.client.create_experiment(experiment)
            )
            run_id = self.client.create_run(
                experiment_id, run_name=run.name, tags=dict(run.tags)
            ).info.run_id
        items = [Param(k, v[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(run_id, params=items[i : i + 100])
        self.run_id = run_id
        return run_id

    def _log(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, step) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        self._log({f"train/{k}": v for k, v in metrics.items()}, step)

    def log_epoch(self, record: dict) -> None:
        scalars = _epoch_scalars(record) | {"epoch": record["epoch"]}
        self._log({f"epoch/{k}": v for k, v in scalars.items()}, record["step"])

    def finish(self, summary: dict, files: dict[str, Path]) -> None:
        for path in files.values():
            folder = "checkpoints" if path.suffix == ".pt" else None
            self.client.log_artifact(self.run_id, str(path), artifact_path=folder)
        self.client.set_tag(self.run_id, "enet.status", summary.get("status", ""))

    def close(self, status: str) -> None:
        if self.run_id is not None:
            mlflow_status = {"finished": "FINISHED", "stopped": "KILLED"}.get(status, "FAILED")
            self.client.set_terminated(self.run_id, mlflow_status)
            self.run_id = None


class WandbTracker(Tracker):
    """A Weights & Biases run in OUT/wandb: config = the resolved config, train/* per check,
    epoch/* per epoch (at the optimiser step), summary.json and best.pt as artifacts. The
    project is WANDB_PROJECT, else enet; WANDB_MODE=offline logs without a network
    (`wandb sync OUT/wandb/offline-run-*` uploads later)."""

    name = "wandb"

    def __init__(self) -> None:
        import wandb

        self.wandb = wandb
        self.run = None

    def start(self, run: RunInfo, run_id: str | None) -> str:
        self.run = self.wandb.init(
            project=os.environ.get("WANDB_PROJECT", "enet"),
            name=run.name,
            id=run_id,
            resume="allow" if run_id else None,
            dir=str(run.folder.path),
            config=run.config,
            tags=[f"{k}={v}" for k, v in run.tags.items()],
            reinit="create_new",
            settings=self.wandb.Settings(quiet=True),  # the console is enet's
        )
        return self.run.id

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log({f"train/{k}": v for k, v in metrics.items()}, step=step)

    def log_epoch(self, record: dict) -> None:
        scalars = _epoch_scalars(record) | {"epoch": record["epoch"]}
        self.run.log({f"epoch/{k}": v for k, v in scalars.items()}, step=record["step"])

    def finish(self, summary: dict, files: dict[str, Path]) -> None:
        self.run.summary.update(
            {k: v for k, v in summary.items() if isinstance(v, int | float | str | bool)}
        )
        artifact = self.wandb.Artifact(f"run-{self.run.id}", type="model")
        for path in files.values():
            artifact.add_file(str(path))
        self.run.log_artifact(artifact)

    def close(self, status: str) -> None:
        if self.run is not None:
            self.run.finish(exit_code=0 if status in ("finished", "stopped") else 1)
            self.run = None
