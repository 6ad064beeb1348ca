"""Download a dataset archive once, verify it, and put it in place atomically.

download to NAME.tgz.partial -> check the byte count against Content-Length and the MD5 against
the published ones -> extract into a temporary folder (tarfile's `data` filter: no absolute
paths, no links out of the folder) -> rename the dataset folder into place. Any failure removes
what it wrote and says, in one line, which address failed and how to go on without it.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from ..errors import EnetError

CHUNK = 1 << 20


def download_dataset(
    url: str, md5s: tuple[str, ...], dest: Path, *, quiet: bool = False, timeout: float = 60.0
) -> Path:
    """Fetch the .tgz at `url` and extract its dataset folder to `dest` (which must not exist).

    `md5s`: every published checksum of the archive (fastai has re-uploaded them over time);
    an empty tuple skips the checksum (for user-supplied mirrors only).
    """
    dest = Path(dest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    hint = "download it yourself and pass --data PATH (a folder with train/ and val/)"
    partial = dest.parent / f"{dest.name}.tgz.partial"
    extract_dir: Path | None = None
    try:
        digest = _fetch(url, partial, quiet=quiet, timeout=timeout, hint=hint)
        if md5s and digest not in md5s:
            raise EnetError(
                f"checksum mismatch for {url}: got md5 {digest}, expected "
                f"{' or '.join(md5s)}; {hint}"
            )
        extract_dir = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.extract-"))
        try:
            with tarfile.open(partial, "r:*") as tar:
                tar.extractall(extract_dir, filter="data")
        except (tarfile.TarError, OSError, EOFError) as err:
            raise EnetError(f"could not extract {url}: {err}; {hint}") from None
        top = _dataset_folder(extract_dir)
        if top is None:
            raise EnetError(f"{url} holds no folder with train/ and val/; {hint}")
        os.replace(top, dest)
        return dest
    finally:
        partial.unlink(missing_ok=True)
        if extract_dir is not None:
            shutil.rmtree(extract_dir, ignore_errors=True)


def _fetch(url: str, partial: Path, *, quiet: bool, timeout: float, hint: str) -> str:
    """Stream `url` into `partial`; return its MD5. Raises EnetError on any failure."""
    md5 = hashlib.md5()
    received = 0
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "enet"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with (
                open(partial, "wb") as out,
                Progress(
                    "[progress.description]{task.description}",
                    BarColumn(),
                    DownloadColumn(),
                    TransferSpeedColumn(),
                    disable=quiet,
                    transient=True,
                ) as progress,
            ):
                task = progress.add_task(f"download {url.rsplit('/', 1)[-1]}", total=total)
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    md5.update(chunk)
                    received += len(chunk)
                    progress.update(task, advance=len(chunk))
                out.flush()
                os.fsync(out.fileno())
    except urllib.error.HTTPError as err:
        raise EnetError(f"could not download {url}: HTTP {err.code} {err.reason}; {hint}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise EnetError(f"could not download {url} ({reason}); {hint}") from None
    if total is not None and received != total:
        raise EnetError(
            f"download of {url} was cut short ({received:,} of {total:,} bytes); {hint}"
        )
    return md5.hexdigest()


def _dataset_folder(extract_dir: Path) -> Path | None:
    """The folder in the archive that holds train/ and val/ (the archive root or one below)."""
    if (extract_dir / "train").is_dir() and (extract_dir / "val").is_dir():
        return extract_dir
    for child in sorted(extract_dir.iterdir()):
        if child.is_dir() and (child / "train").is_dir() and (child / "val").is_dir():
            return child
    return None
