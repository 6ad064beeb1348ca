"""What both loader backends share: the epoch order, sharding, seeds, normalisation, position.

enet owns the sample order: epoch e visits the training files in a permutation seeded by
(seed, e), rank r of w takes every w-th sample of it, and batches are consecutive slices. Both
backends therefore read the same files in the same batches, and a run resumes at any batch by
index. Every random draw of the torch backend (and enet's RandAugment in both) comes from a
generator seeded by (seed, epoch, batch, rank): reproducible in any worker process.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import EnetError
from . import checks

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class TrainPlan:
    """The training order of one rank: which sample indices form batch b of epoch e."""

    num_samples: int  # in the whole split
    batch_size: int
    seed: int
    rank: int = 0
    world_size: int = 1

    @property
    def per_rank(self) -> int:
        # every rank gets the same number: the few left over change from epoch to epoch
        return self.num_samples // self.world_size

    def __len__(self) -> int:
        """Full batches per epoch (the last partial one is dropped, as for BatchNorm's sake)."""
        return self.per_rank // self.batch_size

    @functools.lru_cache(maxsize=4)  # noqa: B019 (plans are few, small and immutable)
    def epoch_indices(self, epoch: int) -> np.ndarray:
        """(batches, batch_size) sample indices; kept for the epoch's batches (and the next
        epoch's, which workers reach first), read-only."""
        perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)
        mine = perm[: self.per_rank * self.world_size][self.rank :: self.world_size]
        out = mine[: len(self) * self.batch_size].reshape(len(self), self.batch_size)
        out.setflags(write=False)
        return out

    def batch_seed(self, epoch: int, batch: int) -> int:
        return seed_of(self.seed, epoch, batch, self.rank)


RES_MULTIPLE = 32  # progressive resizing moves in steps of the networks' total stride


