"""`enet data shard DATA OUT`: a dataset as WebDataset tar shards (issue 31, item 3; reading
them back: data/shards.py).

Any layout enet reads (class folders, a label file, a held-out split) becomes OUT/train-NNNNNN.tar
(samples shuffled by a seed) and OUT/val-NNNNNN.tar (in the split's order), each about
--shard-size bytes, written by the `webdataset` library's TarWriter in its conventions: per
sample `__key__`, the image as `jpg` or `png`, the class id as `cls`, and the source path as
`path.txt`; so `webdataset.WebDataset`, timm's `wds/` datasets and DALI's
`fn.readers.webdataset` read them as they are. OUT/shards.json indexes them: classes, and per
split each shard's file, samples and bytes; beside each shard, NAME.tar.idx holds each sample's
image offset and size in the tar, its class and source path (what enet reads them by). The set
is written into a hidden folder beside OUT and renamed into place at the end: a failed or
interrupted run leaves no OUT (and the next run removes what an interrupted one left).
"""

from __future__ import annotations

import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import EnetError
from ..fileio import write_json_atomic
from .checks import PNG_MAGIC
from .datasets import index_dataset, resolve_data
from .shards import FORMAT, INDEX


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
        _write_member_index(folder / shard["file"])
    return shards


def _write_member_index(tar_path: Path) -> None:
    """NAME.tar.idx: a line per sample, `offset size class path`: where its image's bytes lie
    in the tar (read from the tar's own headers), its class id and source path."""
    samples: dict[str, dict] = {}
    with tarfile.open(tar_path) as tar:
        for member in tar.getmembers():
            key, _, ext = member.name.partition(".")
            sample = samples.setdefault(key, {})
            if ext in ("jpg", "png"):
                sample["image"] = (member.offset_data, member.size)
            else:
                sample[ext] = tar.extractfile(member).read().decode()
    lines = [
        f"{s['image'][0]} {s['image'][1]} {s['cls']} {s['path.txt']}\n"
        for _, s in sorted(samples.items())
    ]
    Path(f"{tar_path}.idx").write_text("".join(lines))


def describe(report: ShardReport) -> dict:
    return dict(
        out=str(report.out),
        classes=report.classes,
        splits=report.splits,
        index=str(report.out / INDEX),
    )


__all__ = ["describe", "write_shards"]
