"""RandAugment (Cubuk et al. 2019) on whole uint8 batches, with torchvision's semantics.

torchvision's `RandAugment(num_ops, magnitude)` transforms one image at a time. Here a batch
(N, C, H, W) uint8 is transformed at once: for each of the `num_ops` levels every sample draws
one of the 14 operations and a sign, then each operation runs once on the samples that drew it,
and the five geometric operations share one `grid_sample`. The operations, the magnitude table
(31 bins), nearest interpolation and zero fill are torchvision's; tests compare every operation
with torchvision's functional one. Randomness comes from an explicit generator, so a batch's
augmentation is a function of its seed alone: reproducible in any worker and after a resume.

The same code runs on CPU tensors (in loader workers, or after DALI's CPU pipeline, where this is
faster than DALI's CPU RandAugment) and on CUDA tensors. The batch stays uint8 (a quarter of the
memory traffic of float32, which is what these operations are bound by on a CPU); each
operation rewrites its samples' slice in place, converting to float only where torchvision
computes in float, and truncating back exactly as torchvision's uint8 conversion does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.transforms.functional import _get_inverse_affine_matrix

OPS = (
    "identity",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
    "rotate",
    "brightness",
    "color",
    "contrast",
    "sharpness",
    "posterize",
    "solarize",
    "auto_contrast",
    "equalize",
)
GEOMETRIC = frozenset({"shear_x", "shear_y", "translate_x", "translate_y", "rotate"})
SIGNED = GEOMETRIC | {"brightness", "color", "contrast", "sharpness"}
NUM_BINS = 31


def magnitude_of(op: str, magnitude: int, height: int, width: int) -> float:
    """torchvision's magnitude table: bin `magnitude` of `NUM_BINS` for `op`."""
    frac = magnitude / (NUM_BINS - 1)
    if op in ("shear_x", "shear_y"):
        return 0.3 * frac
    if op == "translate_x":
        return 150.0 / 331.0 * width * frac
    if op == "translate_y":
        return 150.0 / 331.0 * height * frac
    if op == "rotate":
        return 30.0 * frac
    if op in ("brightness", "color", "contrast", "sharpness"):
        return 0.9 * frac
    if op == "posterize":  # bits kept: 8 at bin 0 down to 4 at the last bin
        return float(8 - round(magnitude / ((NUM_BINS - 1) / 4)))
    if op == "solarize":  # threshold: 255 at bin 0 down to 0
        return 255.0 * (1 - frac)
    return 0.0


def rand_augment(
    images: torch.Tensor, num_ops: int, magnitude: int, generator: torch.Generator
) -> torch.Tensor:
    """RandAugment(num_ops, magnitude) of a uint8 (N, C, H, W) batch; returns a new batch."""
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError("rand_augment expects a uint8 (N, C, H, W) batch")
    if not 0 <= magnitude < NUM_BINS:
        raise ValueError(f"magnitude must be in [0, {NUM_BINS - 1}], got {magnitude}")
    n, _, h, w = images.shape
    # All draws up front, on the CPU, from the caller's generator.
    choices = torch.randint(len(OPS), (num_ops, n), generator=generator)
    signs = torch.randint(2, (num_ops, n), generator=generator) * -2.0 + 1.0  # +1 or -1
    out = images.contiguous()
    if out.data_ptr() == images.data_ptr():
        out = out.clone()
    order = torch.arange(n)  # out[i] holds input sample order[i]
    for level in range(num_ops):
        # Sort the samples by the op they drew, so each op works on one contiguous slice.
        ops, perm = choices[level][order].sort(stable=True)
        if not torch.equal(perm, torch.arange(n)):
            order = order[perm]
            out = out.index_select(0, perm.to(out.device))
        level_signs = signs[level][order]
        bounds = [0, *torch.bincount(ops, minlength=len(OPS)).cumsum(0).tolist()]
        for op_id, op in enumerate(OPS):
            lo, hi = bounds[op_id], bounds[op_id + 1]
            if hi == lo or op == "identity":
                continue
            mag = magnitude_of(op, magnitude, h, w)
            signed = level_signs[lo:hi].double()  # float64, like torchvision's Python floats
            _APPLY[op](out[lo:hi], mag, signed)
    # back to the input order
    return out.index_select(0, torch.argsort(order).to(out.device))


def apply_op(images: torch.Tensor, op: str, magnitude: int, signs: torch.Tensor) -> torch.Tensor:
    """One operation on every sample of a uint8 batch (per-sample signs); for tests and tools."""
    x = images.clone()
    if op != "identity":
        _APPLY[op](x, magnitude_of(op, magnitude, *images.shape[-2:]), signs.double())
    return x


