"""`enet data shard` and `--data SHARDS` (issue 31, item 3): WebDataset shards that the
webdataset library reads back sample for sample, reproducible and atomic; both loaders read them
(the same validation images as the folder, exact resume, DDP over gloo); bad shard sets are one
line."""

from __future__ import annotations

import gzip
import http.server
import json
import re
import shutil
import tarfile
import threading
from pathlib import Path

import pytest
import torch
from conftest import run_enet
from datasets_util import solid_dataset

from enet.data import build_eval_loader, build_loaders
from enet.data.datasets import MINI, index_dataset
from enet.data.shard_writer import write_shards
from enet.data.shards import parse_size
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
    with pytest.raises(EnetError, match="exists"):
        write_shards(str(root), tmp_path / "w", shard_size=10_000)


@pytest.fixture(scope="module")
def shard_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("shards") / "mini-wds"
    write_shards("mini", out, shard_size=300_000)
    return out


@pytest.mark.parametrize("backend", ["torch", "dali"])
def test_both_loaders_read_shards_and_resume_exactly(shard_set, backend):
    if backend == "dali":
        pytest.importorskip("nvidia.dali")
    options = dict(loader=backend, workers=1, randaugment=(0, 9))
    train, val, classes = build_loaders(shard_set, 32, 16, **options)
    folder_val, folder_classes = build_eval_loader(MINI, 32, 16, loader=backend, workers=1)
    assert classes == folder_classes
    for (x, y), (fx, fy) in zip(val, folder_val, strict=True):  # val: the folder's order
        assert torch.equal(x, fx) and torch.equal(y, fy)
    batches = [(x.clone(), y.clone()) for x, y in train]
    assert sum(len(y) for _, y in batches) == train.num_samples == 240
    again, _, _ = build_loaders(shard_set, 32, 16, **options)
    again.load_state_dict(_state_at(shard_set, 4, options))  # as a resumed run's loader
    for (x, y), (x2, y2) in zip(batches[4:], again, strict=True):
        assert torch.equal(x, x2) and torch.equal(y, y2)


def _state_at(shard_set, batch: int, options: dict) -> dict:
    """A loader's state after `batch` batches (DALI's holds its pipeline's checkpoint)."""
    loader, _, _ = build_loaders(shard_set, 32, 16, **options)
    for i, _ in enumerate(loader, 1):
        if i == batch:
            return loader.state_dict()
    raise AssertionError("too few batches")


def test_ddp_over_gloo_trains_from_shards(shard_set, tmp_path):
    """Two gloo ranks on shards, with a zoo model (issue 29: DDP for timm's models too)."""
    out = tmp_path / "ddp"
    proc = run_enet("train", "--nproc-per-node", "2", "--model", "timm:test_resnet", "--data",
                    str(shard_set), "--res", "32", "--batch-size", "16", "--epochs", "1",
                    "--device", "cpu", "--out", str(out), "--set", "data.workers=0",
                    timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["ranks_in_sync"] is True
    assert summary["steps"] == 240 // 2 // 16
    rows = gzip.decompress((out / "predictions.csv.gz").read_bytes()).decode().splitlines()
    assert len(rows) == 101 and rows[1].split(",")[1] == "n01440764/n01440764_10740.JPEG"


def test_bad_shard_sets_are_one_line(shard_set, tmp_path):
    def broken(name, change):
        copy = tmp_path / name
        shutil.copytree(shard_set, copy)
        change(copy)
        with pytest.raises(EnetError) as err:
            index_dataset(copy)
        return str(err.value)

    def truncate(p):
        tar = p / "train-000000.tar"
        tar.write_bytes(tar.read_bytes()[:5000])

    assert "holds 5000 bytes, its index says" in broken("t", truncate)
    assert "holds 0 bytes" in broken("e", lambda p: (p / "val-000000.tar").write_bytes(b""))
    assert "not an enet shard index" in broken(
        "f", lambda p: (p / "shards.json").write_text('{"format": "other"}')
    )
    assert "No such file" in broken("m", lambda p: (p / "train-000001.tar.idx").unlink())
    with pytest.raises(EnetError, match="has its validation split"):
        index_dataset(shard_set, val_pct=0.2)


@pytest.fixture
def served(shard_set):
    """The shard set over HTTP from a local server that answers HEAD and range requests, as
    object stores and web servers do; -> (its URL, the paths it was asked for)."""
    asked = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _file(self):
            name = self.path.rsplit("/", 1)[-1]
            asked.append(name)
            path = shard_set / name
            return path if path.is_file() else None

        def do_HEAD(self):  # noqa: N802 (the standard library's name)
            path = self._file()
            self.send_response(200 if path else 404)
            self.send_header("Content-Length", str(path.stat().st_size if path else 0))
            self.end_headers()

        def do_GET(self):  # noqa: N802
            path = self._file()
            if path is None:
                self.send_error(404)
                return
            data = path.read_bytes()
            ranged = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
            if ranged:
                start, end = int(ranged.group(1)), int(ranged.group(2))
                data = data[start : end + 1]
            self.send_response(206 if ranged else 200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/mini-wds/", asked
    httpd.shutdown()


def test_a_shard_set_over_http_trains_as_the_local_one(served, shard_set, tmp_path):
    url, asked = served
    remote = index_dataset(url)
    local = index_dataset(shard_set)
    assert remote.classes == local.classes and remote.train.labels == local.train.labels
    # the same members (offset, size, source) of the same shards, served instead of local
    assert [f.split("::")[1] for f in remote.val.files] == [
        f.split("::")[1] for f in local.val.files
    ]
    val, _ = build_eval_loader(url, 32, 16, loader="torch", workers=1)
    local_val, _ = build_eval_loader(shard_set, 32, 16, loader="torch", workers=1)
    for (x, y), (lx, ly) in zip(val, local_val, strict=True):  # each image by a range request
        assert torch.equal(x, lx) and torch.equal(y, ly)
    assert "val-000000.tar" in asked and "shards.json" in asked
    out = tmp_path / "run"
    run_enet("train", "--model", "xresnet18", "--data", url, "--res", "16", "--epochs", "1",
             "--batch-size", "32", "--device", "cpu", "--out", str(out),
             "--set", "data.workers=1", check=True)  # fmt: skip
    assert json.loads((out / "summary.json").read_text())["data"] == url
    gone = run_enet("train", "--data", "http://127.0.0.1:9/none/", "--epochs", "1", "--out",
                    str(tmp_path / "x"))  # fmt: skip
    assert gone.returncode == 2 and "cannot read http://127.0.0.1:9/none/shards.json" in (
        gone.stderr
    )
