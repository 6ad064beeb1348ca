"""`enet predict`, `enet plot` and TensorBoard events: real JPEGs, a corrupt file, real runs."""

from __future__ import annotations

import csv
import json

from conftest import REPO, run_enet


def test_predict_files_folders_and_a_corrupt_file(tmp_path, run_dir):
    val = REPO / "enet" / "data" / "mini" / "val"
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff this is not a JPEG")
    single = next((val / "n03888257").iterdir())
    out = tmp_path / "pred.csv"
    proc = run_enet(
        "predict", str(run_dir), str(val / "n01440764"), str(single), str(bad), "--top-k", "3",
        "--out", str(out), check=True,
    )  # fmt: skip
    assert "top-3 predictions" in proc.stdout and "Traceback" not in proc.stderr
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10 + 1 + 1  # a folder of 10, one file, the corrupt one
    good = [r for r in rows if not r["error"]]
    assert len(good) == 11 and all(r["class_1"].startswith("n0") for r in good)
    assert all(float(r["prob_1"]) >= float(r["prob_2"]) >= float(r["prob_3"]) for r in good)
    assert all(0.0 < sum(float(r[f"prob_{i}"]) for i in (1, 2, 3)) <= 1.0 + 1e-6 for r in good)
    broken = next(r for r in rows if r["path"] == str(bad))
    assert broken["error"] and not broken["class_1"]
    as_json = run_enet("predict", str(run_dir), str(single), "--json", "--top-k", "2", check=True)
    record = json.loads(as_json.stdout)[0]
    assert len(record["classes"]) == 2 and record["names"][0] != record["classes"][0]


def test_predict_errors(tmp_path, run_dir):
    missing = run_enet("predict", str(run_dir), str(tmp_path / "nope.jpg"))
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr
    empty = run_enet("predict", str(run_dir), str(tmp_path))
    assert empty.returncode == 2 and "no images" in empty.stderr
    wrong = run_enet("predict", str(run_dir), str(REPO / "enet" / "data" / "mini" / "val"),
                     "--out", str(tmp_path / "x.txt"))  # fmt: skip
    assert wrong.returncode == 2 and ".csv or .json" in wrong.stderr


def test_plot_curves_of_several_runs(tmp_path, run_dir):
    import shutil

    from PIL import Image

    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    out = tmp_path / "curves.png"
    run_enet("plot", str(run_dir), str(other), "--out", str(out), check=True)
    with Image.open(out) as im:
        assert im.format == "PNG" and 800 < im.size[0] <= 2000
    # without --out: runs.png in the current folder, and the output names its full path
    here = run_enet("plot", str(run_dir), cwd=tmp_path, check=True)
    assert f"wrote {tmp_path.resolve() / 'runs.png'}" in " ".join(here.stdout.split())
    not_a_run = run_enet("plot", str(tmp_path / "empty"), "--out", str(out))
    assert not_a_run.returncode == 2 and "no metrics.jsonl" in not_a_run.stderr


def test_tensorboard_events_from_a_run(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    run_enet(
        "train", "--config", "configs/smoke.yaml", "--res", "32", "--epochs", "2", "--out",
        str(out), "--set", "run.tensorboard=true", "--set", "train.log_every_steps=2",
        check=True,
    )  # fmt: skip
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "epoch/val_loss", "epoch/top1", "epoch/data_wait_s"} <= tags
    top1 = [e.value for e in events.Scalars("epoch/top1")]
    assert len(top1) == 2 and all(0 <= v <= 100 for v in top1)
    assert "tensorboard: true" in (out / "config.yaml").read_text()
