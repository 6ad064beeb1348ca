"""Data: datasets and the two loader backends behind one entry point, `build_loaders`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..choices import CROPS, LOADERS
from ..errors import EnetError
from .common import IMAGENET_MEAN, IMAGENET_STD, Normalizer, Resolutions, TrainPlan
from .datasets import DatasetIndex, index_dataset, resolve_data


def dali_status() -> str | None:
    """None when DALI imports, else why not (one line)."""
    try:
        import nvidia.dali  # noqa: F401
    except Exception as err:  # noqa: BLE001 (a broken install raises anything)
        return f"DALI does not import ({type(err).__name__}: {err})"
    return None


def default_workers() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0))))


def build_loaders(
    data: str | os.PathLike | DatasetIndex,
    res: int,
    batch_size: int,
    *,
    eval_res: int | None = None,
    loader: str = "auto",
    device: str | torch.device = "cpu",
    randaugment: tuple[int, int] = (2, 9),
    min_scale: float = 0.08,
    crop: str = "random-resized",
    crop_pct: float = 0.875,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
    workers: int | None = None,
    channels_last: bool = False,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
    eval_batch_size: int | None = None,
    randaugment_impl: str = "auto",
    min_res: int = 0,
    ramp: tuple[float, float] = (0.25, 0.75),
    val_pct: float | None = None,
    split_seed: int = 0,
    left_out: tuple[str, ...] | None = None,
):
    """-> (train_loader, val_loader, classes).

    Each loader is re-iterable (a pass per `iter()`), has `len()` in batches, yields (float images
    less `mean`, over `std`: RGB, 0-1 scale, a model's from `resolve_normalization`; int64 labels)
    on `device`; the train loader has a position (`state_dict()`) for exact resume. Both carry
    `.backend` ("dali" or "torch"), `.backend_note` (why it was chosen) and `.skipped` (bad files
    left out). `crop`: "random-resized" (area from `min_scale` to 1, aspect 3/4 to 4/3) "resize"
    (the whole image squashed to res x res) or "square" (the largest square at a random place,
    resized: fastai's `Resize`, ResizeMethod.Crop). `randaugment=(n, m)`: n operations at magnitude
    bin m of 31 (torchvision's convention); n = 0 turns it off. `randaugment_impl` (DALI backend):
    "auto" runs DALI's own RandAugment on the GPU and enet's batched one on the CPU; "dali" or
    "enet" force one. Progressive resizing: `min_res` > 0 trains at `min_res` until the fraction
    ramp[0] of the run, rising to `res` by ramp[1] (common.Resolutions; the training loop sets the
    run's length on `train.sizes`). Data without a validation split needs `val_pct`: a stratified
    split seeded by `split_seed` (data/labels.py). `left_out`: the files to leave out, unchecked (a
    resumed run's `train.listing_skipped`).
    """
    _check_train_args(min_scale, crop, randaugment, randaugment_impl)
    sizes = _resolutions(res, min_res, ramp)
    s = _prepare(
        data, loader, res, batch_size, device, workers, crop_pct, val_pct, split_seed, left_out
    )
    plan = TrainPlan(len(s.index.train), batch_size, seed, rank, world_size)
    if len(plan) == 0:
        raise EnetError(
            f"batch size {batch_size} is larger than the {plan.per_rank} training images each of "
            f"{world_size} rank(s) gets; lower --batch-size"
        )
    normalize = _normalizer(s.device, channels_last, mean, std)
    options = dict(
        min_scale=min_scale,
        crop=crop,
        randaugment=tuple(randaugment),
        device=s.device,
        normalize=normalize,
        workers=s.workers,
    )
    if s.backend == "dali":
        from .dali import DaliTrainLoader

        train = DaliTrainLoader(
            s.index.train, plan, sizes, randaugment_impl=randaugment_impl, **options
        )
    else:
        from .torch_loader import TorchTrainLoader

        train = TorchTrainLoader(s.index.train, plan, sizes, **options)
    train.backend_note, train.skipped = s.note, len(s.index.skipped)
    train.failures.root, train.listing_skipped = s.index.root, tuple(sorted(s.index.skipped))
    val = _eval_loader(
        s, eval_res or res, eval_batch_size or batch_size, crop_pct, rank, world_size, normalize
    )
    return train, val, list(s.index.classes)


def build_eval_loader(
    data: str | os.PathLike | DatasetIndex,
    res: int,
    batch_size: int,
    *,
    loader: str = "auto",
    device: str | torch.device = "cpu",
    crop_pct: float = 0.875,
    rank: int = 0,
    world_size: int = 1,
    workers: int | None = None,
    channels_last: bool = False,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
    val_pct: float | None = None,
    split_seed: int = 0,
):
    """-> (val_loader, classes): the evaluation half of `build_loaders`, alone."""
    s = _prepare(data, loader, res, batch_size, device, workers, crop_pct, val_pct, split_seed)
    normalize = _normalizer(s.device, channels_last, mean, std)
    val = _eval_loader(s, res, batch_size, crop_pct, rank, world_size, normalize)
    return val, list(s.index.classes)


@dataclass(frozen=True)
class _Setup:
    """What both builders settle first: the data's index, the device, workers, the backend."""

    index: DatasetIndex
    device: torch.device
    workers: int
    backend: str
    note: str


def _prepare(
    data, loader, res, batch_size, device, workers, crop_pct, val_pct, split_seed, left_out=None
) -> _Setup:
    if loader not in LOADERS:
        raise EnetError(f"--loader {loader!r}: choose one of {', '.join(LOADERS)}")
    for name, value in (("res", res), ("batch_size", batch_size)):
        if value < 1:
            raise EnetError(f"{name} must be >= 1, got {value}")
    if not 0.0 < crop_pct <= 1.0:
        raise EnetError(f"crop_pct must be in (0, 1], got {crop_pct}")
    device = torch.device(device)
    index = (
        data
        if isinstance(data, DatasetIndex)
        else index_dataset(
            resolve_data(data), val_pct=val_pct, split_seed=split_seed, left_out=left_out
        )
    )
    backend, note = _choose(loader, device)
    workers = default_workers() if workers is None else workers
    return _Setup(index, device, workers, backend, note)


def _check_train_args(min_scale: float, crop: str, randaugment, randaugment_impl: str) -> None:
    if not 0.0 < min_scale <= 1.0:
        raise EnetError(f"min_scale must be in (0, 1], got {min_scale}")
    if crop not in CROPS:
        raise EnetError(f"crop must be {' or '.join(CROPS)}, got {crop!r}")
    n, m = randaugment
    if n < 0 or not 0 <= m <= 30:
        raise EnetError(f"randaugment (n, m) needs n >= 0 and 0 <= m <= 30, got {randaugment}")
    if randaugment_impl not in ("auto", "dali", "enet"):
        raise EnetError(f"randaugment_impl must be auto, dali or enet, got {randaugment_impl!r}")


def _resolutions(res: int, min_res: int, ramp: tuple[float, float]) -> Resolutions:
    if min_res and not 16 <= min_res < res:
        raise EnetError(f"min_res must be 0 (off) or 16 .. res-1 (res {res}), got {min_res}")
    start, end = ramp
    if not 0.0 <= start <= end <= 1.0:
        raise EnetError(f"the resizing ramp needs 0 <= ramp_start <= ramp_end <= 1, got {ramp}")
    return Resolutions(res, min_res, start, end)


def _normalizer(device, channels_last: bool, mean, std) -> Normalizer:
    """The one Normalizer a builder's loaders share; mean and std: three values each (RGB, 0-1
    scale), std above zero."""
    checked = []
    for name, values in (("mean", mean), ("std", std)):
        values = tuple(float(v) for v in values)
        if len(values) != 3 or (name == "std" and min(values) <= 0):
            what = "three values above 0" if name == "std" else "three values"
            raise EnetError(f"{name} must be {what} (RGB, on the 0-1 scale), got {values}")
        checked.append(values)
    return Normalizer(device, channels_last, *checked)


def _eval_loader(s: _Setup, res, batch_size, crop_pct, rank, world_size, normalize):
    if s.backend == "dali":
        from .dali import DaliEvalLoader as EvalLoader
    else:
        from .torch_loader import TorchEvalLoader as EvalLoader
    val = EvalLoader(
        s.index.val,
        res,
        crop_pct=crop_pct,
        batch_size=batch_size,
        rank=rank,
        world_size=world_size,
        device=s.device,
        normalize=normalize,
        workers=s.workers,
    )
    val.backend_note, val.skipped = s.note, len(s.index.skipped)
    val.failures.root = s.index.root
    val.val_digest, val.split_note = s.index.val_digest, s.index.split_note
    return val


def _choose(loader: str, device: torch.device) -> tuple[str, str]:
    if loader == "torch":  # without importing DALI at all
        return "torch", "torch (asked for)"
    status = dali_status()
    if loader == "dali":
        if status:
            raise EnetError(f"--loader dali: {status}; use --loader torch")
        return "dali", "dali (asked for)"
    if status:
        return "torch", f"torch ({status})"
    where = "GPU decoding" if device.type == "cuda" else "CPU operators"
    return "dali", f"dali ({where})"


__all__ = [
    "LOADERS",
    "build_eval_loader",
    "build_loaders",
    "dali_status",
    "index_dataset",
    "resolve_data",
    "Path",
]
