"""The tracker seam (enet/train/trackers.py) against real local stores: MLflow on SQLite and
Weights & Biases offline; a tracker that fails warns once and the run goes on."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from conftest import run_enet

from enet.config import build_config
from enet.errors import EnetError
from enet.train.run_folder import RunFolder
from enet.train.trackers import RunInfo, Tracker, Trackers, flat_params

TINY = ["--model", "xresnet18", "--data", "mini", "--res", "32", "--set", "data.workers=1"]


def wandb_records(path: Path):
    """The records of a W&B run file (run-<id>.wandb): LevelDB's log format (32 KiB blocks of
    chunks with a 7-byte header: crc, length, type), each record a wandb_internal Record."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block, pos, chunks = path.read_bytes(), 32768, 7, b""  # 7: the file's own header
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        if length == 0 and kind == 0:
            break
        chunks += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = pb.Record()
            record.ParseFromString(chunks)
            chunks = b""
            yield record


def wandb_history(folder: Path) -> tuple[set[str], dict[int, dict]]:
    """Every offline run file under `folder`: the run ids, and history rows by step."""
    ids, rows = set(), {}
    for path in sorted(folder.glob("wandb/offline-run-*/run-*.wandb")):
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                ids.add(record.run.run_id)
            elif kind == "history":
                row = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in
                       record.history.item}  # fmt: skip
                rows.setdefault(record.history.step.num, {}).update(row)
            elif kind == "artifact":
                rows.setdefault("artifacts", {}).update(
                    {m.path: record.artifact.name for m in record.artifact.manifest.contents}
                )
    return ids, rows


