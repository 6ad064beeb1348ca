"""Reading a shard set that `enet data shard` wrote (data/shard_writer.py): its index, and each
sample's image by its place in its tar.

A sample is named `SHARD.tar::OFFSET+SIZE/SOURCE-PATH`: the image's bytes lie at OFFSET in
SHARD.tar (its NAME.tar.idx says where), and SOURCE-PATH (class folder and file, as it was) keeps
predictions.csv and the reports readable. Both loaders read such a name with `read_encoded`, so
everything downstream of the listing holds as for image folders: enet's sample order and its
bit-exact resume, DDP sharding by rank, bad-file handling. The shards are read by random
access, not streamed: a file system holds a few large files instead of millions of small ones
(what shards are for on a cluster's network storage), at the cost of sequential reads. A shard
set served over HTTP(S) (`--data https://host/path/`) is read the same way, each image by an
HTTP range request; `pipe:` URLs cannot seek and are not supported.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from ..errors import EnetError

INDEX = "shards.json"
FORMAT = "enet-shards/1"
MEMBER = re.compile(r"^(.*\.tar)::(\d+)\+(\d+)/")
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20,
          "GIB": 2**30}  # fmt: skip


def parse_size(text: str) -> int:
    """'256MB', '1GB', '500kB', '1048576' -> bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = m.group(2).upper() if m else None
    if m is None or unit not in _UNITS or float(m.group(1)) <= 0:
        raise EnetError(f"--shard-size {text!r}: give a size such as 256MB, 1GB or 500kB")
    return int(float(m.group(1)) * _UNITS[unit])


def is_url(location: str | os.PathLike) -> bool:
    return str(location).startswith(("http://", "https://"))


def is_shard_set(path: str | os.PathLike) -> bool:
    return is_url(path) or (Path(path) / INDEX).is_file()


def _join(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/{name}" if is_url(root) else str(Path(root) / name)


def _fetch(url: str, offset: int | None = None, size: int | None = None) -> bytes:
    """A URL's bytes, or `size` of them from `offset` (an HTTP range request)."""
    request = urllib.request.Request(url)
    if offset is not None:
        request.add_header("Range", f"bytes={offset}-{offset + size - 1}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            if offset is not None and response.status != 206:
                raise OSError(
                    f"{url}: the server ignores range requests (status {response.status})"
                )
            return response.read()
    except (urllib.error.URLError, TimeoutError) as err:
        raise OSError(f"cannot read {url}: {getattr(err, 'reason', err)}") from None


def _read_text(location: str) -> str:
    return _fetch(location).decode() if is_url(location) else Path(location).read_text()


def _size(location: str) -> tuple[int, int]:
    """(bytes, mtime in ns; 0 for a URL) of a shard."""
    if not is_url(location):
        st = os.stat(location)
        return st.st_size, st.st_mtime_ns
    request = urllib.request.Request(location, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.headers.get("Content-Length", -1)), 0
    except (urllib.error.URLError, TimeoutError) as err:
        raise OSError(f"cannot reach {location}: {getattr(err, 'reason', err)}") from None


def read_encoded(path: str) -> np.ndarray:
    """A file's bytes as uint8, or a shard member's (`SHARD.tar::OFFSET+SIZE/...`)."""
    m = MEMBER.match(path)
    if m is None:
        return np.fromfile(path, dtype=np.uint8)
    tar, offset, size = m.group(1), int(m.group(2)), int(m.group(3))
    if is_url(tar):
        data = _fetch(tar, offset, size)
    else:
        with open(tar, "rb") as f:
            f.seek(offset)
            data = f.read(size)
    if len(data) != size:
        raise OSError(f"{tar} is truncated: {size} bytes at {offset} expected, {len(data)} there")
    return np.frombuffer(data, dtype=np.uint8)


def is_member(path: str) -> bool:
    return MEMBER.match(path) is not None


def read_shard_set(root: str | os.PathLike):
    """-> (classes, train entries, val entries): (name, label, size, the tar's mtime) per sample,
    in the shards' order. A missing, empty or truncated shard, an index of another format, or a
    member index that does not match its shard: one line."""
    root = str(root)
    try:
        index = json.loads(_read_text(_join(root, INDEX)))
    except (OSError, ValueError) as err:
        raise EnetError(f"--data {root}: {INDEX} unreadable ({err})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise EnetError(
            f"--data {root}: {INDEX} is not an enet shard index (format {FORMAT}); write the "
            "shards with enet data shard"
        )
    classes = tuple(index["classes"])
    splits = {}
    for split in ("train", "val"):
        entries = []
        for shard in index["splits"].get(split, []):
            entries += _members(root, shard, len(classes))
        splits[split] = entries
    return classes, splits["train"], splits["val"]


def _members(root: str, shard: dict, num_classes: int) -> list:
    tar = _join(root, shard["file"])
    try:
        size, mtime = _size(tar)
        lines = _read_text(f"{tar}.idx").splitlines()
    except OSError as err:
        raise EnetError(f"--data {root}: shard {shard['file']}: {err.strerror or err}") from None
    if size <= 0 or size != shard.get("bytes", size):
        raise EnetError(
            f"--data {root}: shard {shard['file']} holds {size} bytes, its index says "
            f"{shard.get('bytes')} (truncated or replaced?)"
        )
    if len(lines) != shard["samples"]:
        raise EnetError(
            f"--data {root}: {shard['file']}.idx lists {len(lines)} samples, shards.json "
            f"{shard['samples']}"
        )
    entries = []
    for line in lines:
        offset, length, label, source = line.split(" ", 3)
        offset, length, label = int(offset), int(length), int(label)
        if offset + length > size or not 0 <= label < num_classes:
            raise EnetError(f"--data {root}: {shard['file']}.idx does not match its shard")
        entries.append((f"{tar}::{offset}+{length}/{source}", label, length, mtime))
    return entries
