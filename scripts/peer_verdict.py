"""Set a peer's per-image results against enet's, image by image, with compare's statistics.

Each argument is a folder holding predictions.csv.gz in enet's format (an enet run folder, or
scripts/fastai_peer.py's output); the first is the reference. Prints each folder's top-1 with
its 95% interval over the images and each later folder's difference from the first with the
paired bootstrap interval and the exact sign test's p-value (McNemar's), as
`enet compare-baselines` computes them (enet/report/verdict.py):

    python scripts/peer_verdict.py runs/imagewoof-128-5ep/xse_resnext50-s0 runs/fastai-peer-s0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from enet.report.files import read_predictions
from enet.report.verdict import paired_difference, top1_interval


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", type=Path, nargs="+")
    args = ap.parse_args()
    found = []
    for folder in args.folders:
        p = read_predictions(folder / "predictions.csv.gz")
        if p is None:
            print(f"error: {folder} has no predictions.csv.gz", file=sys.stderr)
            return 2
        found.append((folder, p))
    ref_folder, ref = found[0]
    for folder, p in found:
        if not np.array_equal(p["file"], ref["file"]):
            print(f"error: {folder} and {ref_folder} hold different images", file=sys.stderr)
            return 2
        e = top1_interval(p["correct"])
        ci = f"95% CI {e.low:.2f} to {e.high:.2f}"
        print(f"{folder}: top-1 {e.value:.2f}% ({ci}), {e.images:,} images")
    for folder, p in found[1:]:
        d, pvalue = paired_difference(ref["correct"], p["correct"])
        print(
            f"{ref_folder} minus {folder}: {d.value:+.2f} points (95% CI {d.low:.2f} to "
            f"{d.high:.2f}, p = {pvalue:.2g}; one run each, images paired)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