# ---------------------------------------------------------------------------------------------
# geometry: torchvision's inverse affine matrices; nearest sampling as an integer gather


def _inverse_affine(op: str, mag: float, h: int, w: int) -> list[list[float]]:
    """The 2x3 inverse matrix torchvision's F.affine / F.rotate would use for this op."""
    corner = [-w * 0.5, -h * 0.5]  # torchvision shears about the top-left corner (center=[0, 0])
    if op == "shear_x":
        m = _get_inverse_affine_matrix(
            corner, 0.0, [0.0, 0.0], 1.0, [math.degrees(math.atan(mag)), 0.0]
        )
    elif op == "shear_y":
        m = _get_inverse_affine_matrix(
            corner, 0.0, [0.0, 0.0], 1.0, [0.0, math.degrees(math.atan(mag))]
        )
    else:  # rotate: F.rotate passes -angle about the image centre
        m = _get_inverse_affine_matrix([0.0, 0.0], -mag, [0.0, 0.0], 1.0, [0.0, 0.0])
    return [m[0:3], m[3:6]]


def _warp(x: torch.Tensor, mag: float, signed: torch.Tensor, op: str) -> None:
    """Shear or rotate (S, C, H, W) in place, nearest neighbour, zero outside.

    torchvision builds a grid of pixel centres in image-centred coordinates, maps it through the
    inverse matrix, normalises it and lets grid_sample(mode="nearest", align_corners=False)
    unnormalise and round. Normalising and unnormalising cancel: the source pixel is
    round(theta @ (x_c, y_c, 1) + size / 2 - 0.5), computed here as a column term plus a row term.
    """
    s, c, h, w = x.shape
    theta = torch.tensor(
        [_inverse_affine(op, v * mag, h, w) for v in signed.tolist()],
        dtype=torch.float32,
        device=x.device,
    ).view(s, 2, 3, 1, 1)
    xc = torch.arange(w, device=x.device, dtype=torch.float32).view(1, w) - (w * 0.5 - 0.5)
    yc = torch.arange(h, device=x.device, dtype=torch.float32).view(h, 1) - (h * 0.5 - 0.5)
    offset = torch.tensor([w * 0.5 - 0.5, h * 0.5 - 0.5], device=x.device).view(1, 2, 1, 1)
    # (S, 2, H, W): source x and y of every output pixel, rounded half to even like grid_sample
    src = (theta[:, :, 0] * xc + (theta[:, :, 1] * yc + theta[:, :, 2] + offset)).round_()
    src_x, src_y = src[:, 0], src[:, 1]
    inside = (src_x >= 0) & (src_x <= w - 1) & (src_y >= 0) & (src_y <= h - 1)
    index = (src_y * w + src_x).masked_fill_(~inside, h * w).long().view(s, 1, h * w)
    # one zero pixel after each image's last one: where outside indices point
    padded = torch.cat([x.reshape(s, c, h * w), x.new_zeros(s, c, 1)], 2)
    x.copy_(padded.gather(2, index.expand(s, c, h * w)).view(s, c, h, w))


def _translate(x: torch.Tensor, mag: float, signed: torch.Tensor, axis: int) -> None:
    """Shift (S, C, H, W) in place by int(+-mag) pixels along `axis` (-1: x, -2: y), zero fill.

    torchvision's F.affine with an integer translation moves pixel (x, y) to (x + t, y).
    """
    size = x.shape[axis]
    for i, sign in enumerate(signed.tolist()):
        t = int(sign * mag)  # int() truncates towards zero, as torchvision's int(magnitude)
        if t == 0:
            continue
        sample = x[i]
        src = sample.narrow(axis, max(0, -t), size - abs(t)).clone()
        sample.zero_()
        sample.narrow(axis, max(0, t), size - abs(t)).copy_(src)


# ---------------------------------------------------------------------------------------------
# colour: torchvision's tensor implementations, with one ratio per sample, in place


def _blend(x: torch.Tensor, xf: torch.Tensor, b, signed: torch.Tensor, mag: float) -> None:
    """x <- uint8(clamp(ratio * xf + (1 - ratio) * b)), ratio = 1 + sign * mag per sample.

    `xf` is x as float (it is overwritten); ratio is computed in float64 like torchvision's
    Python float, so (1 - ratio) is rounded once.
    """
    ratio = (1.0 + signed * mag).view(-1, 1, 1, 1)
    xf.mul_(ratio.float().to(x.device))
    if b is not None:
        xf.add_(b * (1.0 - ratio).float().to(x.device))
    x.copy_(_to_uint8(xf.clamp_(0, 255)))


