"""Finding the files that would stop a run: a quick header check and a full decode check.

DALI aborts the whole pipeline on one undecodable file and cannot skip it, so enet removes bad
files from the file list before any loader sees it. Two levels:

- `quick_problem(path)`: reads a file's first and last bytes: empty, not an image, a JPEG or PNG
  cut short. Cheap enough to run on every listing; its results are cached by file signature.
- `decode_problem(path)`: decodes the whole file with Pillow (`enet data check`), which also finds
  corruption inside a file. Its findings are stored in the cache folder (never in the dataset)
  and every later listing of that dataset skips them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..fileio import write_json_atomic

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PNG_END = b"IEND\xaeB`\x82"


def cache_dir() -> Path:
    """Where enet keeps downloads and check results: $ENET_DATA_DIR, default ~/.cache/enet."""
    return Path(os.environ.get("ENET_DATA_DIR") or Path.home() / ".cache" / "enet")


def sniff_format(head: bytes) -> str | None:
    if head.startswith(JPEG_MAGIC):
        return "jpeg"
    if head.startswith(PNG_MAGIC):
        return "png"
    return None


def quick_problem(path: str | os.PathLike, size: int | None = None) -> str | None:
    """A reason this file cannot be an intact JPEG or PNG, from its first and last bytes."""
    try:
        size = os.path.getsize(path) if size is None else size
        if size == 0:
            return "empty file"
        with open(path, "rb") as f:
            head = f.read(8)
            f.seek(max(0, size - 64))
            tail = f.read(64)
    except OSError as err:
        return f"unreadable: {err.strerror or err}"
    kind = sniff_format(head)
    if kind is None:
        return "not a JPEG or PNG image"
    # Trailing zero padding after the end marker is harmless and common.
    tail = tail.rstrip(b"\x00")
    if kind == "jpeg" and not tail.endswith(b"\xff\xd9"):
        return "truncated JPEG (no end-of-image marker)"
    if kind == "png" and not tail.endswith(PNG_END):
        return "truncated PNG (no IEND chunk)"
    return None


@dataclass(frozen=True)
class Finding:
    path: str
    problem: str | None  # None: decodes fine
    note: str | None = None  # e.g. a PNG named .JPEG: loads, but worth knowing


def decode_problem(path: str) -> Finding:
    """Decode the whole file with Pillow, as a loader would; never raises."""
    from PIL import Image, UnidentifiedImageError

    quick = quick_problem(path)
    if quick in ("empty file",) or (quick or "").startswith("unreadable"):
        return Finding(path, quick)
    try:
        with Image.open(path) as im:
            fmt = im.format
            im.convert("RGB").load()
    except UnidentifiedImageError:
        return Finding(path, "not an image")
    except (OSError, SyntaxError, ValueError) as err:
        return Finding(path, f"truncated or corrupt: {err}")
    if quick is not None:
        # Pillow tolerates what DALI may not (e.g. a missing end marker): still unsafe.
        return Finding(path, quick)
    note = None
    ext = Path(path).suffix.lower()
    expected = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}.get(ext)
    if expected and fmt and fmt != expected:
        note = f"{fmt} content with a {Path(path).suffix} name (loads fine)"
    return Finding(path, None, note)


# ---------------------------------------------------------------------------------------------
# cached results, kept per dataset root in the cache folder


def _cache_file(root: Path, kind: str) -> Path:
    root = root.resolve()
    key = hashlib.sha1(str(root).encode()).hexdigest()[:16]
    return cache_dir() / "checks" / f"{root.name}-{key}.{kind}.json"


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


FileStat = tuple[str, int, int]  # path, size in bytes, mtime in ns


def _digest(files: Iterable[FileStat]) -> str:
    h = hashlib.sha256()
    for path, size, mtime in files:
        h.update(f"{path}\0{size}\0{mtime}\n".encode())
    return h.hexdigest()


def quick_check_cached(root: Path, files: Callable[[], Iterable[FileStat]]) -> dict[str, str]:
    """Quick problems of the files `files()` yields (path -> reason; it is called once per
    pass, so that no copy of an ImageNet-sized list is held), reusing results for unchanged
    files.

    Two cache files: a small one with a digest of every (path, size, mtime) and the problems
    found, read first; when the digest matches (nothing changed: the usual case), that is all,
    so an ImageNet-sized listing does not load a per-file table (scripts/bench_listing.py);
    otherwise the per-file table tells which files need their bytes read again."""
    summary_path, table_path = _cache_file(root, "quick"), _cache_file(root, "quick-files")
    digest = _digest(files())
    summary = _read_json(summary_path)
    if summary.get("digest") == digest:
        return dict(summary.get("problems", {}))
    cached = _read_json(table_path).get("files", {})
    results: dict[str, list] = {}
    problems: dict[str, str] = {}
    for path, size, mtime in files():
        entry = cached.get(path)
        if entry is not None and entry[0] == size and entry[1] == mtime:
            reason = entry[2]
        else:
            reason = quick_problem(path, size)
        results[path] = [size, mtime, reason]
        if reason:
            problems[path] = reason
    del cached
    try:
        write_json_atomic(table_path, {"root": str(root.resolve()), "files": results})
        write_json_atomic(
            summary_path, {"root": str(root.resolve()), "digest": digest, "problems": problems}
        )
    except OSError:
        pass  # a read-only cache only costs the re-check next time
    return problems


def save_decode_findings(root: Path, findings: list[Finding]) -> Path:
    """Store `enet data check` results (problems and notes) in the cache folder."""
    entries = []
    for f in findings:
        if f.problem is None and f.note is None:
            continue
        st = os.stat(f.path) if os.path.exists(f.path) else None
        entries.append(
            dict(
                path=f.path,
                size=st.st_size if st else -1,
                mtime_ns=st.st_mtime_ns if st else -1,
                problem=f.problem,
                note=f.note,
            )
        )
    path = _cache_file(root, "decode")
    write_json_atomic(path, {"root": str(root.resolve()), "files": entries})
    return path


def _size_and_time(file: str) -> tuple[int, int]:
    """A file's size and mtime as the listing records them (a shard member: its size, its
    tar's time); -1, -1 when it is gone."""
    from .shards import MEMBER  # (no cycle: shards imports nothing of enet.data)

    m = MEMBER.match(file)
    try:
        st = os.stat(m.group(1) if m else file)
    except OSError:
        return -1, -1
    return (int(m.group(3)) if m else st.st_size), st.st_mtime_ns


