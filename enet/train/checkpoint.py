"""Checkpoints: written atomically, read as data (`torch.load(..., weights_only=True)`).

A checkpoint holds the model, optimiser, grad scaler, EMA, step, epoch, the loader's position
(with DALI's pipeline checkpoint), every RNG state, the resolved config and the class names: all
that a resumed run needs to continue bit for bit.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from ..errors import EnetError
from ..fileio import atomic_write


def atomic_torch_save(obj: object, path: Path) -> None:
    """Temporary file in the same folder, flush and fsync, rename, fsync the folder: a crash
    while saving leaves the previous checkpoint whole."""
    path = Path(path)
    atomic_write(path, lambda f: torch.save(obj, f), mode="wb")
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise EnetError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 (pickle, zip and torch errors alike)
        raise EnetError(
            f"{path} is not a readable enet checkpoint ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''})"
        ) from None


def rng_state() -> dict:
    """Every random generator a training step may draw from."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "gauss": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        # this rank's device only: a run resumed with fewer visible GPUs still restores it
        state["cuda_device"] = torch.cuda.get_rng_state(torch.cuda.current_device())
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_tuples(state["python"]))
    np_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["key"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["gauss"],
        )
    )
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available():
        device = torch.cuda.current_device()
        if "cuda_device" in state:
            torch.cuda.set_rng_state(state["cuda_device"], device)
        elif "cuda" in state:  # earlier checkpoints: every visible device's, in order
            saved = state["cuda"]
            torch.cuda.set_rng_state(saved[device if device < len(saved) else 0], device)


def _tuples(value):
    """random.setstate wants tuples where a round trip through torch.save may give lists."""
    if isinstance(value, list | tuple):
        return tuple(_tuples(v) for v in value)
    return value
