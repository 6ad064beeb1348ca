"""Augmentations of whole batches on the training device, after normalisation:
random erasing per image, then MixUp or CutMix (torchvision.transforms.v2's, all three).

Their random draws come from torch's global generator, which checkpoints save and restore per
rank, so a resumed run mixes the same pairs. Labels become class probabilities (one-hot mixed);
`nn.CrossEntropyLoss` takes them, label smoothing included.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2


class BatchAugment:
    def __init__(
        self,
        num_classes: int,
        *,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        erase_p: float = 0.0,
    ) -> None:
        """`mixup_alpha`, `cutmix_alpha`: Beta(alpha, alpha) mixing (0: off; both on: one of
        the two per batch, as timm switches); `erase_p`: each image's chance of a random
        rectangle (2-33% of its area) filled with normal noise (timm's "pixel" mode)."""
        self.erase = v2.RandomErasing(p=erase_p, value="random") if erase_p > 0 else None
        mixes = []
        if mixup_alpha > 0:
            mixes.append(v2.MixUp(alpha=mixup_alpha, num_classes=num_classes))
        if cutmix_alpha > 0:
            mixes.append(v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes))
        self.mix = v2.RandomChoice(mixes) if len(mixes) == 2 else (mixes or [None])[0]

    @property
    def active(self) -> bool:
        return self.erase is not None or self.mix is not None

    def __call__(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.erase is not None:
            channels_last = images.is_contiguous(memory_format=torch.channels_last)
            images = torch.stack([self.erase(image) for image in images])  # a box per image
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
        if self.mix is not None:
            images, labels = self.mix(images, labels)
        return images, labels
