"""The weights a run starts from: random (the default, as the Imagenette leaderboard requires),
ImageNet weights (`--pretrained`: torchvision's for EfficientNet B0-B7, the zoo's own for
torchvision:/timm: models), or a file (`--init-from`: an enet checkpoint or a state dict, enet's
or torchvision's layout). When the classes differ, the classifier (the model contract's
`classifier_name`) keeps its fresh initialisation and the output says so."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import EnetError
from ..models import classifier_name, efficientnet, zoo
from .checkpoint import load_checkpoint


def initialise(
    model: nn.Module, model_name: str, num_classes: int, pretrained: bool, init_from: str | None
) -> str:
    """Load the starting weights into `model`; returns what they were, for summary.json."""
    if pretrained and init_from:
        raise EnetError("give --pretrained or --init-from, not both")
    if pretrained and zoo.split(model_name):
        state, source = zoo.pretrained_state(model_name)
    elif pretrained:
        state, source = torchvision_weights(model_name)
    elif init_from:
        state, source = read_weights(init_from), f"file {init_from}"
    else:
        return "random"
    if isinstance(model, efficientnet.EfficientNet) and any(
        k.startswith("features.") for k in state
    ):
        mapping = efficientnet.torchvision_key_map(model)  # ours -> torchvision's
        state = {ours: state[theirs] for ours, theirs in mapping.items() if theirs in state}
    head = classifier_name(model, num_classes)
    replaced = _load_all_but_head(model, state, source, (f"{head}.weight", f"{head}.bias"))
    return source + (f"; classifier replaced ({replaced})" if replaced else "")


def torchvision_weights(model_name: str) -> tuple[dict, str]:
    """torchvision's IMAGENET1K_V1 weights of an EfficientNet, through its weights API."""
    import torchvision

    if model_name not in efficientnet.VARIANTS:
        raise EnetError(
            f"--pretrained: ImageNet weights exist for the zoo models (torchvision:NAME, "
            f"timm:NAME) and efficientnet_b0-b7, not {model_name}; use --init-from FILE"
        )
    weights = torchvision.models.get_weight(f"EfficientNet_B{model_name[-1]}_Weights.IMAGENET1K_V1")
    return zoo.torchvision_state(weights)


def read_weights(path: str) -> dict:
    """An enet checkpoint's weights, or a state dict saved with torch.save."""
    data = load_checkpoint(path, "--init-from")
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        return data["model"]  # an enet checkpoint
    if isinstance(data, dict) and data and all(isinstance(v, torch.Tensor) for v in data.values()):
        return data
    raise EnetError(f"--init-from {path}: neither an enet checkpoint nor a state dict")


def _load_all_but_head(
    model: nn.Module, state: dict, source: str, head_keys: tuple[str, str]
) -> str | None:
    """Every tensor but the classifier must match; a classifier of another size is dropped.
    Returns 'N -> M classes' when it was."""
    ours = model.state_dict()
    head_keys = tuple(k for k in head_keys if k in ours)  # a classifier without bias
    missing = [k for k in ours if k not in state and k not in head_keys]
    wrong = [
        k for k in state if k in ours and k not in head_keys and state[k].shape != ours[k].shape
    ]
    if missing or wrong:
        example = (missing or wrong)[0]
        raise EnetError(
            f"{source} does not fit {type(model).__name__} ({len(missing)} tensors missing, "
            f"{len(wrong)} of another shape, e.g. {example}); same model and variant?"
        )
    head = head_keys[0]
    replaced = None
    if head in state and state[head].shape != ours[head].shape:
        replaced = f"{state[head].shape[0]} -> {ours[head].shape[0]} classes"
        state = {k: v for k, v in state.items() if k not in head_keys}
    model.load_state_dict({k: v for k, v in state.items() if k in ours}, strict=False)
    return replaced
