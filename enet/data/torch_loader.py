"""The torch backend: a Dataset of whole batches and a DataLoader of worker processes.

Each worker builds one batch: decode (libjpeg-turbo through torchvision.io), random-resized-crop
straight to res x res (antialiased), flip, then enet's batched RandAugment, all on uint8. Which
batch is which is enet's order (common.TrainPlan), and every random draw comes from the batch's
own seed, so results do not depend on which worker built a batch, and a run resumes at any batch.

On CUDA the workers only read the files and draw the crop boxes; a thread of the main process
decodes the JPEGs of a batch together with nvJPEG (`torchvision.io.decode_jpeg(device="cuda")`)
and crops (equal sizes together), flips and augments them on the GPU, on a CUDA stream of its
own, two batches ahead of the training step (`prefetched`).
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import queue
import threading
import warnings
from collections.abc import Iterator

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.io import ImageReadMode, decode_image, decode_jpeg, read_file

from ..errors import EnetError
from .checks import JPEG_MAGIC
from .common import (
    DECODE_ERRORS,
    EvalLoaderBase,
    Normalizer,
    Resolutions,
    TrainLoaderBase,
    TrainPlan,
    decode_reason,
)
from .datasets import Split
from .randaugment import rand_augment
from .shards import is_member, read_encoded

RATIO = (3.0 / 4.0, 4.0 / 3.0)
# torchvision 0.29 deprecates its image decoders in favour of TorchCodec; they still work and are
# twice as fast as Pillow here. (Migrating is future work; see README, Notes.)
warnings.filterwarnings(
    "ignore",
    message="The image decoding and encoding capabilities of TorchVision are deprecated",
    category=DeprecationWarning,
)


def crop_box(height: int, width: int, min_scale: float, rng: np.random.Generator):
    """torchvision's RandomResizedCrop.get_params, drawing from `rng`: (top, left, h, w)."""
    area = height * width
    log_ratio = (math.log(RATIO[0]), math.log(RATIO[1]))
    for _ in range(10):
        target_area = area * rng.uniform(min_scale, 1.0)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    # fallback: the central crop with the ratio clamped into range
    in_ratio = width / height
    if in_ratio < RATIO[0]:
        w, h = width, int(round(width / RATIO[0]))
    elif in_ratio > RATIO[1]:
        h, w = height, int(round(height * RATIO[1]))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def train_box(height: int, width: int, crop: str, min_scale: float, rng: np.random.Generator):
    """The training crop's box (top, left, h, w): random-resized-crop's, the whole image for
    `resize`, the largest square at a random place for `square`."""
    if crop == "resize":
        return 0, 0, height, width
    if crop == "square":
        return square_box(height, width, rng.random(), rng.random())
    return crop_box(height, width, min_scale, rng)


def square_box(height: int, width: int, across: float, down: float) -> tuple[int, int, int, int]:
    """fastai's `Resize` (ResizeMethod.Crop) box: the largest square, its top-left corner at
    the fractions `down` and `across` (in [0, 1)) of the room left, rounded down; 0.5 and 0.5
    is its validation (centre) crop."""
    side = min(height, width)
    return int(down * (height - side)), int(across * (width - side)), side, side


def _decode(data: torch.Tensor) -> torch.Tensor:
    """Encoded bytes -> uint8 RGB (3, H, W), EXIF orientation applied (as DALI's decoders do).

    libjpeg-turbo / libpng through torchvision first; what they return in another depth (16-bit
    PNGs) or cannot convert goes through Pillow, so that every file either backend decodes
    (palette, gray + alpha, RGBA, CMYK JPEGs) arrives as the same 8-bit RGB.
    """
    try:
        image = decode_image(data, mode=ImageReadMode.RGB, apply_exif_orientation=True)
        if image.dtype == torch.uint8 and image.shape[0] == 3:
            return image
    except RuntimeError:
        pass
    return _decode_pillow(data.numpy().tobytes())


def _decode_pillow(encoded: bytes) -> torch.Tensor:
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(encoded)) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit (or 32-bit) grey: keep the top 8
            grey = np.asarray(im, dtype=np.int64)
            shift = 8 if im.mode.startswith("I;16") or grey.max() > 255 else 0
            grey = (grey >> shift).clip(0, 255).astype(np.uint8)
            array = np.repeat(grey[..., None], 3, axis=2)
        else:
            array = np.asarray(im.convert("RGB"))
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def _read(path: str) -> torch.Tensor:
    """A file's bytes (read_file maps it), or a shard member's (data/shards.py)."""
    if is_member(path):
        return torch.from_numpy(read_encoded(path).copy())
    return read_file(path)


