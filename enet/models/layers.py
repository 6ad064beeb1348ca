"""Building blocks shared by the model families: conv-BN-act, squeeze-excite, drop-connect, heads.

Blocks are code; which block goes where (and with what drop-connect rate) is decided by each
family's builder from its table of data.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from ..choices import ACTIVATIONS


def make_act(name: str) -> nn.Module:
    """An activation module by name (in place: every block's activation input is a fresh tensor)."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "silu":
        return nn.SiLU(inplace=True)
    if name == "mish":
        return nn.Mish(inplace=True)
    raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of `divisor`, never below 90% of the unrounded value."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class ConvBnAct(nn.Sequential):
    """k x k convolution (no bias, 'same' padding for odd k), BatchNorm, optional activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        act: str | None = "silu",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        zero_init_bn: bool = False,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=(kernel_size - 1) // 2,
            groups=groups,
            bias=False,
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum)
        if zero_init_bn:
            # The block starts as its shortcut alone (Goyal et al. 2017; fastai's BatchZero).
            nn.init.zeros_(self.bn.weight)
        if act is not None:
            self.act = make_act(act)


class SqueezeExcite(nn.Module):
    """Channel attention: mean over H, W -> 1x1 reduce -> act -> 1x1 expand -> sigmoid gate."""

    def __init__(self, channels: int, squeeze_channels: int, act: str = "silu") -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze_channels, 1)
        self.act = make_act(act)
        self.expand = nn.Conv2d(squeeze_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A plain mean rather than AdaptiveAvgPool2d: same value, cheaper in channels_last and
        # under autocast.
        scale = x.mean((2, 3), keepdim=True)  # (N, C, 1, 1)
        scale = self.expand(self.act(self.reduce(scale)))
        return x * torch.sigmoid(scale)


def drop_connect(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Per-sample stochastic depth: zero the whole branch of a sample with probability `rate`.

    Survivors are scaled by 1 / (1 - rate), so the expected value equals the eval-mode output.
    """
    if not training or rate == 0.0:
        return x
    keep = 1.0 - rate
    mask = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device)
    mask.bernoulli_(keep).div_(keep)
    return x * mask


class ClassifierHead(nn.Module):
    """Global average pool, flatten, dropout, linear; Multi-Sample Dropout when msd_samples > 1.

    Multi-Sample Dropout (Inoue 2019, arXiv 1905.09788): K dropout masks on the same pooled
    features, each through the one shared linear layer, and the K logits averaged. The layer is
    linear, so the mean of the K logits equals the layer applied to the mean of the K masked
    feature vectors: one matrix multiply instead of K. In eval mode dropout is the identity and
    the head is exactly the plain one.
    """

    def __init__(
        self, in_features: int, num_classes: int, dropout: float = 0.0, msd_samples: int = 1
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if msd_samples < 1:
            raise ValueError(f"msd_samples must be >= 1, got {msd_samples}")
        self.dropout = dropout
        self.msd_samples = msd_samples
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.mean((2, 3))  # (N, C)
        if self.training and self.dropout > 0.0 and self.msd_samples > 1:
            samples = x.unsqueeze(0).expand(self.msd_samples, *x.shape)  # (K, N, C)
            x = F.dropout(samples, self.dropout, training=True).mean(0)
        else:
            x = F.dropout(x, self.dropout, training=self.training)
        return self.fc(x)

    def extra_repr(self) -> str:
        return f"dropout={self.dropout}, msd_samples={self.msd_samples}"


class SimpleSelfAttention(nn.Module):
    """fastai's SimpleSelfAttention (sym=False, ks=1): o = gamma * (x x^T) conv(x) + x.

    x is viewed as (N, C, H*W); conv is a 1x1 Conv1d without bias under spectral normalisation
    (one power iteration per training forward, as fastai's `spectral_norm`); gamma starts at 0,
    so the layer starts as the identity. Parameters: C*C + 1.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        conv = nn.Conv1d(channels, channels, 1, bias=False)
        nn.init.kaiming_normal_(conv.weight)
        self.conv = nn.utils.parametrizations.spectral_norm(conv)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape
        flat = x.reshape(*size[:2], -1)  # (N, C, HW)
        conv = self.conv(flat)
        xxt = torch.bmm(flat, flat.transpose(1, 2))  # (N, C, C)
        out = self.gamma * torch.bmm(xxt, conv) + flat
        return out.reshape(size)


class MaxBlurPool(nn.Module):
    """Anti-aliased max-pooling (Zhang 2019, "Making Convolutional Networks Shift-Invariant
    Again"), as kornia's MaxBlurPool2D(3, ceil_mode=True): a 2x2 max-pool with stride 1, then a
    fixed 3x3 binomial blur ([1, 2, 1] outer [1, 2, 1] / 16) applied with the stride. No
    parameters; the kernel is a non-persistent buffer, so checkpoints do not change.
    """

    def __init__(self, stride: int = 2) -> None:
        super().__init__()
        self.stride = stride
        row = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("kernel", (row[:, None] * row[None, :] / 16).view(1, 1, 3, 3), False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(x, kernel_size=2, stride=1, ceil_mode=True)
        channels = x.shape[1]
        kernel = self.kernel.to(x.dtype).expand(channels, 1, 3, 3)
        return F.conv2d(x, kernel, padding=1, stride=self.stride, groups=channels)


class MaxBlurPoolPyr(nn.Module):
    """kornia <= 0.4's MaxBlurPool2d(3, ceil_mode=True), the one fastai's 2020 Imagenette script
    (train_imagenette.py, `blurpool`) put in place of the stem's max-pool, before kornia's pull
    request 894 (March 2021) rewrote it as `MaxBlurPool` above: a 3x3 max-pool with stride 1
    and padding 1, then kornia's `pyrdown`, a 5x5 Gaussian ([1, 4, 6, 4, 1] outer itself / 256,
    the borders reflected) and a bilinear 2x downsampling (the mean of each 2x2 block). A wider
    blur than `MaxBlurPool`'s. No parameters; the kernel is a non-persistent buffer.
    """

    def __init__(self) -> None:
        super().__init__()
        row = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
        self.register_buffer("kernel", (row[:, None] * row[None, :] / 256).view(1, 1, 5, 5), False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(x, kernel_size=3, stride=1, padding=1, ceil_mode=True)
        channels = x.shape[1]
        kernel = self.kernel.to(x.dtype).expand(channels, 1, 5, 5)
        x = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=channels)
        return F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)


class ModelProtocol:
    """The part of timm's model protocol enet relies on (models/__init__: `classifier_name`,
    `set_grad_checkpointing`), for enet's families: a `stages` Sequential and a
    `ClassifierHead` at `head`."""

    def get_classifier(self) -> nn.Module:
        return self.head.fc  # type: ignore[attr-defined]

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.stages.checkpointed = enable  # type: ignore[attr-defined]


class Stages(nn.Sequential):
    """A model's stages in order; with gradient checkpointing on (`checkpointed = True`, in
    training) each stage keeps only its input and recomputes its activations in the backward
    pass: less memory for one more forward per step. RNG state is restored for the
    recomputation, so drop-connect draws the same masks."""

    checkpointed = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.checkpointed and self.training and torch.is_grad_enabled()):
            return super().forward(x)
        for stage in self:
            x = torch.utils.checkpoint.checkpoint(stage, x, use_reentrant=False)
        return x
