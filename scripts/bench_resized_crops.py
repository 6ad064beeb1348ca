"""The torch GPU path's crops: image by image (as before) against `resized_crops` (equal boxes
resized together), side by side on one device, median of alternating repeats. The default is the
`crop: resize` case on a dataset stored at one size (every box the whole 224 px image).

    python scripts/bench_resized_crops.py [--device cpu] [--batch 64] [--res 128] [--threads 1]
        [--out FILE.json]   (rows of name, median and unit, as `enet bench` writes them)
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torchvision.transforms.v2.functional as TF

from enet.bench import Measured, alternate
from enet.data.torch_loader import resized_crops


def per_image(images, boxes, flips, res):
    out = []
    for image, (top, left, h, w), flip in zip(images, boxes, flips, strict=True):
        image = TF.resized_crop(image, top, left, h, w, [res, res], antialias=True)
        out.append(image.flip(-1) if flip else image)
    return torch.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--res", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    images = [
        torch.randint(0, 256, (3, 224, 224), generator=gen, dtype=torch.uint8).to(device)
        for _ in range(args.batch)
    ]
    boxes = [(0, 0, 224, 224)] * args.batch
    flips = [bool(i % 2) for i in range(args.batch)]
    ways = {"per-image": per_image, "grouped": resized_crops}
    assert torch.equal(*(f(images, boxes, flips, args.res) for f in ways.values()))

    def timed(f):
        def run() -> float:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            f(images, boxes, flips, args.res)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            return (time.perf_counter() - start) * 1e6

        return run

    times = alternate({name: timed(f) for name, f in ways.items()}, args.repeats)
    rows = [Measured(name, "us", ts, {}).row() for name, ts in times.items()]
    for r in rows:
        print(
            f"{r['name']:9s} median {r['median'] / 1000:.2f} ms  min {r['min'] / 1000:.2f}  "
            f"max {r['max'] / 1000:.2f}"
        )
    print(f"grouped / per-image: {rows[1]['median'] / rows[0]['median']:.2f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
