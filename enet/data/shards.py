"""`enet data shard DATA OUT`: a dataset as WebDataset tar shards (issue 31, item 3: the writer).

Any layout enet reads (class folders, a label file, a held-out split) becomes OUT/train-NNNNNN.tar
(samples shuffled by a seed) and OUT/val-NNNNNN.tar (in the split's order), each about
--shard-size bytes, written by the `webdataset` library's TarWriter in its conventions: per
sample `__key__`, the image as `jpg` or `png`, the class id as `cls`, and the source path as
`path.txt`; so `webdataset.WebDataset`, timm's `wds/` datasets and DALI's
`fn.readers.webdataset` read them as they are. OUT/shards.json indexes them: classes, and per
split each shard's file, samples and bytes. The set is written into a hidden folder beside OUT
and renamed into place at the end: a failed or interrupted run leaves no OUT (and the next run
removes what an interrupted one left).

Training and evaluating from shards (`--data OUT`) is not built yet: such a folder is refused
with one line.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import EnetError
from ..fileio import write_json_atomic
from .checks import PNG_MAGIC
from .datasets import index_dataset, resolve_data

INDEX = "shards.json"
FORMAT = "enet-shards/1"
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20,
          "GIB": 2**30}  # fmt: skip


def parse_size(text: str) -> int:
    """'256MB', '1GB', '500kB', '1048576' -> bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = m.group(2).upper() if m else None
    if m is None or unit not in _UNITS or float(m.group(1)) <= 0:
        raise EnetError(f"--shard-size {text!r}: give a size such as 256MB, 1GB or 500kB")
    return int(float(m.group(1)) * _UNITS[unit])


def is_shard_set(path: Path) -> bool:
    return (path / INDEX).is_file()


@dataclass(frozen=True)
class ShardReport:
    out: Path
    classes: int
    splits: dict  # split -> {"shards": n, "samples": n, "bytes": n}


def write_shards(
    data: str,
    out: str | os.PathLike,
    *,
    shard_size: int,
    seed: int = 0,
    val_pct: float | None = None,
    split_seed: int = 0,
) -> ShardReport:
    """Write DATA's readable images as shards into OUT (which must not exist)."""
    import webdataset as wds  # the optional extra enet[webdataset]

    out = Path(out)
    if out.exists():
        raise EnetError(f"{out} exists; enet data shard writes a new folder (remove it first)")
    index = index_dataset(resolve_data(data), val_pct=val_pct, split_seed=split_seed)
    base = index.root.parent if index.root.is_file() else index.root
    for stale in out.parent.glob(f".{out.name}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by an interrupted run
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    tmp.mkdir(parents=True)
    try:
        splits = {}
        for name, split in (("train", index.train), ("val", index.val)):
            order = range(len(split))
            if name == "train":
                order = np.random.default_rng(seed).permutation(len(split))
            splits[name] = _write_split(wds, tmp, name, split, order, shard_size, base)
        record = dict(
            format=FORMAT,
            source=str(index.root),
            classes=list(index.classes),
            seed=seed,
            split_note=index.split_note,
            skipped=len(index.skipped),
            splits=splits,
        )
        write_json_atomic(tmp / INDEX, record)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ShardReport(
        out,
        len(index.classes),
        {
            k: dict(
                shards=len(v),
                samples=sum(s["samples"] for s in v),
                bytes=sum(s["bytes"] for s in v),
            )
            for k, v in splits.items()
        },
    )


def _write_split(wds, folder: Path, name: str, split, order, shard_size: int, base: Path):
    """Samples in `order` into NAME-000000.tar, NAME-000001.tar, ... each closed once it holds
    shard_size bytes (so about that size, a sample over at most); -> [{file, samples, bytes}].
    Members get a fixed time, so the same data and seed give the same bytes."""
    shards: list[dict] = []
    writer = stream = None
    for key, i in enumerate(order):
        path = split.files[i]
        data = Path(path).read_bytes()
        if writer is None or stream.tell() >= shard_size:
            if writer is not None:
                writer.close()
                stream.close()
            shards.append(dict(file=f"{name}-{len(shards):06d}.tar", samples=0))
            stream = open(folder / shards[-1]["file"], "wb")  # noqa: SIM115 (closed above/below)
            writer = wds.TarWriter(stream, mtime=0)
        ext = "png" if data.startswith(PNG_MAGIC) else "jpg"
        writer.write(
            {
                "__key__": f"{key:09d}",
                ext: data,
                "cls": str(split.labels[i]),
                "path.txt": os.path.relpath(path, base),
            }
        )
        shards[-1]["samples"] += 1
    if writer is not None:
        writer.close()
        stream.close()
    for shard in shards:
        shard["bytes"] = (folder / shard["file"]).stat().st_size
    return shards


def describe(report: ShardReport) -> dict:
    return dict(
        out=str(report.out),
        classes=report.classes,
        splits=report.splits,
        index=str(report.out / INDEX),
    )


__all__ = ["FORMAT", "INDEX", "describe", "is_shard_set", "parse_size", "write_shards"]
