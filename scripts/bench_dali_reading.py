"""DALI's training loader with its files read serially (the CPU default) or by DALI's worker
processes (parallel mode, the CUDA default), side by side: seconds for a fixed number of
batches, median of alternating repeats.

    python scripts/bench_dali_reading.py [DATA] [--res 64] [--batch 16] [--batches 20] [--repeats 9]
"""

from __future__ import annotations

import argparse
import time

from enet.bench import Measured, alternate, endless
from enet.data import build_loaders


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", nargs="?", default="../shared/data/imagenette-224")
    parser.add_argument("--res", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    def timed(parallel: bool):
        train, _, _ = build_loaders(
            args.data, args.res, args.batch, loader="dali", workers=args.workers, seed=0
        )
        train.parallel_read, train.sizes.total = parallel, 10**9
        batches = endless(train)

        def run() -> float:
            start = time.perf_counter()
            for _ in range(args.batches):
                next(batches)
            return time.perf_counter() - start

        run()  # build, worker start, first batches
        return run

    times = alternate({"serial": timed(False), "parallel": timed(True)}, args.repeats)
    rows = {name: Measured(name, "s", ts, {}) for name, ts in times.items()}
    for row in rows.values():
        r = row.row()
        print(f"{r['name']:8s} median {r['median']:.4f} s  min {r['min']:.4f}  max {r['max']:.4f}")
    print(f"parallel / serial: {rows['parallel'].median / rows['serial'].median:.2f}")


if __name__ == "__main__":
    main()
