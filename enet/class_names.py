"""Human names for WordNet IDs (ImageNet's 1000 classes, hence Imagenette's and Imagewoof's).

Files (eval.json, CSVs, checkpoints) keep the IDs; tables and plots show the names. The IDs
(imagenet_wnids.txt, in ImageNet's class order: sorted) pair with torchvision's published
ImageNet category names, index by index.
"""

from __future__ import annotations

import functools
from pathlib import Path

_WNIDS = Path(__file__).with_name("imagenet_wnids.txt")


@functools.cache
def imagenet_names() -> dict[str, str]:
    """WordNet ID -> short English name, for the 1000 ImageNet classes."""
    from torchvision.models import ResNet18_Weights

    wnids = _WNIDS.read_text().split()
    names = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    return dict(zip(wnids, names, strict=True))


def display_name(class_id: str) -> str:
    """The class's name where known (`n01440764` -> `tench`), else the ID itself."""
    return imagenet_names().get(class_id, class_id)


def display_names(class_ids: list[str]) -> list[str]:
    return [display_name(c) for c in class_ids]
