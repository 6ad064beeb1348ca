"""The model registry: `create_model(name, num_classes, **options)` and `list_models()`, for
enet's own families and for the zoos' models (`torchvision:NAME`, `timm:NAME`; models/zoo.py).

The model contract the loop, initialisation, export and bench rely on, whatever the family:
`get_model_info(name)` (family, default resolution and evaluation crop, parameter and FLOP
counts), `create_model`, `classifier_name(model)` (the classifier a fine-tune replaces) and
`set_grad_checkpointing(model, name)`. timm's model protocol is the anchor (`get_classifier`,
`set_grad_checkpointing`); enet's families implement it (layers.ModelProtocol)."""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import EnetError
from . import efficientnet, xresnet, zoo


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows of a model before building it."""

    name: str
    family: str  # "efficientnet", "xresnet", or a zoo: "torchvision", "timm"
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
    crop_pct: float = 0.875  # default evaluation centre crop (data.crop_pct)
    defaults_from: str = "enet's defaults"  # where resolution, crop_pct, mean and std came from
    # the input normalisation the model expects (RGB, 0-1 scale; data.mean, data.std): a zoo's
    # metadata where it has one, None for ImageNet's (settings.resolve_normalization)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @property
    def is_zoo(self) -> bool:
        return self.family in zoo.ZOOS

    @property
    def options(self) -> tuple[str, ...]:
        """The keyword options `create_model` accepts for this model (a zoo model's constructor
        decides for itself: empty)."""
        if self.is_zoo:
            return ()
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


# `enet models --zoo`: counting builds each model on the meta device (about 0.1-1 s each), so
# the counts come for a filtered list of at most this many (timm alone has over 1,300 names)
ZOO_COUNT_LIMIT = 40


def describe_zoo(zoo_name: str, pattern: str | None, num_classes: int = 1000) -> list[dict]:
    """`enet models --zoo`: a zoo's prefixed names matching a glob; with their counts, default
    resolution and crop when at most ZOO_COUNT_LIMIT match."""
    names = zoo.matching(zoo_name, pattern)
    if len(names) > ZOO_COUNT_LIMIT:
        return [dict(name=name) for name in names]
    rows = []
    for name in names:
        info = get_model_info(name)
        try:
            gflops = round(info.gflops(num_classes=num_classes), 3)
        except EnetError:  # needs options (an input size of its own) to build or run
            gflops = None
        rows.append(
            dict(
                name=name,
                family=info.family,
                params=info.params(num_classes),
                gflops=gflops,
                resolution=info.resolution,
                crop_pct=info.crop_pct,
            )
        )
    return rows


def get_model_info(name: str) -> ModelInfo:
    """What the registry knows of a model; an unknown name is one line with the closest names."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if zoo.split(name) is not None:
        return _zoo_info(name)
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.6)
    hint = f"closest: {', '.join(close)}" if close else f"known models: {', '.join(_REGISTRY)}"
    raise EnetError(
        f"unknown model {name!r}; {hint} (or torchvision:NAME, timm:NAME: enet models --zoo)"
    )


@functools.cache
def _zoo_info(name: str) -> ModelInfo:
    zoo.check_name(name)
    defaults = zoo.defaults(name)
    return ModelInfo(
        name,
        zoo.split(name)[0],  # type: ignore[index]
        defaults.resolution,
        0.0,
        functools.partial(zoo.build, name),
        crop_pct=defaults.crop_pct,
        defaults_from=defaults.source,
        mean=defaults.mean,
        std=defaults.std,
    )


def create_model(name: str, num_classes: int = 1000, **options: object) -> nn.Module:
    """Build a registered model with freshly initialised weights.

    Options (see `ModelInfo.options`): EfficientNet takes `drop_connect_rate`, `dropout`,
    `msd_samples`, `zero_init_residual`, `tf_init`, `fan_in_head`; XResNet takes `act`, `sa`,
    `pool`, `dropout`, `msd_samples`. Unknown options are an error. A zoo model passes
    them to its constructor, which may reject them (one line).
    """
    info = get_model_info(name)
    unknown = sorted(set(options) - set(info.options))
    if unknown and not info.is_zoo:
        raise EnetError(
            f"model {name} has no option {unknown[0]!r}; its options: {', '.join(info.options)}"
        )
    if num_classes < 1:
        raise EnetError(f"num_classes must be >= 1, got {num_classes}")
    try:
        return info.builder(num_classes, **options)
    except ValueError as err:
        raise EnetError(f"model {name}: {err}") from None


def classifier_name(model: nn.Module, num_classes: int) -> str:
    """The qualified name of the model's classifier (`fc`, `head.fc`, `classifier.1`, ...): the
    layer a fine-tune with other classes leaves freshly initialised."""
    return zoo.classifier_name(model, num_classes)


def set_grad_checkpointing(model: nn.Module, name: str, enable: bool = True) -> None:
    """Gradient checkpointing where the model supports it (timm's and enet's models); a
    model without it (torchvision's) is refused when asked."""
    if hasattr(model, "set_grad_checkpointing"):
        model.set_grad_checkpointing(enable)
    elif enable:
        raise EnetError(
            f"train.grad_checkpointing: {name} does not support it (enet's and timm's models do)"
        )


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
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(image)
    except (AssertionError, RuntimeError, ValueError) as err:  # a fixed input size (ViTs)
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise EnetError(
            f"model {name} cannot take {resolution}x{resolution} inputs ({message}); another "
            "data.res, or the model's own size option in model.kwargs"
        ) from None
    return counter.get_total_flops() / 1e9


__all__ = [
    "ModelInfo",
    "classifier_name",
    "create_model",
    "describe_models",
    "get_model_info",
    "list_models",
    "set_grad_checkpointing",
]