def record_decode_failures(root: Path, failures: dict[str, str]) -> None:
    """Files that failed to decode during a run, merged into the decode cache (as `enet data
    check`'s findings are kept), so that the next run's listing leaves them out. Ranks of one
    run may record at once: the merge holds a lock on the cache folder."""
    import fcntl

    path = _cache_file(root, "decode")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path.parent / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = _read_json(path)
            entries = [e for e in data.get("files", []) if e.get("path") not in failures]
            for file, reason in failures.items():
                size, mtime = _size_and_time(file)
                entries.append(
                    dict(
                        path=file,
                        size=size,
                        mtime_ns=mtime,
                        problem=f"failed to decode during a run: {reason}",
                        note=None,
                    )
                )
            write_json_atomic(path, {"root": str(root.resolve()), "files": entries})
    except OSError:
        pass  # a read-only cache: the next run meets the file again, and skips it again


def known_decode_problems(root: Path, files: Iterable[FileStat]) -> dict[str, str]:
    """Problems found by an earlier `enet data check` or run, for files unchanged since then."""
    found = {
        e["path"]: e
        for e in _read_json(_cache_file(root, "decode")).get("files", [])
        if e.get("problem")
    }
    if not found:
        return {}
    out = {}
    for path, size, mtime in files:
        e = found.get(path)
        if e is not None and (e["size"], e["mtime_ns"]) == (size, mtime):
            out[path] = e["problem"]
    return out
