"""EfficientNet B0-B7 (Tan & Le 2019, arXiv 1905.11946).

The B0 stage table (the paper's Table 1) and the per-variant compound-scaling coefficients are
data; MBConv is the only block. The builder scales channels and depth and hands every block its
own drop-connect rate. Layer for layer the network equals torchvision's `efficientnet_bN`
(`load_torchvision_weights` maps its state dict onto ours; tests check outputs agree).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .layers import (
    ClassifierHead,
    ConvBnAct,
    ModelProtocol,
    SqueezeExcite,
    Stages,
    drop_connect,
    make_divisible,
)

# ---------------------------------------------------------------------------------------------
# blocks


class MBConv(nn.Module):
    """Mobile inverted bottleneck with squeeze-excite (MobileNetV2 + MnasNet)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        expand_ratio: int,
        kernel_size: int,
        stride: int,
        drop_connect_rate: float,
        bn_eps: float,
        bn_momentum: float,
    ) -> None:
        super().__init__()
        mid_channels = make_divisible(in_channels * expand_ratio)
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        # expand: 1x1 to the wide space (absent in the first stage, whose ratio is 1)
        self.expand = (
            ConvBnAct(in_channels, mid_channels, 1, **bn)
            if mid_channels != in_channels
            else nn.Identity()
        )
        # depthwise: k x k, one filter per channel, carries the stride
        self.depthwise = ConvBnAct(
            mid_channels, mid_channels, kernel_size, stride, groups=mid_channels, **bn
        )
        # squeeze-excite: reduces to a quarter of the block's *input* channels
        self.se = SqueezeExcite(mid_channels, max(1, in_channels // 4))
        # project: 1x1 back to the narrow space, linear (no activation)
        self.project = ConvBnAct(mid_channels, out_channels, 1, act=None, **bn)
        self.has_shortcut = stride == 1 and in_channels == out_channels
        self.drop_connect_rate = drop_connect_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.depthwise(self.expand(x))))
        if self.has_shortcut:
            out = drop_connect(out, self.drop_connect_rate, self.training) + x
        return out

    def extra_repr(self) -> str:
        return f"drop_connect_rate={self.drop_connect_rate:.4f}"


# ---------------------------------------------------------------------------------------------
# model


