"""DALI's training loader with its files read serially (the CPU default) or by DALI's worker
processes (parallel mode, the CUDA default), side by side: seconds for a fixed number of
batches, median of alternating repeats.

    python scripts/bench_dali_reading.py [DATA] [--res 64] [--batch 16] [--batches 20] [--repeats 9]
"""

from __future__ import annotations

import argparse
import statistics
import time

from enet.data import build_loaders


def seconds(batches, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        next(batches)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", nargs="?", default="../shared/data/imagenette-224")
    parser.add_argument("--res", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    streams = {}
    for parallel in (False, True):
        train, _, _ = build_loaders(
            args.data, args.res, args.batch, loader="dali", workers=args.workers, seed=0
        )
        train.parallel_read = parallel
        train.sizes.total = 10**9
        streams[parallel] = (b for _ in iter(int, 1) for b in train)  # endless
        seconds(streams[parallel], 3)  # build, worker start, first batches
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.repeats):
        for parallel, batches in streams.items():
            times[parallel].append(seconds(batches, args.batches))
    for parallel, ts in times.items():
        name = "parallel" if parallel else "serial"
        print(
            f"{name:8s} median {statistics.median(ts):.4f} s  min {min(ts):.4f}  max {max(ts):.4f}"
        )
    ratio = statistics.median(times[True]) / statistics.median(times[False])
    print(f"parallel / serial: {ratio:.2f}")


if __name__ == "__main__":
    main()
