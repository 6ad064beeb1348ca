"""Writing files so that nothing a user has is ever half-written.

Every writer goes through `atomic_write`: a temporary file beside the target, flushed and
fsynced, then renamed over it. Readers see the old file or the new one, never a mix.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() would give a new file; mkstemp gives 0600


def atomic_write(path: Path, write, mode: str = "w") -> None:
    """Write through `write(file)` into a temporary file beside `path`, fsync, then rename it
    into place: readers see the old file or the new one, never half of either."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text))


def write_json_atomic(path: Path, payload: object) -> None:
    atomic_write(path, lambda f: json.dump(payload, f, indent=1))


def read_json(path: Path) -> dict | None:
    """A JSON file's content; None when it is missing or not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
