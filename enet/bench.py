"""Benchmarks: `enet bench data` (loader throughput) and `enet bench model` (training step).

Both time their candidates side by side in one process, alternating pass by pass, after a
warm-up, and report the median and the spread (min, max) of the passes: on a shared, noisy
machine only figures measured together can be compared.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from .config import OptimConfig
from .data import build_loaders, dali_status
from .data.common import IMAGENET_MEAN, IMAGENET_STD
from .data.datasets import resolve_data
from .errors import EnetError
from .models import create_model, get_model_info, num_params
from .runtime import ENV, retain_freed_memory
from .settings import resolve_precision, use_fast_cuda_kernels
from .train.distributed import resolve_device
from .train.loop import loss_of
from .train.optim import build_optimizer


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
    "dali-enet": "enet dali (DALI ops + enet RandAugment)",
    "dali-dali": "enet dali (DALI ops + DALI RandAugment)",
    "torch": "enet torch (workers + enet RandAugment)",
    "baseline": "baseline (ImageFolder + torchvision transforms)",
}


def baseline_loader(root, res: int, batch_size: int, randaugment: tuple[int, int], workers: int):
    """What most users would write: torchvision ImageFolder + transforms + DataLoader."""
    import torchvision
    from torchvision import transforms as T

    ops = [T.RandomResizedCrop(res), T.RandomHorizontalFlip()]
    if randaugment[0] > 0:
        ops.append(T.RandAugment(*randaugment))
    ops += [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    dataset = torchvision.datasets.ImageFolder(str(root / "train"), T.Compose(ops))
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        persistent_workers=workers > 0,  # a small dataset's epochs must not restart them
    )


def _make_loader(
    kind: str, root, res: int, batch_size: int, randaugment, workers: int, device: str = "cpu"
):

    kw = dict(batch_size=batch_size, workers=workers, randaugment=tuple(randaugment), device=device)
    if (
        kind == "dali-enet"
    ):  # enet's RandAugment after DALI, on any device (auto picks DALI's on CUDA)
        return build_loaders(root, res, loader="dali", randaugment_impl="enet", **kw)[0]
    if kind == "dali-dali":
        return build_loaders(root, res, loader="dali", randaugment_impl="dali", **kw)[0]
    if kind == "torch":
        return build_loaders(root, res, loader="torch", **kw)[0]
    return baseline_loader(root, res, batch_size, tuple(randaugment), workers)


def endless(loader) -> Iterator:
    """A loader's batches, epoch after epoch, for ever."""
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
    device: str,
) -> None:
    """One timed pass in a process of its own; sends img/s (or an error text) through `conn`."""
    try:
        batches = endless(_make_loader(kind, root, res, batch_size, randaugment, workers, device))
        for _ in range(warmup_batches):  # worker start-up, pipeline build, first decodes
            next(batches)
        seen = 0
        start = time.perf_counter()
        while seen < images:
            x, _ = next(batches)
            x = x.to(device, non_blocking=True)  # counted when it is where training needs it
            seen += x.shape[0]
        if device.startswith("cuda"):
            torch.cuda.synchronize()
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
    device: str = "cpu",
) -> list[dict]:
    """Images per second of enet's loaders and the baseline on DATA's train split.

    Each pass of each candidate runs in a fresh process (round after round, alternating);
    a pass times `images` images after `warmup_batches` batches.
    """

    root = resolve_data(data)
    kinds = [k for k in DATA_CANDIDATES if not loaders or k in loaders]
    if dali_status() is not None:
        kinds = [k for k in kinds if not k.startswith("dali")]
    if randaugment[0] == 0:
        kinds = [k for k in kinds if k != "dali-dali"]
    if not kinds:
        raise EnetError("no loader to benchmark")
    args = (root, res, batch_size, tuple(randaugment), workers, images, warmup_batches, device)
    label = dict(DATA_CANDIDATES)
    if randaugment[0] == 0:  # the labels name no RandAugment that is not run
        label = {k: v.replace(" + enet RandAugment", "") for k, v in label.items()}
    # Each pass leaves with os._exit, so multiprocessing's resource tracker (started with the
    # first pass, inheriting this variable) finds their loaders' semaphores and removes them,
    # warning about each "leak" at shutdown; the removal is the cleanup, the warning noise.
    quiet = "ignore::UserWarning:multiprocessing.resource_tracker"
    if quiet not in os.environ.get("PYTHONWARNINGS", ""):
        os.environ["PYTHONWARNINGS"] = ",".join(
            w for w in (os.environ.get("PYTHONWARNINGS"), quiet) if w
        )
    results = alternate({label[k]: _isolated(k, *args) for k in kinds}, passes)
    base = results.get(label["baseline"])
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
                device=device,
            ),
        ).row()
        if base:
            row["vs_baseline"] = row["median"] / statistics.median(base)
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# model

