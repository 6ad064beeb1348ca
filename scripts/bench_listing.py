"""How long enet takes to list an ImageNet-sized dataset, and the memory it takes (issue 31).

Builds (once) a tree of CLASSES class folders holding FILES training images in all, plus a
val/ with one image per class per 50 training ones: hard links of a few real JPEGs from the
shipped mini data, so the tree costs directory entries, not disk. Then, each in a fresh
process: the first listing (every file's header and tail read, the check cache written) and
the cached listing (the cache read back; files unchanged), each timed and its peak resident
memory taken (ru_maxrss). Run:

    python scripts/bench_listing.py --files 100000 --classes 1000 --root /tmp/listing-100k
    python scripts/bench_listing.py --files 1281167 --classes 1000 --root /tmp/listing-1.28m

Results go to stdout as JSON lines and a table; `--repeat N` runs the cached listing N times.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def build_tree(root: Path, files: int, classes: int) -> None:
    """ROOT/{train,val}/<class>/<i>.JPEG as hard links of mini's images (skipped if there)."""
    marker = root / ".complete"
    if marker.is_file() and marker.read_text() == f"{files} {classes}":
        return
    real = sorted((REPO / "enet" / "data" / "mini" / "train").glob("*/*.JPEG"))[:16]
    # a file takes at most 65,000 links (ext4): copies of the real images to link to
    (root / ".sources").mkdir(parents=True, exist_ok=True)
    sources = []
    for k in range(files // 50_000 + 2):
        copy = root / ".sources" / f"{k}.JPEG"
        if not copy.exists():
            copy.write_bytes(real[k % len(real)].read_bytes())
        sources.append(copy)
    per_class = files // classes
    start = time.perf_counter()
    for split, count in (("train", per_class), ("val", max(1, per_class // 50))):
        for c in range(classes):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                target = folder / f"n{c:08d}_{i}.JPEG"
                if not target.exists():
                    os.link(sources[(c * per_class + i) // 50_000], target)
    marker.write_text(f"{files} {classes}")
    print(f"built {root} in {time.perf_counter() - start:.0f} s", file=sys.stderr)


def measure(root: Path, cache: Path) -> dict:
    """One listing in a fresh process: seconds and peak resident memory."""
    code = (
        "import json, resource, sys, time\n"
        "t = time.perf_counter()\n"
        "from enet.data.datasets import index_dataset\n"
        "t_import = time.perf_counter() - t\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "t = time.perf_counter()\n"
        f"index = index_dataset({str(root)!r})\n"
        "s = time.perf_counter() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "print(json.dumps(dict(seconds=s, import_s=t_import, peak_rss_bytes=rss,\n"
        "                      listing_rss_bytes=rss - base,\n"
        "                      train=len(index.train), val=len(index.val))))\n"
    )
    env = {**os.environ, "ENET_DATA_DIR": str(cache)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    build_tree(args.root, args.files, args.classes)
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        first = measure(args.root, Path(cache))
        rows.append(dict(kind="first", **first))
        for _ in range(args.repeat):
            rows.append(dict(kind="cached", **measure(args.root, Path(cache))))
        cache_bytes = sum(p.stat().st_size for p in Path(cache).rglob("*") if p.is_file())
    for row in rows:
        row["cache_bytes"] = cache_bytes
        print(json.dumps(row))
    cached = sorted(r["seconds"] for r in rows if r["kind"] == "cached")
    first_mib = first["listing_rss_bytes"] / 2**20
    cached_mib = max(r["listing_rss_bytes"] for r in rows[1:]) / 2**20
    print(
        f"{rows[0]['train'] + rows[0]['val']:,} files: first listing {first['seconds']:.1f} s "
        f"({first_mib:.0f} MiB), cached median {cached[len(cached) // 2]:.1f} s (min "
        f"{cached[0]:.1f}, max {cached[-1]:.1f}; {cached_mib:.0f} MiB); memory over the "
        f"imports' {(first['peak_rss_bytes'] - first['listing_rss_bytes']) / 2**20:.0f} MiB; "
        f"cache {cache_bytes / 2**20:.0f} MiB",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
