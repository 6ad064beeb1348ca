"""Models from the two zoos users arrive with: `torchvision:NAME` (every classification model
`torchvision.models.list_models` offers, built by `get_model`) and `timm:NAME` (every
`timm.list_models()` name, built by `timm.create_model`; timm is the optional extra
`enet[timm]`). enet builds them with the requested classes and random weights, passes
`model.kwargs` to the constructor, and takes a default resolution, evaluation crop and input
normalisation (mean, std) from the zoo's metadata where it has them (timm's `pretrained_cfg`,
torchvision's default weights' transforms), as timm's train.py does whether or not the weights
are pretrained."""

from __future__ import annotations

import difflib
import fnmatch
import functools
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import EnetError

ZOOS = ("torchvision", "timm")
# enet's defaults where a zoo says nothing (the ImageNet convention both zoos share)
DEFAULT_RESOLUTION, DEFAULT_CROP_PCT = 224, 0.875
# torchvision's two models whose training forward returns auxiliary outputs: enet's loop takes
# logits, so they are built without the auxiliary heads unless model.kwargs asks for them
_TORCHVISION_OPTIONS = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}


def split(name: str) -> tuple[str, str] | None:
    """'timm:resnet18d' -> ('timm', 'resnet18d'); an enet name -> None."""
    zoo, sep, model = name.partition(":")
    return (zoo, model) if sep and zoo in ZOOS else None


def _timm():
    try:
        import timm
    except ImportError:
        raise EnetError("timm models need the timm extra: pip install 'enet[timm]'") from None
    return timm


@functools.cache
def names(zoo: str) -> tuple[str, ...]:
    """Every model name a zoo offers, without the prefix."""
    if zoo == "torchvision":
        import torchvision.models

        return tuple(torchvision.models.list_models(module=torchvision.models))
    if zoo == "timm":
        return tuple(_timm().list_models())
    raise EnetError(f"unknown model zoo {zoo!r}; zoos: {', '.join(ZOOS)}")


def matching(zoo: str, pattern: str | None) -> list[str]:
    """`enet models --zoo ZOO --filter GLOB`: prefixed names, the glob on the bare name."""
    return [f"{zoo}:{n}" for n in names(zoo) if pattern is None or fnmatch.fnmatch(n, pattern)]


def check_name(name: str) -> None:
    """An unknown zoo model: one line with the closest names."""
    zoo, model = split(name)  # type: ignore[misc]
    offered = names(zoo)
    if model not in offered:
        close = difflib.get_close_matches(model, offered, n=3, cutoff=0.6)
        hint = f"; closest: {', '.join(f'{zoo}:{c}' for c in close)}" if close else ""
        raise EnetError(f"unknown model {name!r} ({zoo} has no model {model!r}){hint}")


def build(name: str, num_classes: int, **kwargs: object) -> nn.Module:
    """A zoo model with random weights; a keyword the constructor rejects is one line."""
    zoo, model = split(name)  # type: ignore[misc]
    try:
        if zoo == "torchvision":
            import torchvision.models

            options = _TORCHVISION_OPTIONS.get(model, {}) | kwargs
            return torchvision.models.get_model(
                model, weights=None, num_classes=num_classes, **options
            )
        return _timm().create_model(model, pretrained=False, num_classes=num_classes, **kwargs)
    except TypeError as err:
        bad = re.search(r"unexpected keyword argument '(\w+)'", str(err))
        what = f"option {bad.group(1)!r}" if bad else f"its options ({err})"
        raise EnetError(f"model {name} rejects {what} (model.kwargs)") from None


@dataclass(frozen=True)
class ZooDefaults:
    resolution: int
    crop_pct: float
    source: str  # where they came from, for the run's log
    mean: tuple[float, ...] | None = None  # RGB, 0-1 scale; None: the zoo says nothing
    std: tuple[float, ...] | None = None


def _rgb(values) -> tuple[float, ...] | None:
    """A zoo's per-channel mean or std as three values (a grey model's one value repeated)."""
    if not values:
        return None
    values = tuple(float(v) for v in values)
    return values * 3 if len(values) == 1 else values


