"""XResNet as fastai v2 builds it ("Bag of Tricks", He et al. 2019, arXiv 1812.01187).

ResNet-C stem of three 3x3 convs, ResNet-D shortcut (2x2 average pool, then 1x1 conv), the last
BatchNorm of every block initialised to zero, activation after the sum. Layer counts are data.
Parameter counts equal fastai's `xresnetN(n_out=...)`; tests check them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layers import ClassifierHead, ConvBnAct, make_act


class ResBlock(nn.Module):
    """conv path (basic: 3x3, 3x3; bottleneck: 1x1, 3x3, 1x1) + id path, then activation."""

    def __init__(
        self, expansion: int, in_channels: int, channels: int, stride: int, act: str
    ) -> None:
        super().__init__()
        out_channels = channels * expansion
        if expansion == 1:
            self.convs = nn.Sequential(
                ConvBnAct(in_channels, channels, 3, stride, act=act),
                ConvBnAct(channels, out_channels, 3, act=None, zero_init_bn=True),
            )
        else:
            self.convs = nn.Sequential(
                ConvBnAct(in_channels, channels, 1, act=act),
                ConvBnAct(channels, channels, 3, stride, act=act),
                ConvBnAct(channels, out_channels, 1, act=None, zero_init_bn=True),
            )
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


class XResNet(nn.Module):
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
    ) -> None:
        super().__init__()
        stem_sizes = (3, *stem_channels)
        self.stem = nn.Sequential(
            *[
                ConvBnAct(stem_sizes[i], stem_sizes[i + 1], 3, stride=2 if i == 0 else 1, act=act)
                for i in range(3)
            ],
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        widths = (64, 128, 256, 512)
        stages = []
        in_channels = stem_channels[-1]
        for i, (width, count) in enumerate(zip(widths, layers, strict=True)):
            blocks = []
            for b in range(count):
                stride = 2 if (i > 0 and b == 0) else 1
                blocks.append(ResBlock(expansion, in_channels, width, stride, act))
                in_channels = width * expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = ClassifierHead(in_channels, num_classes, dropout, msd_samples)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # fastai's init_cnn: Kaiming-normal (fan_in) weights, zero biases. BatchNorm weights stay
        # as the blocks set them (1, or 0 for each block's last).
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


VARIANTS = {
    "xresnet18": Variant(1, (2, 2, 2, 2)),
    "xresnet34": Variant(1, (3, 4, 6, 3)),
    "xresnet50": Variant(4, (3, 4, 6, 3)),
    "xresnet101": Variant(4, (3, 4, 23, 3)),
    "xresnet152": Variant(4, (3, 8, 36, 3)),
}
DEFAULT_RESOLUTION = 224


def build_xresnet(
    name: str,
    num_classes: int = 1000,
    *,
    act: str = "relu",
    dropout: float = 0.0,
    msd_samples: int = 1,
) -> XResNet:
    variant = VARIANTS[name]
    return XResNet(variant.expansion, variant.layers, num_classes, act, dropout, msd_samples)