TORCHVISION_PEERS = ("efficientnet_b0", "resnet50")


def _build(name: str, source: str, num_classes: int):
    if source == "enet":
        return create_model(name, num_classes)
    import torchvision

    return getattr(torchvision.models, name)(num_classes=num_classes)


# The benchmark's optimiser, the same for enet's models and their peers, so that a ratio
# measures the model and its runtime, not the optimiser (the recipes' Ranger costs more per step)
BENCH_OPTIM = OptimConfig(name="sgd", lr=0.01, momentum=0.9, weight_decay=0.0)


class _Candidate:
    """One model's training step through `enet train`'s own pieces: its loss (`loop.loss_of`:
    autocast at the given precision, forward, label-smoothed cross-entropy), its optimiser
    builder (`BENCH_OPTIM`: SGD with Nesterov momentum) and the GradScaler (active for fp16)."""

    def __init__(
        self,
        label: str,
        model,
        device,
        batch_size: int,
        res: int,
        precision: str,
        channels_last: bool,
        compile_model: bool,
        num_classes: int,
    ) -> None:

        self.label = label
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(device, memory_format=fmt).train()
        self.params = num_params(self.model)
        self.forward = torch.compile(self.model) if compile_model else self.model
        self.opt = build_optimizer(BENCH_OPTIM, self.model)
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.precision = precision
        self.device = device
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(batch_size, 3, res, res, generator=gen).to(device, memory_format=fmt)
        self.y = torch.randint(0, num_classes, (batch_size,), generator=gen).to(device)

    def loss(self):
        return loss_of(self.forward, self.x, self.y, self.precision, BENCH_OPTIM.label_smoothing)

    def step(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(self.loss()).backward()
        self.scaler.step(self.opt)
        self.scaler.update()

    def timed_step(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        self.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return self.x.shape[0] / (time.perf_counter() - start)

    def memory(self) -> dict:
        """CUDA: the allocator's peak over one step. CPU: the bytes autograd keeps for the
        backward pass and those of weights, gradients and momentum (the worker adds the
        process's measured peak resident memory)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.step()
            torch.cuda.synchronize(self.device)
            return {"peak_memory_mb": torch.cuda.max_memory_allocated(self.device) / 2**20}
        saved = [0]

        def pack(t):
            saved[0] += t.numel() * t.element_size()
            return t

        self.opt.zero_grad(set_to_none=True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = self.loss()
        loss.backward()
        state = 3 * sum(p.numel() * p.element_size() for p in self.model.parameters())
        return {"activation_mb": saved[0] / 2**20, "state_mb": state / 2**20}


def _model_worker(conn, spec: dict, retain: bool, warmup: int) -> None:
    """One candidate in a process of its own: build, warm up, report memory, then a timed step
    per request until told to stop; last, the process's peak resident memory."""

    try:
        if retain:
            retain_freed_memory()
        torch.manual_seed(0)
        use_fast_cuda_kernels(torch.device(spec["device"]))  # as enet train does
        c = _Candidate(
            spec["label"],
            _build(spec["name"], spec["source"], spec["num_classes"]),
            torch.device(spec["device"]),
            spec["batch_size"],
            spec["res"],
            spec["precision"],
            spec["channels_last"],
            spec["compile"],
            spec["num_classes"],
        )
        for _ in range(warmup):  # compiles, oneDNN/cuDNN algorithm choice, allocator warm-up
            c.step()
        conn.send(dict(params=c.params, **c.memory()))
        while conn.recv() == "step":
            conn.send(c.timed_step())
        conn.send(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KiB on Linux
    except BaseException as err:  # noqa: BLE001 (reported by the parent)
        conn.send(f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err) else ''}")
    conn.close()


class _Worker:
    """The parent's handle on a `_model_worker` process."""

    def __init__(self, spec: dict, retain: bool, warmup: int) -> None:

        self.label, self.retain = spec["label"], retain
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        # the child's malloc reads these when it starts: only enet's candidates get them
        saved = {k: os.environ.pop(k) for k in ENV if k in os.environ}
        try:
            self.proc = ctx.Process(target=_model_worker, args=(child, spec, retain, warmup))
            self.proc.start()
        finally:
            os.environ.update(saved)
        child.close()
        self.info = self._get()

    def _get(self, timeout: float = 1800):
        result = self.conn.recv() if self.conn.poll(timeout) else "no answer within 30 minutes"
        if isinstance(result, str):
            self.close()
            raise EnetError(f"bench of {self.label} failed: {result}")
        return result

    def step(self) -> float:
        self.conn.send("step")
        return self._get()

    def finish(self) -> float:
        self.conn.send("stop")
        rss = self._get()
        self.close()
        return rss

    def close(self, wait: float = 30) -> None:
        """Let the process end within `wait` seconds, else kill it."""
        self.proc.join(wait)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


def _relate_to_peers(rows: list[dict]) -> None:
    """Each enet row gains its ratios to torchvision's model of the same name at the same
    precision, and a bf16 row its speed-up over the same model's fp32 row (CPU)."""
    for row in rows:
        if row["source"] != "enet":
            continue
        same = [r for r in rows if r["model"] == row["model"] and r is not row]
        peer = next(
            (
                r
                for r in same
                if r["source"] == "torchvision" and r["precision"] == row["precision"]
            ),
            None,
        )
        if peer:
            row["vs_torchvision"] = row["median"] / peer["median"]
            row["memory_vs_torchvision"] = row["peak_memory_mb"] / peer["peak_memory_mb"]
        fp32 = next((r for r in same if r["source"] == "enet" and r["precision"] == "fp32"), None)
        if row["precision"] != "fp32" and fp32:
            row["vs_fp32"] = row["median"] / fp32["median"]


def _precisions(models, peers, precision: str, dev) -> list[tuple[str, str, str]]:
    """(source, model, precision) per candidate: enet's models at their resolved precision
    (and in fp32 beside bf16 on the CPU), torchvision's at the first model's."""
    runs = []
    for name in models:
        chosen = resolve_precision(precision, dev, name)
        runs.append(("enet", name, chosen))
        if dev.type == "cpu" and chosen == "bf16":
            runs.append(("enet", name, "fp32"))
    peer_precision = resolve_precision(precision, dev, models[0] if models else None)
    return runs + [("torchvision", name, peer_precision) for name in peers]


def bench_model(
    models: tuple[str, ...] = ("efficientnet_b0", "xresnet50"),
    peers: tuple[str, ...] = TORCHVISION_PEERS,
    *,
    batch_size: int = 32,
    res: int = 128,
    precision: str = "fp32",
    channels_last: bool = True,
    compile_model: bool = False,
    device: str = "auto",
    steps: int = 7,
    warmup: int = 5,
    num_classes: int = 1000,
    same_runtime: bool = False,
) -> list[dict]:
    """Training-step images/s and memory of enet's models and torchvision's, side by side.

    Every model runs in a process of its own; one process computes at a time, the timed steps
    alternating between them. enet's models run as `enet train` runs them (on the CPU with
    freed memory retained, enet/runtime.py); torchvision's as a plain PyTorch script would,
    unless `same_runtime` gives them enet's setting too (which compares the models alone).
    `auto` resolves per model as `enet train` would; bf16 on the CPU also runs each enet model
    in fp32, alternating with the rest, for the speed-up side by side (`vs_fp32`).
    """

    dev = resolve_device(device)
    if steps < 5:
        raise EnetError("--steps must be at least 5 (a median needs them)")
    for name in models:
        get_model_info(name)  # a clear error for an unknown name
    runs = _precisions(models, peers, precision, dev)
    several = len({p for _, _, p in runs}) > 1
    specs = [
        dict(
            label=f"{source} {name}" + (f" {chosen}" if several else ""),
            name=name,
            source=source,
            device=str(dev),
            batch_size=batch_size,
            res=res,
            precision=chosen,
            channels_last=channels_last,
            compile=compile_model,
            num_classes=num_classes,
        )
        for source, name, chosen in runs
    ]
    workers: list[_Worker] = []
    try:
        for spec in specs:  # one at a time: a warm-up never competes with another
            retain = dev.type == "cpu" and (spec["source"] == "enet" or same_runtime)
            workers.append(_Worker(spec, retain, warmup))
        results = alternate({w.label: w.step for w in workers}, steps)
        rss = {w.label: w.finish() for w in workers}
    finally:
        for w in workers:  # after an error, the others are still waiting for orders
            w.close(wait=0)
    rows = []
    for w, spec in zip(workers, specs, strict=True):  # built in the specs' order
        extra = dict(
            source=spec["source"],
            model=spec["name"],
            batch_size=batch_size,
            res=res,
            precision=spec["precision"],
            channels_last=channels_last,
            compiled=compile_model,
            device=str(dev),
            retained_cpu_memory=w.retain,
            **w.info,
        )
        if dev.type == "cpu":
            extra["peak_memory_mb"] = rss[w.label]
        rows.append(Measured(w.label, "img/s", results[w.label], extra).row())
    _relate_to_peers(rows)
    return rows


__all__ = ["Measured", "alternate", "bench_data", "bench_model"]
