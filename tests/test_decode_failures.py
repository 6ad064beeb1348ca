"""A file that passes the listing's check but fails to decode mid-run (issue 31, item 5): the
torch loader skips it (its batch one image short), says so, records it so that the next run
leaves it out, and a resumed run keeps its own listing, so resume stays exact."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest
import torch
from conftest import run_enet
from datasets_util import broken_stream

from enet.data import build_loaders
from enet.data.datasets import MINI, index_dataset
from enet.data.torch_loader import TorchTrainLoader


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ENET_DATA_DIR", str(tmp_path / "cache"))


def _bad_mini(tmp_path):
    root = tmp_path / "d"
    shutil.copytree(MINI, root)
    real = sorted((root / "train" / "n01440764").glob("*.JPEG"))[0]
    bad = {
        "train": broken_stream(real, root / "train" / "n01440764" / "zz_broken.JPEG"),
        "val": broken_stream(real, root / "val" / "n01440764" / "zz_broken.JPEG"),
    }
    return root, bad


def test_the_torch_loader_skips_a_broken_file_and_resumes_exactly(tmp_path, capfd):
    root, bad = _bad_mini(tmp_path)
    index = index_dataset(root)
    assert str(bad["train"]) in index.train.files  # the quick check passes it
    train, val, _ = build_loaders(root, 16, 16, loader="torch", workers=1, randaugment=(0, 9))
    batches = [(x.clone(), y.clone()) for x, y in train]
    assert sorted(len(y) for _, y in batches)[0] == 15  # the broken file's batch
    assert sum(len(y) for _, y in batches) == train.num_samples - 1
    assert list(train.failures.files) == [str(bad["train"])]
    assert sum(len(y) for _, y in val) == len(index.val) - 1
    assert list(val.failures.files) == [str(bad["val"])]
    # said once each on stderr where no console was handed in (enet eval, predict, a library)
    said = capfd.readouterr().err.replace("\n", "")
    for path in bad.values():
        assert said.count(f"warning: {path} failed to decode") == 1, said
    # a resumed loader with the first run's listing: the same batches from batch 3 on
    again, _, _ = build_loaders(root, 16, 16, loader="torch", workers=1, randaugment=(0, 9),
                                left_out=train.listing_skipped)  # fmt: skip
    assert isinstance(again, TorchTrainLoader)
    again.load_state_dict({"backend": "torch", "epoch": 0, "batch": 3})
    for (x, y), (x2, y2) in zip(batches[3:], again, strict=True):
        assert torch.equal(x, x2) and torch.equal(y, y2)
    # a new listing leaves both files out: the run recorded them
    fresh = index_dataset(root)
    assert set(fresh.skipped) == {str(bad["train"]), str(bad["val"])}
    assert "failed to decode during a run" in fresh.skipped[str(bad["train"])]


def test_a_run_goes_on_and_the_next_leaves_the_file_out(tmp_path):
    root, bad = _bad_mini(tmp_path)
    args = ["--model", "xresnet18", "--data", str(root), "--res", "16", "--epochs", "1",
            "--batch-size", "32", "--device", "cpu", "--loader", "torch",
            "--set", "data.workers=1"]  # fmt: skip
    first = run_enet("train", *args, "--out", str(tmp_path / "a"), check=True)
    assert f"warning: {bad['train']} failed to decode (OSError: broken data stream" in (
        first.stdout.replace("\n", "")
    )
    assert "Traceback" not in first.stdout + first.stderr
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["decode_failures"] == sorted(str(p) for p in bad.values())
    assert summary["skipped_files"] == 2
    rows = gzip.decompress((tmp_path / "a" / "predictions.csv.gz").read_bytes()).decode()
    assert len(rows.splitlines()) == 1 + 100 and "zz_broken" not in rows  # 101 listed, 1 failed
    second = run_enet("train", *args, "--out", str(tmp_path / "b"), check=True)
    assert "skipped 2 unreadable files" in second.stdout and "failed to decode" not in (
        second.stdout
    )
    evaluated = run_enet("eval", str(tmp_path / "a"), "--out", str(tmp_path / "e"), check=True)
    assert json.loads((tmp_path / "e" / "eval.json").read_text())["count"] == 100, evaluated.stdout