class _TrainBatches(Dataset):
    """Key (epoch, batch) -> that batch, built whole (uint8 images, int64 labels)."""

    def __init__(
        self,
        split: Split,
        plan: TrainPlan,
        min_scale: float,
        randaugment: tuple[int, int],
        encoded_only: bool,
        crop: str = "random-resized",
    ) -> None:
        self.files = split.files
        self.labels = np.asarray(split.labels, dtype=np.int64)
        self.plan, self.min_scale, self.crop = plan, min_scale, crop
        self.randaugment = randaugment
        self.encoded_only = encoded_only  # CUDA: decode later, on the GPU

    def __getitem__(self, key: tuple[int, int, int]):
        """(epoch, batch, size): the size is the loader's (progressive resizing)."""
        epoch, batch, res = key
        idx = self.plan.epoch_indices(epoch)[batch]
        seed = self.plan.batch_seed(epoch, batch)
        rng = np.random.default_rng(seed)
        load = self._encoded if self.encoded_only else functools.partial(self._load, res=res)
        samples, kept, failed = [], [], []
        for i in idx:  # a file that fails to decode is left out of its batch, and reported
            try:
                samples.append(load(self.files[i], rng=rng))
                kept.append(i)
            except DECODE_ERRORS as err:
                failed.append((self.files[i], decode_reason(err)))
        labels = torch.from_numpy(self.labels[kept])
        if not samples:
            return None, labels, failed
        if self.encoded_only:
            return pack(samples), labels, seed, res, failed
        images = torch.stack(samples)
        n, m = self.randaugment
        if n > 0:
            images = rand_augment(images, n, m, torch.Generator().manual_seed(seed))
        return images, labels, failed

    def _load(self, path: str, res: int, rng: np.random.Generator) -> torch.Tensor:
        image = _decode(_read(path))
        top, left, h, w = train_box(image.shape[1], image.shape[2], self.crop, self.min_scale, rng)
        image = TF.resized_crop(image, top, left, h, w, [res, res], antialias=True)
        return image.flip(-1) if rng.random() < 0.5 else image

    def _encoded(self, path: str, rng: np.random.Generator):
        """JPEG bytes with their crop box and flip for nvJPEG, or a decoded image: PNGs, and
        JPEGs nvJPEG would get wrong (CMYK or YCCK; an EXIF orientation to apply)."""
        data = _read(path)
        if bytes(data[:3].tolist()) == JPEG_MAGIC:
            from PIL import Image

            header = io.BytesIO(data.numpy().tobytes()) if is_member(path) else path
            with Image.open(header) as im:  # the header alone gives size, mode and EXIF
                width, height = im.size
                plain = im.mode in ("RGB", "L") and im.getexif().get(0x0112, 1) == 1
            if plain:
                box = train_box(height, width, self.crop, self.min_scale, rng)
                return data, box, bool(rng.random() < 0.5), path
        image = _decode(data)
        box = train_box(image.shape[1], image.shape[2], self.crop, self.min_scale, rng)
        return image, box, bool(rng.random() < 0.5), path


def pack(samples: list) -> tuple[torch.Tensor, list[int], list]:
    """A batch of `_encoded` samples as (all JPEG bytes in one tensor, their sizes, per sample
    (box, flip, the decoded image or None for a JPEG, its file)).

    One tensor is one shared-memory segment for a worker to hand over, not one per file. And
    read_file's tensor must not be handed over itself: it maps the file, and a mapped file's
    storage has no descriptor to share (the worker's send fails with EBADF and the loader
    waits for ever; seen on the first GPU run).
    """
    jpegs = [data for data, _, _, _ in samples if data.ndim == 1]
    flat = torch.cat(jpegs) if jpegs else torch.empty(0, dtype=torch.uint8)
    rest = [
        (box, flip, None if data.ndim == 1 else data, path) for data, box, flip, path in samples
    ]
    return flat, [len(j) for j in jpegs], rest


def unpack(packed: tuple, device: torch.device) -> list[torch.Tensor | str]:
    """The images of a `pack`ed batch on `device`, its JPEGs decoded there together (nvJPEG
    on CUDA), in the batch's order. One broken JPEG fails the whole call: then each is decoded
    alone, and one that fails is its decoder's message in its place (a str)."""
    flat, sizes, rest = packed
    jpegs = list(torch.split(flat, sizes)) if sizes else []
    try:
        decoded = decode_jpeg(jpegs, mode=ImageReadMode.RGB, device=device) if jpegs else []
    except RuntimeError:
        decoded = [_decode_alone(jpeg, device) for jpeg in jpegs]
    it = iter(decoded)
    return [next(it) if image is None else image.to(device) for _, _, image, _ in rest]