def test_mlflow_and_wandb_follow_a_run_and_its_resume(tmp_path):
    """One tracker run per enet run: params, per-check and per-epoch metrics, summary.json and
    best.pt; `--resume` continues the same MLflow run and the same W&B run id."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {"MLFLOW_TRACKING_URI": uri, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    out = tmp_path / "run"
    common = ["--out", str(out), "--set", "train.log_every_steps=1"]
    run_enet(
        "train", *TINY, "--epochs", "1", *common, "--set", "run.trackers=mlflow,wandb",
        "--set", "run.tags=[study=trackers]", env=env, check=True, cwd=tmp_path,
    )  # fmt: skip
    ids = json.loads((out / "trackers.json").read_text())
    assert set(ids) == {"mlflow", "wandb"}
    proc = run_enet(
        "train", "--out", str(out), "--resume", "--epochs", "2", env=env, check=True, cwd=tmp_path
    )
    assert (tmp_path / "mlruns").is_dir()  # MLflow's artifacts beside its store, in the cwd
    assert "warning" not in proc.stdout + proc.stderr
    assert json.loads((out / "trackers.json").read_text()) == ids
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("enet")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [ids["mlflow"]]  # resumed, not a second run
    run = runs[0]
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["model.name"] == "xresnet18"
    assert run.data.params["train.epochs"] == "1"  # as first logged; the resume extended it
    assert run.data.tags["study"] == "trackers"
    top1 = client.get_metric_history(ids["mlflow"], "epoch/top1")
    assert [(m.step, m.value) for m in top1] == [(r["step"], r["top1"]) for r in records]
    losses = client.get_metric_history(ids["mlflow"], "train/loss")
    assert sorted({m.step for m in losses}) == list(range(1, records[-1]["step"] + 1))
    artifacts = {a.path for a in client.list_artifacts(ids["mlflow"])}
    assert "summary.json" in artifacts and "checkpoints" in artifacts
    assert [a.path for a in client.list_artifacts(ids["mlflow"], "checkpoints")] == [
        "checkpoints/best.pt"
    ]

    run_ids, rows = wandb_history(out)
    assert run_ids == {ids["wandb"]}  # two offline files (first run, resume), one run
    assert [rows[r["step"]]["epoch/top1"] for r in records] == [r["top1"] for r in records]
    assert "train/loss" in rows[1] and "train/lr" in rows[1]
    assert {"summary.json", "best.pt"} <= set(rows["artifacts"])


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens


def test_a_tracker_that_fails_warns_once_and_training_goes_on(tmp_path):
    """An MLflow server that is down, and a tracker package that is missing (W&B hidden from
    the process): one warning each, the run finishes, its files are whole."""
    out = tmp_path / "run"
    env = {
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{closed_port()}",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
        "PYTHONPATH": str(tmp_path / "hide"),
    }
    # sitecustomize runs at start-up: a module set to None in sys.modules is not installed
    (tmp_path / "hide").mkdir()
    (tmp_path / "hide" / "sitecustomize.py").write_text("import sys\nsys.modules['wandb'] = None\n")
    proc = run_enet(
        "train", *TINY, "--epochs", "1", "--out", str(out), "--set",
        "run.trackers=[mlflow,wandb]", env=env, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text
    assert "Traceback" not in text
    assert text.count("the mlflow tracker failed") == 1
    assert text.count("names wandb, but wandb is not installed") == 1
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    assert not (out / "trackers.json").exists()  # no tracker run to continue


class Broken(Tracker):
    name = "broken"

    def __init__(self, guarded: bool = True) -> None:
        self.guarded = guarded
        self.closed = None

    def log_step(self, step, metrics):
        raise ConnectionError("server went away\nsecond line")

    def close(self, status):
        self.closed = status


class Counting(Tracker):
    name = "counting"

    def __init__(self) -> None:
        self.steps, self.closed = [], None

    def start(self, run, run_id):
        return run_id or "id-1"

    def log_step(self, step, metrics):
        self.steps.append(step)

    def close(self, status):
        self.closed = status


def test_the_container_drops_a_failing_tracker_and_keeps_the_others(tmp_path):
    warnings = []
    broken, counting = Broken(), Counting()
    folder = RunFolder(tmp_path)
    trackers = Trackers([broken, counting], folder, warnings.append)
    info = RunInfo("r", folder, {}, {}, 0)
    trackers.start(info)
    assert json.loads((tmp_path / "trackers.json").read_text()) == {"counting": "id-1"}
    for step in (1, 2, 3):
        trackers.log_step(step, {"loss": 1.0})
    trackers.close("finished")
    assert counting.steps == [1, 2, 3] and counting.closed == "finished"
    assert broken.closed == "failed" and broken not in trackers.sinks
    assert (
        len(warnings) == 1
        and "broken tracker failed (ConnectionError: server went away)" in (warnings[0])
    )
    # another rank's container (no tracker of its own) leaves the ids as they are
    Trackers([Broken()], folder, warnings.append).start(info)
    assert json.loads((tmp_path / "trackers.json").read_text()) == {"counting": "id-1"}
    # --overwrite starts a new tracker run: the ids go with enet's other files
    (tmp_path / "tensorboard").mkdir()
    (tmp_path / "tensorboard" / "events.out.tfevents.1").write_text("old run")
    (tmp_path / "wandb").mkdir()
    folder.prepare(resume=False, overwrite=True)
    assert not (tmp_path / "trackers.json").exists() and not (tmp_path / "tensorboard").exists()
    assert (tmp_path / "wandb").is_dir()  # W&B's own store is the user's
    # a required sink's error is the run's (metrics.jsonl, the console)
    with pytest.raises(ConnectionError):
        Trackers([Broken(guarded=False)], folder, warnings.append).log_step(1, {})


def test_tracker_settings_are_checked_and_flattened():
    cfg = build_config(None, None, ["run.trackers=mlflow, wandb", "run.tags=[a=b, c=d=e]"])
    assert cfg.run.trackers == ("mlflow", "wandb") and cfg.run.tags == ("a=b", "c=d=e")
    assert cfg.to_dict()["run"]["trackers"] == ["mlflow", "wandb"]  # YAML-safe
    with pytest.raises(EnetError, match="run.trackers must be tensorboard, mlflow or wandb"):
        build_config(None, None, ["run.trackers=[neptune]"])
    with pytest.raises(EnetError, match="run.tags must be key=value, got 'study'"):
        build_config(None, None, ["run.tags=[study]"])
    flat = flat_params(cfg.to_dict())
    assert flat["model.name"] == cfg.model.name and flat["model.dropout"] == ""
