#!/usr/bin/env python3
"""Make enet's shipped `mini` dataset from the full Imagenette copy.

    python scripts/make_mini.py [--src ../shared/data/imagenette-224] [--dest enet/data/mini]

All 10 classes; 24 train and 10 val images per class, picked with a fixed seed; each resized to
160x160 and re-encoded as JPEG (quality 90). Deterministic: the same source gives the same files.
"""

from __future__ import annotations

import argparse
import random
import shutil
from pathlib import Path

from PIL import Image

PER_CLASS = {"train": 24, "val": 10}
SIZE = 160

PROVENANCE = """# mini: a small real sample of Imagenette, shipped inside enet

What: {train} train and {val} val images, {per_train} and {per_val} per class, of all 10
Imagenette classes, resized to {size}x{size} and re-encoded as JPEG (quality 90). Made by
scripts/make_mini.py (seed 0) from the 224x224 Imagenette copy (every image there was squashed
to 224x224 from its ImageNet original, aspect ratio not kept). For `make demo` and fast tests;
accuracies on it mean nothing.

Source: fastai's Imagenette v2 (https://github.com/fastai/imagenette), Apache-2.0; the images come
from ImageNet, whose terms of access also apply (non-commercial research and education).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=Path("../shared/data/imagenette-224"))
    parser.add_argument("--dest", type=Path, default=Path("enet/data/mini"))
    args = parser.parse_args()
    rng = random.Random(0)
    if args.dest.exists():
        shutil.rmtree(args.dest)
    counts = {}
    for split, per_class in PER_CLASS.items():
        classes = sorted(p.name for p in (args.src / split).iterdir() if p.is_dir())
        for name in classes:
            files = sorted((args.src / split / name).iterdir())
            out = args.dest / split / name
            out.mkdir(parents=True)
            for f in rng.sample(files, per_class):
                with Image.open(f) as im:
                    im.convert("RGB").resize((SIZE, SIZE), Image.BICUBIC).save(
                        out / f"{f.stem}.JPEG", quality=90
                    )
        counts[split] = per_class * len(classes)
    (args.dest / "PROVENANCE.md").write_text(
        PROVENANCE.format(
            train=counts["train"],
            val=counts["val"],
            per_train=PER_CLASS["train"],
            per_val=PER_CLASS["val"],
            size=SIZE,
        )
    )
    print(f"wrote {counts} images to {args.dest}")


if __name__ == "__main__":
    main()