def _to_uint8(values: torch.Tensor) -> torch.Tensor:
    """Truncate floats in [0, 255] to uint8, as .to(uint8) does; via int16, which is much
    faster on the CPU than the direct conversion."""
    return values.to(torch.int16).to(torch.uint8)


def _grayscale(xf: torch.Tensor) -> torch.Tensor:
    """torchvision's rgb_to_grayscale of a uint8 image (truncated to an integer), in float."""
    r, g, b = xf.unbind(1)
    return (0.2989 * r + 0.587 * g + 0.114 * b).trunc_().unsqueeze(1)


def _brightness(x, mag, signed):
    _blend(x, x.float(), None, signed, mag)


def _color(x, mag, signed):
    xf = x.float()
    _blend(x, xf, _grayscale(xf), signed, mag)


def _contrast(x, mag, signed):
    xf = x.float()
    _blend(x, xf, _grayscale(xf).mean((1, 2, 3), keepdim=True), signed, mag)


def _sharpness(x, mag, signed):
    h, w = x.shape[-2:]
    if h <= 2 or w <= 2:
        return
    # torchvision blurs the interior with [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 and rounds. That
    # kernel is a 3x3 box plus 4x the centre; the sum s is an exact small integer and s / 13 is
    # never a half, so round(s / 13) = floor((s + 6) / 13), computed exactly in float.
    xf = x.float()
    rows = xf[..., :-2, :] + xf[..., 1:-1, :] + xf[..., 2:, :]  # vertical 3-sums
    box = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]  # then horizontal
    degenerate = xf.clone()
    degenerate[..., 1:-1, 1:-1] = box.add_(xf[..., 1:-1, 1:-1], alpha=4).add_(6).div_(13).floor_()
    _blend(x, xf, degenerate, signed, mag)


def _posterize(x, mag, signed):
    x.bitwise_and_(-int(2 ** (8 - int(mag))))


def _solarize(x, mag, signed):
    # x >= threshold, for integer x, is x >= ceil(threshold); 255 - x is x ^ 255 in uint8
    threshold = math.ceil(mag)
    if threshold <= 255:
        x.bitwise_xor_((x >= threshold).to(torch.uint8).mul_(255))


def _auto_contrast(x, mag, signed):
    lo = x.amin((-2, -1), keepdim=True).float()
    hi = x.amax((-2, -1), keepdim=True).float()
    scale = 255.0 / (hi - lo)
    flat = ~torch.isfinite(scale)
    lo = lo.masked_fill(flat, 0.0)
    scale = scale.masked_fill(flat, 1.0)
    x.copy_(_to_uint8(x.float().sub_(lo).mul_(scale).clamp_(0, 255)))


def _equalize(x, mag, signed):
    s, c, h, w = x.shape
    flat = x.reshape(s * c, h * w).long()
    offsets = torch.arange(s * c, device=x.device).unsqueeze(1) * 256
    index = (flat + offsets).view(-1)
    # scatter_add_ rather than bincount, which synchronises with the host on CUDA
    hist = torch.zeros(s * c * 256, dtype=torch.long, device=x.device)
    hist = hist.scatter_add_(0, index, torch.ones_like(index)).view(s * c, 256)
    # torchvision: step = (count of all but the last non-zero bin) // 255; step 0 = unchanged
    last = 255 - torch.flip(hist > 0, [1]).long().argmax(1)
    last_count = hist.gather(1, last.unsqueeze(1)).squeeze(1)
    step = torch.div(hist.sum(1) - last_count, 255, rounding_mode="floor")
    safe = step.clamp(min=1).unsqueeze(1)
    lut = torch.div(
        hist.cumsum(1) + torch.div(safe, 2, rounding_mode="floor"), safe, rounding_mode="floor"
    )
    lut = F.pad(lut, [1, 0])[:, :-1].clamp(0, 255)
    lut = torch.where((step == 0).unsqueeze(1), torch.arange(256, device=x.device), lut)
    x.copy_(lut.to(torch.uint8).gather(1, flat).view(s, c, h, w))


_APPLY = {
    "shear_x": lambda x, mag, signed: _warp(x, mag, signed, "shear_x"),
    "shear_y": lambda x, mag, signed: _warp(x, mag, signed, "shear_y"),
    "translate_x": lambda x, mag, signed: _translate(x, mag, signed, -1),
    "translate_y": lambda x, mag, signed: _translate(x, mag, signed, -2),
    "rotate": lambda x, mag, signed: _warp(x, mag, signed, "rotate"),
    "brightness": _brightness,
    "color": _color,
    "contrast": _contrast,
    "sharpness": _sharpness,
    "posterize": _posterize,
    "solarize": _solarize,
    "auto_contrast": _auto_contrast,
    "equalize": _equalize,
}