def _decode_alone(jpeg: torch.Tensor, device: torch.device) -> torch.Tensor | str:
    try:
        return decode_jpeg(jpeg, mode=ImageReadMode.RGB, device=device)
    except RuntimeError as err:
        return decode_reason(err)


class _Keys(Sampler):
    """Yields the keys of one pass (training: (epoch, batch, size)); set before each pass."""

    def __init__(self) -> None:
        self.keys: list = []

    def __iter__(self):
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)


def _dataloader(dataset: Dataset, sampler: Sampler, workers: int, device: torch.device):
    return DataLoader(
        dataset,
        batch_size=None,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        pin_memory=device.type == "cuda",
        # A generator of its own: by default each new iterator draws its workers' base seed
        # from the global RNG, shifting the dropout and drop-connect draws of the training loop
        # (and breaking bitwise resume). enet's augmentation never uses that seed.
        generator=torch.Generator().manual_seed(0),
    )


class TorchTrainLoader(TrainLoaderBase):
    backend = "torch"

    def __init__(
        self,
        split: Split,
        plan: TrainPlan,
        sizes: Resolutions,
        *,
        min_scale: float,
        randaugment: tuple[int, int],
        device: torch.device,
        normalize: Normalizer,
        workers: int,
        crop: str = "random-resized",
    ) -> None:
        super().__init__(plan, sizes)
        self.gpu_decode = device.type == "cuda"
        self.randaugment, self.device = tuple(randaugment), device
        self.dataset = _TrainBatches(
            split, plan, min_scale, self.randaugment, self.gpu_decode, crop
        )
        self.keys = _Keys()
        self.loader = _dataloader(self.dataset, self.keys, workers, device)
        self.normalize = normalize

    def _iterate(self, epoch: int, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # the sizes are fixed when the epoch starts (the workers run ahead of the loop)
        batches = range(start, len(self.plan))
        sizes = self.sizes.sizes(np.array(batches) + epoch * len(self.plan), self.sizes.total)
        self.keys.keys = [(epoch, b, int(size)) for b, size in zip(batches, sizes, strict=True)]
        items = map(self._checked, self.loader)
        if self.gpu_decode:  # decoded and augmented ahead, on a stream of their own
            yield from prefetched(self._gpu_batch, items, self.device)
            return
        for images, labels in items:
            yield self.normalize(images), labels.to(self.device, non_blocking=True)

    def _checked(self, item):
        """A worker's batch, its decode failures taken out (and reported)."""
        *batch, failed = item
        self.failures.add(failed)
        if batch[0] is None:
            raise EnetError(
                f"every image of a training batch failed to decode (e.g. {failed[0][0]}: "
                f"{failed[0][1]}); check the data with `enet data check`"
            )
        return batch

    def _gpu_batch(self, item):
        images, labels = self._gpu_images(*item)
        return self.normalize(images), labels.to(self.device, non_blocking=True)

    def _gpu_images(self, packed, labels, seed, res):
        """Decode a batch's JPEGs together on the GPU, then crop, resize, flip, augment there."""
        samples = packed[2]
        boxes, flips = [s[0] for s in samples], [s[1] for s in samples]
        images = unpack(packed, self.device)
        failed = [(samples[i][3], x) for i, x in enumerate(images) if isinstance(x, str)]
        if failed:  # a JPEG nvJPEG could not decode: left out of the batch, and reported
            self.failures.add(failed)
            kept = [i for i, x in enumerate(images) if not isinstance(x, str)]
            if not kept:
                raise EnetError(f"every image of a training batch failed to decode ({failed[0]})")
            boxes, flips, labels = [boxes[i] for i in kept], [flips[i] for i in kept], labels[kept]
            images = [images[i] for i in kept]
        batch = resized_crops(images, boxes, flips, res)
        n, m = self.randaugment
        if n > 0:
            batch = rand_augment(batch, n, m, torch.Generator().manual_seed(seed))
        return batch, labels


def crop(image: torch.Tensor, top: int, left: int, h: int, w: int) -> torch.Tensor:
    return image[:, top : top + h, left : left + w]  # a view


def resized_crops(images: list[torch.Tensor], boxes: list, flips: list[bool], res: int):
    """Each image's box (top, left, h, w) resized to res x res (antialiased bilinear), flipped
    where asked: one uint8 batch. Crops of equal size are stacked and resized by one call (the
    same arithmetic, image by image: the same pixels), and each flipped group is flipped whole,
    its images then picked as views; so a batch of equal boxes (whole images of a dataset
    stored at one size, `crop: resize`) costs a handful of kernels on CUDA instead of a few
    per image, and nothing here needs an index on the device (no host synchronisation)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (_, _, h, w) in enumerate(boxes):
        groups.setdefault((h, w), []).append(i)
    out: list[torch.Tensor | None] = [None] * len(images)
    for members in groups.values():
        crops = [crop(images[i], *boxes[i]) for i in members]
        stacked = crops[0].unsqueeze(0) if len(crops) == 1 else torch.stack(crops)
        resized = TF.resize(stacked, [res, res], antialias=True)
        mirrored = resized.flip(-1) if any(flips[i] for i in members) else None
        for j, i in enumerate(members):
            out[i] = mirrored[j] if flips[i] else resized[j]
    return torch.stack(out)


_END = object()


def prefetched(prepare, items: Iterator, device: torch.device, depth: int = 2) -> Iterator:
    """`prepare(item)` for each item, `depth` items ahead of the consumer, in a thread of its
    own and, on CUDA, on a stream of its own: decoding and augmenting batch N+1 overlaps the
    training step on batch N instead of blocking the training thread. The consumer's stream
    waits for each batch's event, and the tensors are recorded on it (so the allocator does
    not reuse their memory early). Errors reach the consumer; closing the generator (the loop
    ended early) stops the thread."""
    cuda = device.type == "cuda"
    stream = torch.cuda.Stream(device) if cuda else None
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value) -> None:
        while not stop.is_set():
            try:
                ready.put(value, timeout=0.1)
                return
            except queue.Full:
                continue

    def work() -> None:
        try:
            with torch.cuda.stream(stream) if cuda else contextlib.nullcontext():
                for item in items:
                    if stop.is_set():
                        return
                    out = prepare(item)
                    event = None
                    if cuda:
                        event = torch.cuda.Event()
                        event.record(stream)
                    put((out, event))
            put(_END)
        except BaseException as err:  # noqa: BLE001 (handed to the consumer)
            put(err)

    thread = threading.Thread(target=work, name="enet-prefetch", daemon=True)
    thread.start()
    try:
        while (got := ready.get()) is not _END:
            if isinstance(got, BaseException):
                raise got
            out, event = got
            if cuda:
                current = torch.cuda.current_stream(device)
                current.wait_event(event)
                for tensor in out:
                    tensor.record_stream(current)
            yield out
    finally:
        stop.set()
        thread.join(timeout=10)


def eval_image(path: str, res: int, resize_to: int) -> torch.Tensor:
    """The evaluation transform of one file: decode, shorter side to `resize_to` (antialiased),
    centre crop res x res; uint8 (3, res, res)."""
    image = TF.resize(_decode(_read(path)), [resize_to], antialias=True)
    return TF.center_crop(image, [res, res])


class _EvalBatches(Dataset):
    def __init__(self, split: Split, batches: list[range], res: int, resize_to: int) -> None:
        self.files = split.files
        self.labels = np.asarray(split.labels, dtype=np.int64)
        self.batches, self.res, self.resize_to = batches, res, resize_to

    def __getitem__(self, b: int):
        images, kept, failed = [], [], []
        for i in self.batches[b]:  # a file that fails to decode is left out, and reported
            try:
                images.append(eval_image(self.files[i], self.res, self.resize_to))
                kept.append(i)
            except DECODE_ERRORS as err:
                failed.append((self.files[i], decode_reason(err)))
        stacked = torch.stack(images) if images else None
        return stacked, torch.from_numpy(self.labels[kept]), kept, failed


class TorchEvalLoader(EvalLoaderBase):
    backend = "torch"

    def __init__(self, split: Split, res: int, **kw) -> None:
        super().__init__(split, res, **kw)
        dataset = _EvalBatches(split, self.batches, self.res, self.resize_to)
        sampler = _Keys()
        sampler.keys = list(range(len(self.batches)))
        self.loader = _dataloader(dataset, sampler, self.workers, self.device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for images, labels, kept, failed in self.loader:
            self.failures.add(failed)
            if images is None:
                continue
            self.current = kept
            yield self.normalize(images), labels.to(self.device, non_blocking=True)
