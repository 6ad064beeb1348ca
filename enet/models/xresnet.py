"""XResNet as fastai v2 builds it ("Bag of Tricks", He et al. 2019, arXiv 1812.01187).

ResNet-C stem of three 3x3 convs, ResNet-D shortcut (2x2 average pool, then 1x1 conv), the last
BatchNorm of every block initialised to zero, activation after the sum. Layer counts are data.
Parameter counts equal fastai's `xresnetN(n_out=...)`; tests check them.

The family's variants are the same network with other blocks, as fastai's `XResNet(block, ...)`:
ResNeXt (grouped 3x3 convs, 32 groups of width 4 per 64 channels), squeeze-excite after the
conv path (reduction 16), or both (`xse_resnext*`, the Imagenette leaderboard's model). Options
on every variant: `act` (relu, silu, mish), `sa` (fastai's simple self-attention in the last
block of the first stage, where fastai puts it) and `pool` ("max"; "maxblur" or "maxblur-pyr":
the stem's max-pool, the network's one max-pool, anti-aliased as the leaderboard's MaxBlurPool
entries did, by today's kornia or by kornia 0.4, which fastai's 2020 Imagenette script used).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..choices import POOLS
from .layers import (
    ClassifierHead,
    ConvBnAct,
    MaxBlurPool,
    MaxBlurPoolPyr,
    ModelProtocol,
    SimpleSelfAttention,
    SqueezeExcite,
    Stages,
    make_act,
)


@dataclass(frozen=True)
class BlockKind:
    """What a variant's blocks are: fastai's ResBlock, SEBlock, SEResNeXtBlock (and ResNeXt)."""

    groups: int = 1  # groups of the 3x3 conv (32: ResNeXt)
    reduction: int = 0  # squeeze-excite reduction (0: none)
    se_widths: bool = False  # fastai's SEBlock: hidden widths nf * 2, then nf * expansion

    def hidden(self, expansion: int, width: int) -> tuple[int, int]:
        """(nh1, nh2): widths inside the block for a stage `width` (64, 128, 256, 512)."""
        if self.groups > 1:  # ResNeXt: 4 channels per group for every 64 of the stage width
            nh = math.floor(width * 4 / 64) * self.groups
            return nh, nh
        if self.se_widths:
            return width * 2, width * expansion
        return width, width


class ResBlock(nn.Module):
    """conv path (basic: 3x3, 3x3; bottleneck: 1x1, 3x3, 1x1) [+ SE] [+ self-attention] + id
    path, then activation."""

    def __init__(
        self,
        expansion: int,
        in_channels: int,
        channels: int,
        stride: int,
        act: str,
        kind: BlockKind = BlockKind(),
        sa: bool = False,
    ) -> None:
        super().__init__()
        out_channels = channels * expansion
        nh1, nh2 = kind.hidden(expansion, channels)
        g = kind.groups
        if expansion == 1:
            convs = [
                ConvBnAct(in_channels, nh2, 3, stride, groups=g, act=act),
                ConvBnAct(nh2, out_channels, 3, act=None, zero_init_bn=True),
            ]
        else:
            convs = [
                ConvBnAct(in_channels, nh1, 1, act=act),
                ConvBnAct(nh1, nh2, 3, stride, groups=g, act=act),
                ConvBnAct(nh2, out_channels, 1, act=None, zero_init_bn=True),
            ]
        if kind.reduction:
            # fastai's SEModule: hidden width rounded up to a multiple of 8
            squeeze = math.ceil(out_channels // kind.reduction / 8) * 8
            convs.append(SqueezeExcite(out_channels, squeeze, act=act))
        if sa:
            convs.append(SimpleSelfAttention(out_channels))
        self.convs = nn.Sequential(*convs)
        shortcut: list[nn.Module] = []
        if stride != 1:
            # ResNet-D: average first so that the 1x1 conv sees every pixel, not one in four.
            shortcut.append(nn.AvgPool2d(stride, ceil_mode=True))
        if in_channels != out_channels:
            shortcut.append(ConvBnAct(in_channels, out_channels, 1, act=None))
        self.shortcut = nn.Sequential(*shortcut)
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.convs(x) + self.shortcut(x))


def _stem_pool(pool: str) -> nn.Module:
    """The stem's downsampling pool: fastai's max-pool or one of the two MaxBlurPools."""
    if pool == "maxblur":
        return MaxBlurPool(2)
    if pool == "maxblur-pyr":
        return MaxBlurPoolPyr()
    return nn.MaxPool2d(3, stride=2, padding=1)


class XResNet(ModelProtocol, nn.Module):
    """stem (3 convs + max-pool) -> 4 stages of ResBlocks -> pooled classifier."""

    def __init__(
        self,
        expansion: int,
        layers: tuple[int, ...],
        num_classes: int = 1000,
        act: str = "relu",
        dropout: float = 0.0,
        msd_samples: int = 1,
        stem_channels: tuple[int, int, int] = (32, 32, 64),
        kind: BlockKind = BlockKind(),
        sa: bool = False,
        pool: str = "max",
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"unknown pool {pool!r}; choose one of {', '.join(POOLS)}")
        stem_sizes = (3, *stem_channels)
        self.stem = nn.Sequential(
            *[
                ConvBnAct(stem_sizes[i], stem_sizes[i + 1], 3, stride=2 if i == 0 else 1, act=act)
                for i in range(3)
            ],
            _stem_pool(pool),
        )
        widths = (64, 128, 256, 512)
        stages = []
        in_channels = stem_channels[-1]
        for i, (width, count) in enumerate(zip(widths, layers, strict=True)):
            blocks = []
            for b in range(count):
                stride = 2 if (i > 0 and b == 0) else 1
                attend = sa and i == 0 and b == count - 1  # fastai: the first stage's last block
                blocks.append(ResBlock(expansion, in_channels, width, stride, act, kind, sa=attend))
                in_channels = width * expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = Stages(*stages)
        self.head = ClassifierHead(in_channels, num_classes, dropout, msd_samples)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # fastai's init_cnn: Kaiming-normal (fan_in) weights, zero biases. BatchNorm weights stay
        # as the blocks set them (1, or 0 for each block's last); self-attention's spectrally
        # normalised conv keeps its own Kaiming init.
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


@dataclass(frozen=True)
class Variant:
    expansion: int  # 1: basic blocks, 4: bottlenecks
    layers: tuple[int, ...]  # blocks per stage
    kind: BlockKind = BlockKind()


RESNEXT = BlockKind(groups=32)
SE = BlockKind(reduction=16, se_widths=True)
SE_RESNEXT = BlockKind(groups=32, reduction=16)
_DEPTHS = {
    18: (1, (2, 2, 2, 2)),
    34: (1, (3, 4, 6, 3)),
    50: (4, (3, 4, 6, 3)),
    101: (4, (3, 4, 23, 3)),
    152: (4, (3, 8, 36, 3)),
}
VARIANTS = {f"xresnet{d}": Variant(*_DEPTHS[d]) for d in (18, 34, 50, 101, 152)}
for _prefix, _kind in (("xresnext", RESNEXT), ("xse_resnet", SE), ("xse_resnext", SE_RESNEXT)):
    for _depth in (18, 34, 50):
        VARIANTS[f"{_prefix}{_depth}"] = Variant(*_DEPTHS[_depth], _kind)
DEFAULT_RESOLUTION = 224


def build_xresnet(
    name: str,
    num_classes: int = 1000,
    *,
    act: str = "relu",
    dropout: float = 0.0,
    msd_samples: int = 1,
    sa: bool = False,
    pool: str = "max",
) -> XResNet:
    v = VARIANTS[name]
    return XResNet(
        v.expansion, v.layers, num_classes, act, dropout, msd_samples, kind=v.kind, sa=sa, pool=pool
    )
