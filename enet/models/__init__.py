"""The model registry: `create_model(name, num_classes, **options)` and `list_models()`."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import EnetError
from . import efficientnet, xresnet


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows of a model before building it."""

    name: str
    family: str  # "efficientnet" or "xresnet"
    resolution: int  # default input size, pixels
    dropout: float  # default dropout before the classifier
    builder: Callable[..., nn.Module]
    # bf16 autocast measured faster than fp32 on a CPU with native bf16 (`--precision auto`
    # picks it there): XResNet's dense convolutions yes (1.4-1.8x), EfficientNet's depthwise
    # ones no (0.9x); `enet bench model --device cpu --precision bf16` measures it (README)
    cpu_bf16_faster: bool = False
    # The options `enet train` builds the model with where the config leaves them unset: the
    # family's short-budget recipe (configs/efficientnet_b0.yaml; docs/results/study-b0-128-5ep/).
    # A bare `enet train --model efficientnet_b0` with torchvision's own initialisation, dropout
    # and drop-connect sat at chance after an epoch on Imagewoof (issue 33).
    train_defaults: tuple[tuple[str, object], ...] = ()

    @property
    def options(self) -> tuple[str, ...]:
        """The keyword options `create_model` accepts for this model."""
        params = inspect.signature(self.builder).parameters.values()
        return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)

    def params(self, num_classes: int = 1000, **options: object) -> int:
        """Number of parameters (weights and biases, not BatchNorm buffers) of the model built
        with these `create_model` options (self-attention adds some; the defaults' otherwise)."""
        return _count_params(self.name, num_classes, _frozen(options))

    def gflops(
        self, resolution: int | None = None, num_classes: int = 1000, **options: object
    ) -> float:
        """Forward GFLOPs for one image (a multiply-add counts as 2 FLOPs), options as `params`."""
        return _count_gflops(
            self.name, resolution or self.resolution, num_classes, _frozen(options)
        )


_REGISTRY: dict[str, ModelInfo] = {}
for _name, _v in efficientnet.VARIANTS.items():
    _REGISTRY[_name] = ModelInfo(
        _name,
        "efficientnet",
        _v.resolution,
        _v.dropout,
        functools.partial(efficientnet.build_efficientnet, _name),
        train_defaults=(
            ("dropout", 0.0),
            ("drop_connect_rate", 0.0),
            ("zero_init_residual", True),
            ("fan_in_head", True),
        ),
    )
for _name in xresnet.VARIANTS:
    _REGISTRY[_name] = ModelInfo(
        _name,
        "xresnet",
        xresnet.DEFAULT_RESOLUTION,
        0.0,
        functools.partial(xresnet.build_xresnet, _name),
        cpu_bf16_faster=True,
    )


def list_models() -> list[str]:
    """Names of every registered model, in table order."""
    return list(_REGISTRY)


def describe_models(num_classes: int = 1000) -> list[dict]:
    """`enet models`: every model's family, parameters, GFLOPs at its resolution, defaults."""
    return [
        dict(
            name=name,
            family=info.family,
            params=info.params(num_classes),
            gflops=round(info.gflops(num_classes=num_classes), 3),
            resolution=info.resolution,
            dropout=info.dropout,
        )
        for name, info in _REGISTRY.items()
    ]


def get_model_info(name: str) -> ModelInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise EnetError(f"unknown model {name!r}; known models: {', '.join(_REGISTRY)}") from None


def create_model(name: str, num_classes: int = 1000, **options: object) -> nn.Module:
    """Build a registered model with freshly initialised weights.

    Options (see `ModelInfo.options`): EfficientNet takes `drop_connect_rate`, `dropout`,
    `msd_samples`, `zero_init_residual`, `tf_init`, `fan_in_head`; XResNet takes `act`, `sa`,
    `pool`, `dropout`, `msd_samples`. Unknown options are an error.
    """
    info = get_model_info(name)
    unknown = sorted(set(options) - set(info.options))
    if unknown:
        raise EnetError(
            f"model {name} has no option {unknown[0]!r}; its options: {', '.join(info.options)}"
        )
    if num_classes < 1:
        raise EnetError(f"num_classes must be >= 1, got {num_classes}")
    try:
        return info.builder(num_classes, **options)
    except ValueError as err:
        raise EnetError(f"model {name}: {err}") from None


def _frozen(options: dict) -> tuple:
    """Options as a hashable cache key."""
    return tuple(sorted(options.items()))


def num_params(model: torch.nn.Module) -> int:
    """Parameters of a model as built (buffers not counted)."""
    return sum(p.numel() for p in model.parameters())


@functools.cache
def _count_params(name: str, num_classes: int, options: tuple = ()) -> int:
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        return num_params(create_model(name, num_classes, **dict(options)))


@functools.cache
def _count_gflops(name: str, resolution: int, num_classes: int, options: tuple = ()) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = create_model(name, num_classes, **dict(options)).eval()
        image = torch.empty(1, 3, resolution, resolution)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(image)
    return counter.get_total_flops() / 1e9


__all__ = ["ModelInfo", "create_model", "describe_models", "get_model_info", "list_models"]
