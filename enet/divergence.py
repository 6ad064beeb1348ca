"""When a validation loss counts as exploded: one rule for the training loop's warning (each
epoch) and the comparison's flag (a run's last epoch)."""

from __future__ import annotations

import math

DIVERGED_FACTOR = 10.0


def untrained_loss(classes: int) -> float:
    """The cross-entropy of uniform guesses, ln(classes): what an untrained model scores."""
    return math.log(max(classes, 2))


def diverged(loss: float, reference: float) -> bool:
    """Is a validation loss an explosion: not finite, or DIVERGED_FACTOR times `reference`
    (the first epoch's loss; for the first epoch itself, and for a run's last epoch in a
    comparison, an untrained model's)?"""
    return not math.isfinite(loss) or loss > DIVERGED_FACTOR * max(reference, 1e-3)