@functools.cache
def defaults(name: str) -> ZooDefaults:
    """Default input size and evaluation crop from the zoo's metadata, else enet's."""
    zoo, model = split(name)  # type: ignore[misc]
    if zoo == "timm":
        cfg = _timm().models.get_pretrained_cfg(model)
        if cfg is not None and cfg.input_size:
            return ZooDefaults(
                cfg.input_size[-1],
                cfg.crop_pct,
                "timm's pretrained_cfg",
                _rgb(cfg.mean),
                _rgb(cfg.std),
            )
    else:
        import torchvision.models

        try:
            weights = torchvision.models.get_model_weights(model).DEFAULT
        except (ValueError, KeyError, AttributeError):
            weights = None
        transforms = weights.transforms() if weights is not None else None
        crop = getattr(transforms, "crop_size", None)
        resize = getattr(transforms, "resize_size", None)
        if crop and resize:
            return ZooDefaults(
                crop[0],
                round(crop[0] / resize[0], 4),
                f"torchvision's {weights} transforms",
                _rgb(getattr(transforms, "mean", None)),
                _rgb(getattr(transforms, "std", None)),
            )
    return ZooDefaults(DEFAULT_RESOLUTION, DEFAULT_CROP_PCT, "enet's defaults")


def torchvision_state(weights) -> tuple[dict, str]:
    """A torchvision weights entry's state dict (downloaded once into torch's hub folder);
    offline, one line naming the file and the folder to put it in."""
    try:
        return weights.get_state_dict(progress=False), f"torchvision {weights}"
    except Exception as err:  # noqa: BLE001 (offline: URLError, socket errors, ...)
        folder = Path(torch.hub.get_dir()) / "checkpoints"
        raise EnetError(
            f"--pretrained: could not fetch {weights.url} ({type(err).__name__}); offline, "
            f"place that file in {folder}/ and run again"
        ) from None


def pretrained_state(name: str) -> tuple[dict, str]:
    """The zoo's own ImageNet weights: torchvision's weights API (the default weights) or timm's
    pretrained config (its Hugging Face Hub file). Offline: one line naming file and folder."""
    zoo, model = split(name)  # type: ignore[misc]
    if zoo == "torchvision":
        import torchvision.models

        try:
            weights = torchvision.models.get_model_weights(model).DEFAULT
        except (ValueError, KeyError):
            raise EnetError(f"--pretrained: torchvision has no weights for {model}") from None
        return torchvision_state(weights)
    timm = _timm()
    cfg = timm.models.get_pretrained_cfg(model)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise EnetError(f"--pretrained: timm has no pretrained weights for {model}")
    try:
        state = timm.create_model(model, pretrained=True).state_dict()
    except Exception as err:  # noqa: BLE001 (offline: the hub's and urllib's errors)
        from huggingface_hub.constants import HF_HUB_CACHE

        where = f"hf-hub:{cfg.hf_hub_id}" if cfg.hf_hub_id else cfg.url
        raise EnetError(
            f"--pretrained: could not fetch {where} ({type(err).__name__}); offline, download it "
            f"into the Hugging Face cache {HF_HUB_CACHE}/ and run again, or pass --init-from FILE"
        ) from None
    tag = f".{cfg.tag}" if cfg.tag else ""
    return state, f"timm {model}{tag}"


# ---------------------------------------------------------------------------------------------
# the model contract for torchvision's models (timm's and enet's have the methods themselves)


def classifier_name(model: nn.Module, num_classes: int) -> str:
    """The qualified name of a model's classifier: `get_classifier()` where the model has it
    (timm's protocol; enet's families), else the last Linear or 1x1 Conv2d with num_classes
    outputs (torchvision: fc, classifier.1, heads.head, ...)."""
    modules = dict(model.named_modules())
    if hasattr(model, "get_classifier"):
        head = model.get_classifier()
        for qualified, module in modules.items():
            if module is head:
                return qualified
    last = None
    for qualified, module in modules.items():
        outputs = getattr(module, "out_features", getattr(module, "out_channels", None))
        if isinstance(module, nn.Linear | nn.Conv2d) and outputs == num_classes:
            last = qualified
    if last is None:
        raise EnetError(f"cannot find the classifier of {type(model).__name__}")
    return last
