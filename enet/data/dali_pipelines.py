"""DALI pipeline definitions.

They live in a file of their own because DALI's conditionals (used by its RandAugment) read the
pipeline function's source code: such a function must be defined in a .py file.
"""

from __future__ import annotations

import contextlib
import warnings

from nvidia.dali import fn, pipeline_def, types
from nvidia.dali import math as dmath
from nvidia.dali.auto_aug import rand_augment


@contextlib.contextmanager
def quiet_dali_deprecations():
    """Hide DALI's warnings about its own RandAugment calling operators by old experimental names.

    A warnings filter cannot: DALI resets the filters (simplefilter("default")) right before it
    warns, so the message is dropped where it is shown instead, and only while a pipeline is made.
    """
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if category is DeprecationWarning and "fn.experimental." in str(message):
            return
        shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown


@pipeline_def(enable_conditionals=True)
def train_pipeline(
    files, sizes, parallel: bool, min_scale: float, gpu: bool, randaugment, crop: str
):
    """encoded JPEG/PNG -> random-resized-crop (decoding only the crop), the whole image
    resized to size x size (`crop="resize"`) or its largest square at a random place
    (`crop="square"`) [-> RandAugment] -> flip.

    `files` gives a batch's (encoded, label) per sample, read in DALI's Python worker processes
    when `parallel` (the pipeline then needs `py_num_workers`); `sizes` its size per sample
    ([h, w], float32), always in this process, so that it can change from batch to batch
    (progressive resizing) without rebuilding the pipeline.
    Output: uint8 CHW images of size x size and int64 labels, on the GPU when `gpu`. (The flip
    comes last, fused with the layout change; RandAugment commutes with it up to the sign of
    its random shears, rotations and translations, which are symmetric.)
    `randaugment`: (n, m) to run DALI's own RandAugment inside the pipeline (fast on the GPU),
    None to leave it out (on the CPU enet's batched one runs after the pipeline instead).
    """
    encoded, labels = fn.external_source(
        source=files,
        num_outputs=2,
        batch=True,
        batch_info=True,
        parallel=parallel,
        prefetch_queue_depth=4 if parallel else None,  # batches the workers read ahead
        dtype=[types.UINT8, types.INT64],
    )
    sizes = fn.external_source(source=sizes, batch=True, batch_info=True, dtype=types.FLOAT)
    if crop in ("resize", "square"):
        images = fn.decoders.image(encoded, device="mixed" if gpu else "cpu", output_type=types.RGB)
        if crop == "square":  # fastai's Resize: the largest square at a random place
            shape = fn.peek_image_shape(encoded)  # H, W, C (EXIF orientation applied)
            side = fn.cast(dmath.min(shape[0], shape[1]), dtype=types.FLOAT)
            images = fn.crop(
                images,
                crop_h=side,
                crop_w=side,
                crop_pos_x=fn.random.uniform(range=[0.0, 1.0]),
                crop_pos_y=fn.random.uniform(range=[0.0, 1.0]),
            )
    else:
        images = fn.decoders.image_random_crop(
            encoded,
            device="mixed" if gpu else "cpu",
            output_type=types.RGB,
            random_area=[min_scale, 1.0],
            random_aspect_ratio=[3.0 / 4.0, 4.0 / 3.0],
            num_attempts=10,
        )
    images = fn.resize(images, size=sizes, interp_type=types.INTERP_LINEAR, antialias=True)
    flip = fn.random.coin_flip(probability=0.5)
    if randaugment is not None:
        n, m = randaugment
        # torchvision's conventions: 31 magnitude bins, nearest interpolation, zero fill,
        # translation up to 150/331 of the size.
        images = rand_augment.rand_augment(
            images,
            n=n,
            m=m,
            shape=sizes,
            fill_value=0,
            interp_type=types.INTERP_NN,
            max_translate_rel=150.0 / 331.0,
        )
    # flip and HWC -> CHW in one pass on DALI's threads; still uint8, normalised by the consumer
    images = fn.crop_mirror_normalize(
        images, dtype=types.UINT8, output_layout="CHW", mirror=flip, mean=[0.0], std=[1.0]
    )
    if gpu:
        labels = labels.gpu()
    return images, labels


@pipeline_def
def eval_pipeline(source, res: int, resize_to: int, gpu: bool):
    """encoded -> decode -> shorter side to `resize_to` -> centre crop res x res (uint8 CHW)."""
    encoded, labels = fn.external_source(
        source=source,
        num_outputs=2,
        batch=True,
        batch_info=True,
        dtype=[types.UINT8, types.INT64],
    )
    images = fn.decoders.image(encoded, device="mixed" if gpu else "cpu", output_type=types.RGB)
    images = fn.resize(
        images, resize_shorter=resize_to, interp_type=types.INTERP_LINEAR, antialias=True
    )
    images = fn.crop_mirror_normalize(
        images,
        crop=(res, res),
        dtype=types.UINT8,
        output_layout="CHW",
        mean=[0.0],
        std=[1.0],
        out_of_bounds_policy="pad",
    )
    if gpu:
        labels = labels.gpu()
    return images, labels
