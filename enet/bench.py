"""Benchmarks: `enet bench data` (loader throughput) and `enet bench model` (training step).

Both time their candidates side by side in one process, alternating pass by pass, after a
warm-up, and report the median and the spread (min, max) of the passes: on a shared, noisy
machine only figures measured together can be compared.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import torch

from .errors import EnetError


@dataclass
class Measured:
    name: str
    unit: str
    values: list[float]  # one per timed pass
    extra: dict

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def row(self) -> dict:
        return dict(
            name=self.name,
            unit=self.unit,
            median=self.median,
            min=min(self.values),
            max=max(self.values),
            passes=len(self.values),
            **self.extra,
        )


def alternate(candidates: dict[str, Callable[[], float]], passes: int) -> dict[str, list[float]]:
    """Run each candidate's timed pass in turn, `passes` rounds; -> name: [value per pass]."""
    results: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(passes):
        for name, run in candidates.items():
            results[name].append(run())
    return results


# ---------------------------------------------------------------------------------------------
# data

DATA_CANDIDATES = {
    "dali-enet": "enet dali (CPU ops + enet RandAugment)",
    "dali-dali": "enet dali (CPU ops + DALI RandAugment)",
    "torch": "enet torch (workers + enet RandAugment)",
    "baseline": "baseline (ImageFolder + torchvision transforms)",
}


def baseline_loader(root, res: int, batch_size: int, randaugment: tuple[int, int], workers: int):
    """What most users would write: torchvision ImageFolder + transforms + DataLoader."""
    import torchvision
    from torchvision import transforms as T

    from .data.common import IMAGENET_MEAN, IMAGENET_STD

    ops = [T.RandomResizedCrop(res), T.RandomHorizontalFlip()]
    if randaugment[0] > 0:
        ops.append(T.RandAugment(*randaugment))
    ops += [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    dataset = torchvision.datasets.ImageFolder(str(root / "train"), T.Compose(ops))
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True
    )


def _make_loader(kind: str, root, res: int, batch_size: int, randaugment, workers: int):
    from .data import build_loaders

    kw = dict(batch_size=batch_size, workers=workers, randaugment=tuple(randaugment))
    if kind == "dali-enet":
        return build_loaders(root, res, loader="dali", **kw)[0]
    if kind == "dali-dali":
        return build_loaders(root, res, loader="dali", randaugment_impl="dali", **kw)[0]
    if kind == "torch":
        return build_loaders(root, res, loader="torch", **kw)[0]
    return baseline_loader(root, res, batch_size, tuple(randaugment), workers)


def _endless(loader) -> Iterator:
    while True:
        yield from loader


def _data_pass(
    conn,
    kind: str,
    root,
    res: int,
    batch_size: int,
    randaugment,
    workers: int,
    images: int,
    warmup_batches: int,
) -> None:
    """One timed pass in a process of its own; sends img/s (or an error text) through `conn`."""
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)  # DALI's own aliases
    try:
        batches = _endless(_make_loader(kind, root, res, batch_size, randaugment, workers))
        for _ in range(warmup_batches):  # worker start-up, pipeline build, first decodes
            next(batches)
        seen = 0
        start = time.perf_counter()
        while seen < images:
            x, _ = next(batches)
            seen += x.shape[0]
        conn.send(seen / (time.perf_counter() - start))
    except BaseException as err:  # noqa: BLE001 (reported by the parent)
        conn.send(f"{type(err).__name__}: {err}")
    conn.close()
    # Leave at once: loader workers see their parent gone and stop by themselves. (Shutting
    # torchvision's baseline workers down mid-prefetch sometimes aborts them, noisily.)
    os._exit(0)


def _isolated(kind: str, *args) -> Callable[[], float]:
    """A timed pass in a fresh process, so that nothing one candidate leaves running
    (workers refilling their prefetch queues, pipeline threads) slows down the next."""
    import multiprocessing as mp

    def run() -> float:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_data_pass, args=(child, kind, *args))
        proc.start()
        child.close()
        result = parent.recv() if parent.poll(900) else "no result within 15 minutes"
        proc.join(60)
        time.sleep(1.0)  # let the pass's worker processes finish exiting
        if isinstance(result, str):
            raise EnetError(f"bench pass of {kind} failed: {result}")
        return result

    return run


def bench_data(
    data: str,
    *,
    res: int = 128,
    batch_size: int = 64,
    images: int = 2048,
    passes: int = 5,
    warmup_batches: int = 4,
    workers: int = 2,
    randaugment: tuple[int, int] = (2, 9),
    loaders: tuple[str, ...] | None = None,
) -> list[dict]:
    """Images per second of enet's loaders and the baseline on DATA's train split.

    Each pass of each candidate runs in a fresh process (round after round, alternating);
    a pass times `images` images after `warmup_batches` batches.
    """
    from .data import dali_status
    from .data.datasets import resolve_data

    root = resolve_data(data)
    kinds = [k for k in DATA_CANDIDATES if not loaders or k in loaders]
    if dali_status() is not None:
        kinds = [k for k in kinds if not k.startswith("dali")]
    if randaugment[0] == 0:
        kinds = [k for k in kinds if k != "dali-dali"]
    if not kinds:
        raise EnetError("no loader to benchmark")
    args = (root, res, batch_size, tuple(randaugment), workers, images, warmup_batches)
    results = alternate({DATA_CANDIDATES[k]: _isolated(k, *args) for k in kinds}, passes)
    base = results.get(DATA_CANDIDATES["baseline"])
    rows = []
    for name, values in results.items():
        row = Measured(
            name,
            "img/s",
            values,
            dict(
                res=res,
                batch_size=batch_size,
                randaugment=list(randaugment),
                images=images,
                workers=workers,
                data=str(root),
            ),
        ).row()
        if base:
            row["vs_baseline"] = row["median"] / statistics.median(base)
        rows.append(row)
    return rows


__all__ = ["Measured", "alternate", "bench_data", "asdict"]