class EfficientNet(ModelProtocol, nn.Module):
    """stem -> 7 stages of MBConv -> 1x1 head conv -> pooled classifier."""

    def __init__(
        self,
        stages: list[list[MBConv]],
        stem_channels: int,
        head_channels: int,
        num_classes: int,
        dropout: float,
        msd_samples: int,
        bn_eps: float,
        bn_momentum: float,
        zero_init_residual: bool = False,
        tf_init: bool = False,
        fan_in_head: bool = False,
    ) -> None:
        super().__init__()
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        self.zero_init_residual = zero_init_residual
        self.tf_init = tf_init
        self.fan_in_head = fan_in_head
        self.stem = ConvBnAct(3, stem_channels, 3, stride=2, **bn)
        self.stages = Stages(*[nn.Sequential(*blocks) for blocks in stages])
        last_channels = stages[-1][-1].project.conv.out_channels
        self.head_conv = ConvBnAct(last_channels, head_channels, 1, **bn)
        self.head = ClassifierHead(head_channels, num_classes, dropout, msd_samples)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # torchvision's initialisation: Kaiming-normal with fan-out out_channels * k * k, which
        # for a depthwise conv counts every channel. The TF reference (and timm) counts one
        # filter's own outputs (k * k): `tf_init`, depthwise weights ~sqrt(channels) larger.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if self.tf_init:
                    fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                    nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
                else:
                    nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                # torchvision and the TF reference bound the classifier by its outputs, sized
                # for 1000 classes; with 10 the first logits have a std near 2. `fan_in_head`
                # bounds it by its inputs as nn.Linear's own default does (logits near 0).
                fan = m.in_features if self.fan_in_head else m.out_features
                bound = 1.0 / math.sqrt(fan)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)
        if self.zero_init_residual:
            # Goyal et al. 2017 (as torchvision's ResNet option and fastai's XResNet do): each
            # residual block's last BatchNorm starts at zero, so the block starts as the identity.
            for m in self.modules():
                if isinstance(m, MBConv) and m.has_shortcut:
                    nn.init.zeros_(m.project.bn.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head_conv(self.stages(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


# ---------------------------------------------------------------------------------------------
# variant tables


@dataclass(frozen=True)
class Stage:
    """One row of the paper's Table 1 (B0): MBConv{expand_ratio}, k x k, repeated."""

    expand_ratio: int
    kernel_size: int
    stride: int  # of the stage's first block; the others have stride 1
    in_channels: int
    out_channels: int
    repeats: int


B0_STAGES = (
    Stage(1, 3, 1, 32, 16, 1),
    Stage(6, 3, 2, 16, 24, 2),
    Stage(6, 5, 2, 24, 40, 2),
    Stage(6, 3, 2, 40, 80, 3),
    Stage(6, 5, 1, 80, 112, 3),
    Stage(6, 5, 2, 112, 192, 4),
    Stage(6, 3, 1, 192, 320, 1),
)


@dataclass(frozen=True)
class Variant:
    """Compound-scaling coefficients of one EfficientNet variant."""

    width: float  # channel multiplier
    depth: float  # repeat multiplier (ceil)
    resolution: int  # default input size, pixels
    dropout: float  # before the classifier
    # BatchNorm settings as torchvision has them: its B5-B7 carry the TF reference's values.
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1


_TF_BN = dict(bn_eps=1e-3, bn_momentum=0.01)
VARIANTS = {
    "efficientnet_b0": Variant(1.0, 1.0, 224, 0.2),
    "efficientnet_b1": Variant(1.0, 1.1, 240, 0.2),
    "efficientnet_b2": Variant(1.1, 1.2, 260, 0.3),
    "efficientnet_b3": Variant(1.2, 1.4, 300, 0.3),
    "efficientnet_b4": Variant(1.4, 1.8, 380, 0.4),
    "efficientnet_b5": Variant(1.6, 2.2, 456, 0.4, **_TF_BN),
    "efficientnet_b6": Variant(1.8, 2.6, 528, 0.5, **_TF_BN),
    "efficientnet_b7": Variant(2.0, 3.1, 600, 0.5, **_TF_BN),
}


# ---------------------------------------------------------------------------------------------
# builder


def build_efficientnet(
    name: str,
    num_classes: int = 1000,
    *,
    drop_connect_rate: float = 0.2,
    dropout: float | None = None,
    msd_samples: int = 1,
    zero_init_residual: bool = False,
    tf_init: bool = False,
    fan_in_head: bool = False,
) -> EfficientNet:
    """Scale the B0 table by the variant's width and depth and build the network.

    Block i of n (counted over the whole network from 0) gets drop-connect rate
    `drop_connect_rate * i / n`: the first block is never dropped, deeper ones more often.
    `zero_init_residual` starts every block with a shortcut as the identity; `tf_init` draws
    depthwise weights as the TF reference does; `fan_in_head` bounds the classifier's weights by
    its inputs, not its outputs (all off: torchvision's initialisation).
    """
    variant = VARIANTS[name]
    if not 0.0 <= drop_connect_rate < 1.0:
        raise ValueError(f"drop_connect_rate must be in [0, 1), got {drop_connect_rate}")
    stages = [
        Stage(
            s.expand_ratio,
            s.kernel_size,
            s.stride,
            make_divisible(s.in_channels * variant.width),
            make_divisible(s.out_channels * variant.width),
            int(math.ceil(s.repeats * variant.depth)),
        )
        for s in B0_STAGES
    ]
    total_blocks = sum(s.repeats for s in stages)
    blocks: list[list[MBConv]] = []
    block_index = 0
    for s in stages:
        stage_blocks = []
        for r in range(s.repeats):
            stage_blocks.append(
                MBConv(
                    s.in_channels if r == 0 else s.out_channels,
                    s.out_channels,
                    s.expand_ratio,
                    s.kernel_size,
                    s.stride if r == 0 else 1,
                    drop_connect_rate * block_index / total_blocks,
                    variant.bn_eps,
                    variant.bn_momentum,
                )
            )
            block_index += 1
        blocks.append(stage_blocks)
    return EfficientNet(
        blocks,
        stem_channels=stages[0].in_channels,
        head_channels=4 * stages[-1].out_channels,
        num_classes=num_classes,
        dropout=variant.dropout if dropout is None else dropout,
        msd_samples=msd_samples,
        bn_eps=variant.bn_eps,
        bn_momentum=variant.bn_momentum,
        zero_init_residual=zero_init_residual,
        tf_init=tf_init,
        fan_in_head=fan_in_head,
    )


# ---------------------------------------------------------------------------------------------
# torchvision weights


def _conv_bn_keys(ours: str, theirs: str) -> dict[str, str]:
    names = ["conv.weight"] + [
        f"bn.{p}" for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    ]
    theirs_names = ["0.weight"] + [f"1.{n[3:]}" for n in names[1:]]
    return {f"{ours}.{a}": f"{theirs}.{b}" for a, b in zip(names, theirs_names, strict=True)}


def torchvision_key_map(model: EfficientNet) -> dict[str, str]:
    """Our state-dict key -> torchvision's, for the same variant."""
    mapping = _conv_bn_keys("stem", "features.0")
    for s, stage in enumerate(model.stages):
        for b, block in enumerate(stage):
            ours, theirs = f"stages.{s}.{b}", f"features.{s + 1}.{b}.block"
            j = 0
            if isinstance(block.expand, ConvBnAct):
                mapping.update(_conv_bn_keys(f"{ours}.expand", f"{theirs}.0"))
                j = 1
            mapping.update(_conv_bn_keys(f"{ours}.depthwise", f"{theirs}.{j}"))
            for p in ("weight", "bias"):
                mapping[f"{ours}.se.reduce.{p}"] = f"{theirs}.{j + 1}.fc1.{p}"
                mapping[f"{ours}.se.expand.{p}"] = f"{theirs}.{j + 1}.fc2.{p}"
            mapping.update(_conv_bn_keys(f"{ours}.project", f"{theirs}.{j + 2}"))
    mapping.update(_conv_bn_keys("head_conv", f"features.{len(model.stages) + 1}"))
    mapping["head.fc.weight"] = "classifier.1.weight"
    mapping["head.fc.bias"] = "classifier.1.bias"
    return mapping


def load_torchvision_weights(model: EfficientNet, state_dict: dict[str, torch.Tensor]) -> None:
    """Copy a torchvision `efficientnet_bN` state dict into `model` (same variant), strictly.

    Every tensor must be present with the same shape; anything missing or left over is an error.
    """
    mapping = torchvision_key_map(model)
    ours = model.state_dict()
    if set(ours) != set(mapping):
        raise ValueError("internal: the key map does not cover the model")
    extra = set(state_dict) - set(mapping.values())
    missing = [theirs for theirs in mapping.values() if theirs not in state_dict]
    if missing or extra:
        raise ValueError(
            f"not a matching torchvision EfficientNet state dict: {len(missing)} keys missing "
            f"(e.g. {missing[:2]}), {len(extra)} unexpected (e.g. {sorted(extra)[:2]})"
        )
    converted = {}
    for key, theirs in mapping.items():
        tensor = state_dict[theirs]
        if tensor.shape != ours[key].shape:
            raise ValueError(
                f"shape mismatch for {theirs}: {tuple(tensor.shape)} vs {tuple(ours[key].shape)}"
            )
        converted[key] = tensor
    model.load_state_dict(converted, strict=True)