@dataclass
class Resolutions:
    """The training resolution of each batch: `res`, or with progressive resizing (`min_res` >
    0) `min_res` until the fraction `ramp_start` of the run's batches, rising linearly to `res`
    at `ramp_end`, rounded down to a multiple of RES_MULTIPLE (and never below `min_res`).

    Steps of 32 px: EfficientNet and XResNet reduce by 32, so every size keeps whole feature
    maps, and few sizes mean few cuDNN autotunings and `torch.compile` recompilations (FFCV's
    progressive resizing rounds to 32 for the same reason). The size is a function of the batch's
    place in the run, so a resumed run sees the same sizes; `total` (micro-batches in the run)
    is set by the training loop, again whenever a time budget refits the run's length.
    """

    res: int
    min_res: int = 0
    ramp_start: float = 0.0
    ramp_end: float = 0.0
    total: int = 1

    @property
    def progressive(self) -> bool:
        return 0 < self.min_res < self.res

    def at(self, index: int, total: int | None = None) -> int:
        """The size of the run's batch `index` (0-based, counted over epochs)."""
        return int(self.sizes(np.array([index]), total or self.total)[0])

    def sizes(self, indices: np.ndarray, total: int) -> np.ndarray:
        if not self.progressive:
            return np.full(len(indices), self.res, dtype=np.int64)
        fraction = np.asarray(indices, dtype=np.float64) / max(total, 1)
        span = (fraction - self.ramp_start) / max(self.ramp_end - self.ramp_start, 1e-9)
        size = self.min_res + np.clip(span, 0.0, 1.0) * (self.res - self.min_res)
        stepped = np.maximum(self.min_res, size.astype(np.int64) // RES_MULTIPLE * RES_MULTIPLE)
        return np.where(fraction >= self.ramp_end, self.res, stepped)

    def areas(self, first: int, total: int) -> np.ndarray:
        """(size / res)^2 of the batches first .. total-1 when the run has `total`: the cost of
        each relative to a full-size batch (a step's time goes with its pixels)."""
        sizes = self.sizes(np.arange(first, total), total).astype(np.float64)
        return (sizes / self.res) ** 2


def seed_of(*parts: int) -> int:
    """A 63-bit seed from a tuple of integers (numpy's SeedSequence mixes them well)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> 1)


def eval_shard(num_samples: int, rank: int, world_size: int) -> range:
    """Contiguous, disjoint shards covering every sample exactly once (sizes differ by <= 1)."""
    start = num_samples * rank // world_size
    end = num_samples * (rank + 1) // world_size
    return range(start, end)


def eval_batches(num_samples: int, batch_size: int, rank: int, world_size: int) -> list[range]:
    shard = eval_shard(num_samples, rank, world_size)
    return [shard[i : i + batch_size] for i in range(0, len(shard), batch_size)]


class Normalizer:
    """uint8 images (N, C, H, W, any strides) -> float on `device`, the model's per-channel mean
    and std (RGB, on the 0-1 scale; ImageNet's unless the model's zoo says otherwise:
    `settings.resolve_normalization`) applied.

    Done on the training device: the workers move a quarter of the bytes, and the subtraction
    and division run where they cost least.
    """

    def __init__(
        self,
        device: torch.device,
        channels_last: bool,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
    ) -> None:
        self.device = device
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        out = images.to(dtype=torch.float32, memory_format=self.memory_format)
        return out.sub_(self.mean).div_(self.std)


# What a decoder raises on a file it cannot decode (torchvision: RuntimeError; Pillow: OSError,
# ValueError, SyntaxError for some broken headers).
DECODE_ERRORS = (RuntimeError, OSError, ValueError, SyntaxError)


def decode_reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[-1] if text else ''}".strip(": ")


class DecodeFailures:
    """The files a loader met that failed to decode mid-run (a JPEG whose header passed the
    listing's check but whose data is broken): each is skipped (its batch one image short),
    counted, said once through `warn`, and recorded in the data's check cache, so that the next
    run's listing leaves it out (a resumed run keeps its own listing: bit-exact resume holds)."""

    def __init__(self) -> None:
        self.files: dict[str, str] = {}
        self.root: Path | None = None  # the data's root (build_loaders sets it): the cache's key
        self.warn = _to_stderr  # a print function: the training loop hands it its console

    def add(self, failed: list[tuple[str, str]]) -> None:
        new = {path: reason for path, reason in failed if path not in self.files}
        if not new:
            return
        self.files.update(new)
        if self.root is not None:
            checks.record_decode_failures(self.root, new)
        for path, reason in new.items():
            self.warn(
                f"warning: {path} failed to decode ({reason}); skipped, and recorded so that "
                "later runs leave it out",
                highlight=False,
                soft_wrap=True,
                markup=False,
            )


def _to_stderr(message: str, **_console_options) -> None:
    """DecodeFailures' default voice (enet eval, predict, a loader used as a library): stderr,
    so that a command's table or JSON on stdout stays clean."""
    print(message, file=sys.stderr, flush=True)


class TrainLoaderBase:
    """Re-iterable training loader with a position: each `iter()` runs one epoch from it.

    `state_dict()` after consuming batch b of epoch e says (e, b + 1), so a resumed loader
    starts with the next batch; backends add what they need to reproduce their randomness.
    `sizes` gives each batch's resolution (progressive resizing; the loop sets its `total`).
    """

    backend = "?"

    def __init__(self, plan: TrainPlan, sizes: Resolutions) -> None:
        self.plan = plan
        self.sizes = sizes
        self.epoch = 0
        self.batch = 0
        self.backend_note = self.backend  # why this backend (build_loaders says)
        self.skipped = 0  # bad files left out of the split (build_loaders counts them)
        self.failures = DecodeFailures()  # files that failed to decode mid-run
        self.listing_skipped: tuple[str, ...] = ()  # the files the listing left out

    def __len__(self) -> int:
        return len(self.plan)

    @property
    def num_samples(self) -> int:
        return len(self.plan) * self.plan.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.batch >= len(self):
            self.epoch, self.batch = self.epoch + 1, 0
        for images, labels in self._iterate(self.epoch, self.batch):
            self.batch += 1  # before yielding: the consumer holds this batch now
            yield images, labels
        self.epoch, self.batch = self.epoch + 1, 0

    def _iterate(self, epoch: int, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {"backend": self.backend, "epoch": self.epoch, "batch": self.batch}

    def load_state_dict(self, state: dict) -> None:
        if state.get("backend") != self.backend:
            raise EnetError(
                f"the checkpoint's data position was saved by the {state.get('backend')} loader; "
                f"resume with --loader {state.get('backend')}"
            )
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])


class EvalLoaderBase:
    """Every image of this rank's shard exactly once per pass, the last batch possibly short.
    Backends add `__iter__`: decode -> shorter side to res / crop_pct -> centre crop."""

    backend = "?"

    def __init__(
        self,
        split,
        res: int,
        *,
        crop_pct: float,
        batch_size: int,
        rank: int,
        world_size: int,
        device: torch.device,
        normalize: Normalizer,
        workers: int,
    ) -> None:
        self.files = split.files
        self.labels = np.asarray(split.labels, dtype=np.int64)
        self.batches = eval_batches(len(split), batch_size, rank, world_size)
        self.num_samples = sum(len(b) for b in self.batches)
        self.res, self.resize_to = res, int(round(res / crop_pct))
        self.batch_size, self.device, self.workers = batch_size, device, workers
        self.normalize = normalize
        self.backend_note = self.backend
        self.skipped = 0
        self.failures = DecodeFailures()
        # the split's places of the images of the batch last yielded (a batch may be short of
        # images that failed to decode): evaluate(predictions=True) reads it
        self.current: list[int] = []
        self.val_digest: str | None = None  # the split's digest (DatasetIndex.val_digest)
        self.split_note = ""  # how enet made the split (data.val_pct), for the run's log

    def __len__(self) -> int:
        return len(self.batches)
