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


def epoch_warning(loss: float, epoch: int, first_loss: float, classes: int) -> str | None:
    """The training loop's warning for an epoch whose validation loss exploded, else None: the
    first epoch's is judged against an untrained model's (ln(classes)), later ones against the
    first epoch's (a run can blow up within its first epoch; issue 33)."""
    first = epoch == 1 or not math.isfinite(first_loss)
    reference = untrained_loss(classes) if first else first_loss
    if not diverged(loss, reference):
        return None
    what = "an untrained model's" if first else "the first epoch's"
    return (
        f"warning: the validation loss exploded ({loss:.3g}, over ten times {what}, "
        f"{reference:.3g}) at epoch {epoch}: the run is diverging; try a lower --lr or a "
        "recipe from configs/"
    )
