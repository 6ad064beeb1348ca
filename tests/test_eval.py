"""`enet eval` as a user meets it: ImageNet-sized class counts, run folders, option checks,
human class names, files that never replace another evaluation's."""

from __future__ import annotations

import csv
import gzip
import json
import resource
from pathlib import Path

import pytest
from conftest import run_enet
from PIL import Image

from enet.class_names import display_name, imagenet_names
from enet.data import dali_status

BACKENDS = ["torch"] + (["dali"] if dali_status() is None else [])
WNIDS = (Path(__file__).parents[1] / "enet" / "imagenet_wnids.txt").read_text().split()


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ENET_DATA_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def imagenet_like(tmp_path_factory) -> Path:
    """ImageNet's 1000 class folders (real WordNet IDs), one small JPEG per class and split."""
    root = tmp_path_factory.mktemp("imagenet")
    for k, wnid in enumerate(WNIDS):
        colour = (k % 10 * 25, k // 10 % 10 * 25, k // 100 * 25)
        for split in ("train", "val"):
            folder = root / split / wnid
            folder.mkdir(parents=True)
            Image.new("RGB", (24, 20), colour).save(folder / f"{wnid}_{split}.JPEG", quality=90)
    return root


def test_class_names_cover_imagenet():
    names = imagenet_names()
    assert len(names) == 1000 and len(WNIDS) == 1000 and WNIDS == sorted(WNIDS)
    assert display_name("n01440764") == "tench" and display_name("n03888257") == "parachute"
    assert display_name("n02086240") == "Shih-Tzu"  # Imagewoof's first class
    assert display_name("my_class") == "my_class"  # unknown IDs stay as they are


def test_thousand_classes_train_and_evaluate_in_bounded_memory(tmp_path, imagenet_like):
    run = tmp_path / "run"
    train = run_enet(
        "train", "--model", "xresnet18", "--data", str(imagenet_like), "--res", "16",
        "--epochs", "1", "--batch-size", "100", "--device", "cpu", "--out", str(run),
        "--set", "optim.lr=0.01", "--set", "data.workers=1",
    )  # fmt: skip
    assert train.returncode == 0, train.stdout + train.stderr
    for backend in BACKENDS:
        out = tmp_path / f"eval-{backend}"
        ev = run_enet("eval", str(run), "--loader", backend, "--out", str(out))
        assert ev.returncode == 0, ev.stdout + ev.stderr
        # the results come before the files, and the table is summarised with names
        assert ev.stdout.index("top-1 %") < ev.stdout.index("wrote")
        assert "10 best and 10 worst of 1000 classes" in ev.stdout
        record = json.loads((out / "eval.json").read_text())
        assert record["count"] == 1000 and len(record["per_class"]) == 1000
        assert record["per_class"][0]["name"] == "tench" and record["classes"][0] == "n01440764"
        assert record["step"] == 10
        assert (out / "per_class.csv").read_text().count("\n") == 1001
        for plot in ("confusion.png", "per_class.png"):
            with Image.open(out / plot) as im:
                assert max(im.size) <= 2000, (plot, im.size)
        assert not list(out.glob(".*.tmp"))
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    assert child < 4e9, f"an enet process peaked at {child / 1e9:.1f} GB"


def test_eval_run_folder_options_and_no_silent_overwrite(tmp_path):
    run = tmp_path / "run"
    run_enet(
        "train", "--config", "configs/smoke.yaml", "--res", "32", "--epochs", "1",
        "--out", str(run), check=True,
    )  # fmt: skip
    for bad, message in (
        (["--res", "0"], "--res must be >= 16"),
        (["--res", "7"], "--res must be >= 16"),
        (["--batch-size", "0"], "--batch-size must be >= 1"),
    ):
        proc = run_enet("eval", str(run), *bad)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    first = run_enet("eval", str(run), check=True)  # a run folder: its best.pt
    second = run_enet("eval", str(run), "--tta", check=True)
    a, b = run / "eval" / "best-32px", run / "eval" / "best-32px-tta"
    assert str(a) in first.stdout and str(b) in second.stdout
    # per-image results beside the metrics, in the split's order (issue 29)
    record = json.loads((a / "eval.json").read_text())
    with gzip.open(a / "predictions.csv.gz", "rt") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == record["count"] and [int(r["index"]) for r in rows] == list(
        range(len(rows))
    )
    assert len({r["file"] for r in rows}) == len(rows)
    assert all(r["file"].split("/")[0] == r["true"] for r in rows)  # the class folder
    assert all(r["correct"] == str(int(r["true"] == r["predicted"])) for r in rows)
    assert 100 * sum(r["correct"] == "1" for r in rows) / len(rows) == pytest.approx(record["top1"])
    assert all(0 <= float(r["p_true"]) <= 1 for r in rows)
    assert json.loads((a / "eval.json").read_text())["tta"] is False
    assert json.loads((b / "eval.json").read_text())["tta"] is True
    clash = run_enet("eval", str(run), "--res", "48", "--out", str(a))
    assert clash.returncode == 2 and "other options" in clash.stderr
    assert json.loads((a / "eval.json").read_text())["res"] == 32  # untouched
    run_enet("eval", str(run), "--res", "48", "--out", str(a), "--overwrite", check=True)
    assert json.loads((a / "eval.json").read_text())["res"] == 48
    empty = run_enet("eval", str(tmp_path))
    assert empty.returncode == 2 and "no checkpoints/best.pt" in empty.stderr
    as_json = run_enet("eval", str(run), "--json", "--out", str(tmp_path / "j"), check=True)
    assert json.loads(as_json.stdout)["res"] == 32  # the record alone, no tables
    version = run_enet("--version", check=True)
    assert version.stdout.startswith("enet ")
