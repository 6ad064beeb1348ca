"""`enet data shard` (issue 31, item 3: the writer): WebDataset shards that the webdataset
library reads back sample for sample, an index, reproducible bytes, and atomic writing."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from conftest import run_enet
from datasets_util import solid_dataset

from enet.data.datasets import MINI, index_dataset
from enet.data.shards import parse_size, write_shards
from enet.errors import EnetError

wds = pytest.importorskip("webdataset")  # a dev dependency: make install brings it


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ENET_DATA_DIR", str(tmp_path / "cache"))


def test_shards_hold_every_image_once_and_read_back(tmp_path):
    out = tmp_path / "shards"
    proc = run_enet("data", "shard", "mini", str(out), "--shard-size", "400kB", "--json",
                    check=True)  # fmt: skip
    report = json.loads(proc.stdout)
    assert report["splits"]["train"]["samples"] == 240 and report["splits"]["val"]["samples"] == 100
    index = json.loads((out / "shards.json").read_text())
    assert index["format"] == "enet-shards/1" and len(index["classes"]) == 10
    shards = index["splits"]["train"]
    assert len(shards) > 1 and all(s["bytes"] < 400_000 + 40_000 for s in shards[:-1])
    source = index_dataset(MINI)
    by_path = {
        str(p.relative_to(MINI)): (p.read_bytes(), label)
        for split in (source.train, source.val)
        for p, label in zip(map(Path, split.files), split.labels, strict=True)
    }  # fmt: skip
    seen = {}
    for split in ("train", "val"):
        urls = [str(out / s["file"]) for s in index["splits"][split]]
        for sample in wds.WebDataset(urls, shardshuffle=False):
            path = sample["path.txt"].decode()
            assert path.startswith(split + "/")
            data, label = by_path[path]
            assert sample["jpg"] == data and int(sample["cls"]) == label
            seen[path] = split
    assert len(seen) == 340
    # the training samples are shuffled (by --seed), the validation ones in order
    with tarfile.open(out / "val-000000.tar") as tar:
        first = [m.name for m in tar.getmembers() if m.name.endswith(".path.txt")][:3]
    assert first == ["000000000.path.txt", "000000001.path.txt", "000000002.path.txt"]
    again = tmp_path / "again"
    run_enet("data", "shard", "mini", str(again), "--shard-size", "400kB", check=True)
    assert (again / "train-000000.tar").read_bytes() == (out / "train-000000.tar").read_bytes()


def test_shard_errors_and_atomic_writing(tmp_path, monkeypatch):
    out = tmp_path / "s"
    out.mkdir()
    exists = run_enet("data", "shard", "mini", str(out))
    assert exists.returncode == 2 and "exists" in exists.stderr
    bad_size = run_enet("data", "shard", "mini", str(tmp_path / "t"), "--shard-size", "big")
    assert bad_size.returncode == 2 and "give a size such as 256MB" in bad_size.stderr
    assert parse_size("1GB") == 10**9 and parse_size("2MiB") == 2 * 2**20
    training = run_enet("train", "--data", str(tmp_path / "u"), "--epochs", "1")
    assert training.returncode == 2
    # a failure part-way (a file vanishes after the listing) leaves neither OUT nor a partial set
    root = solid_dataset(tmp_path / "d", n_train=3, n_val=1)
    real_read = Path.read_bytes
    calls = {"n": 0}

    def flaky(self):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("disk went away")
        return real_read(self)

    monkeypatch.setattr("pathlib.Path.read_bytes", flaky)
    with pytest.raises(OSError, match="disk went away"):
        write_shards(str(root), tmp_path / "w", shard_size=10_000)
    monkeypatch.undo()
    assert not (tmp_path / "w").exists() and not list(tmp_path.glob(".w.partial-*"))
    (tmp_path / ".w.partial-99999").mkdir()  # what a killed run leaves: the next removes it
    write_shards(str(root), tmp_path / "w", shard_size=10_000)
    assert not list(tmp_path.glob(".w.partial-*"))
    trains = run_enet("train", "--data", str(tmp_path / "w"), "--epochs", "1")
    assert trains.returncode == 2 and "shard set" in trains.stderr
    with pytest.raises(EnetError, match="exists"):
        write_shards(str(root), tmp_path / "w", shard_size=10_000)
