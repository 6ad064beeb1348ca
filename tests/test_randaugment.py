"""enet's batched RandAugment against torchvision's RandAugment, operation by operation."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.autoaugment import _apply_op

from enet.data import randaugment as ra

TORCHVISION_NAMES = {
    "identity": "Identity",
    "shear_x": "ShearX",
    "shear_y": "ShearY",
    "translate_x": "TranslateX",
    "translate_y": "TranslateY",
    "rotate": "Rotate",
    "brightness": "Brightness",
    "color": "Color",
    "contrast": "Contrast",
    "sharpness": "Sharpness",
    "posterize": "Posterize",
    "solarize": "Solarize",
    "auto_contrast": "AutoContrast",
    "equalize": "Equalize",
}


@pytest.fixture(scope="module")
def images():
    """Natural images (from the shipped mini set), at a non-square size."""
    import torchvision.transforms.v2.functional as TF
    from torchvision.io import ImageReadMode, decode_image, read_file

    from enet.data.datasets import index_dataset, resolve_data

    files = index_dataset(resolve_data("mini")).train.files[::24][:8]
    return torch.stack(
        [TF.resize(decode_image(read_file(f), mode=ImageReadMode.RGB), [72, 96]) for f in files]
    )


def test_op_table_is_torchvisions():
    from torchvision.transforms import RandAugment

    space = RandAugment()._augmentation_space(31, (72, 96))
    assert [TORCHVISION_NAMES[op] for op in ra.OPS] == list(space)
    for op in ra.OPS:
        values, signed = space[TORCHVISION_NAMES[op]]
        assert (op in ra.SIGNED) == signed
        for m in (0, 9, 30):
            expected = float(values[m]) if values.ndim > 0 else 0.0
            assert ra.magnitude_of(op, m, 72, 96) == pytest.approx(expected, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("op", ra.OPS)
@pytest.mark.parametrize("magnitude", [0, 9, 30])
def test_each_op_equals_torchvision(images, op, magnitude):
    n, _, h, w = images.shape
    mag = ra.magnitude_of(op, magnitude, h, w)
    for sign in (1.0, -1.0):
        ours = ra.apply_op(images, op, magnitude, torch.full((n,), sign))
        theirs = torch.stack(
            [
                _apply_op(
                    im,
                    TORCHVISION_NAMES[op],
                    sign * mag if op in ra.SIGNED else mag,
                    InterpolationMode.NEAREST,
                    None,
                )
                for im in images
            ]
        )
        assert torch.equal(ours, theirs), (op, magnitude, sign)


def test_batch_is_reproducible_and_mixes_ops(images):
    batch = images.repeat(4, 1, 1, 1)  # 32 images
    a = ra.rand_augment(batch, 2, 9, torch.Generator().manual_seed(3))
    b = ra.rand_augment(batch, 2, 9, torch.Generator().manual_seed(3))
    c = ra.rand_augment(batch, 2, 9, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.dtype == torch.uint8 and a.shape == batch.shape
    changed = (a != batch).flatten(1).any(1)
    assert changed.sum() >= 28  # identity twice has odds 1/196 per sample
    assert torch.equal(batch, images.repeat(4, 1, 1, 1))  # input untouched


def test_batch_equals_per_sample_torchvision(images):
    """The batched path gives each sample exactly what its drawn ops give one at a time."""
    n, _, h, w = images.shape
    out = ra.rand_augment(images, 2, 9, torch.Generator().manual_seed(11))
    # the draws rand_augment makes: ops first, then signs, from the one generator
    g = torch.Generator().manual_seed(11)
    choices = torch.randint(len(ra.OPS), (2, n), generator=g)
    signs = torch.randint(2, (2, n), generator=g) * -2.0 + 1.0
    for i in range(n):
        img = images[i]
        for level in range(2):
            op = ra.OPS[int(choices[level, i])]
            mag = ra.magnitude_of(op, 9, h, w)
            img = _apply_op(
                img,
                TORCHVISION_NAMES[op],
                float(signs[level, i]) * mag if op in ra.SIGNED else mag,
                InterpolationMode.NEAREST,
                None,
            )
        assert torch.equal(out[i], img), i
