"""Checkpoints, their one home: the schema (what `save_training_state` writes and
`restore_training_state` reads back), written atomically, read as data by the one
`torch.load` in enet (`load_checkpoint`): resume, eval, predict, export and --init-from all
read checkpoints here.

A checkpoint holds the model, optimiser, grad scaler, EMA, step, epoch, the loader's position
(with DALI's pipeline checkpoint), every rank's RNG states, the resolved config, the class
names and the initial weights' origin: all that a resumed run needs to continue bit for bit.
best.pt holds the part evaluation needs (no optimiser, scaler, loaders or RNG states).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from ..config import Config, config_from_dict
from ..errors import EnetError
from ..fileio import atomic_write
from . import distributed
from .position import Position


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


def load_checkpoint(path: str | Path, origin: str = "") -> object:
    """The file's contents as data (tensors, dicts, lists: weights_only), on the CPU; a
    missing or unreadable file is one EnetError, prefixed with `origin` (e.g. '--init-from')."""
    path = Path(path)
    prefix = f"{origin} {path}: " if origin else f"{path}: "
    if not path.is_file():
        raise EnetError(f"{prefix}no such file" if origin else f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 (pickle, zip and torch errors alike)
        raise EnetError(
            f"{prefix}not a readable enet checkpoint ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''})"
        ) from None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run folder (its best.pt, else last.pt)."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / "checkpoints" / name).is_file():
                return path / "checkpoints" / name
        raise EnetError(f"{path} holds no checkpoints/best.pt or last.pt (is it a run folder?)")
    return path


def open_checkpoint(checkpoint: str | Path, ema: bool = False):
    """A checkpoint file or run folder -> (path, config, classes, the weights to use: the EMA's
    with `ema`, the step it was saved at, the digest of the validation split it was trained
    with or None), each problem one clear error; eval, predict and export read checkpoints
    through it."""
    path = resolve_checkpoint(checkpoint)
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise EnetError(f"{path} is not an enet checkpoint (no model or config)")
    if ema and ckpt.get("ema") is None:
        raise EnetError(f"{path} has no EMA weights (train with --set train.ema_decay=0.999)")
    weights = ckpt["ema"] if ema else ckpt["model"]
    step = ckpt.get("position", {}).get("step")
    cfg = config_from_dict(ckpt["config"])
    return path, cfg, list(ckpt["classes"]), weights, step, ckpt.get("val_digest")


def saved_config(path: Path) -> dict:
    """The resolved config a run's checkpoint was trained with (for --resume)."""
    saved = load_checkpoint(path)
    saved = saved.get("config") if isinstance(saved, dict) else None
    if not isinstance(saved, dict):
        raise EnetError(f"{path} holds no config; is it an enet checkpoint?")
    return saved


def save_training_state(
    path: Path,
    *,
    model,
    ema,
    pos: Position,
    env: distributed.DistEnv,
    cfg: Config,
    classes: list[str],
    init: str,
    val_digest: str | None = None,
    left_out: tuple[str, ...] = (),
    optimizer=None,
    scaler=None,
    loader=None,
) -> None:
    """Every rank hands over its loader position and RNG state; the main rank writes. Without
    `optimizer` (best.pt): what evaluation needs, without optimiser, loader and RNG states."""
    state = {
        "model": model.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "position": pos.state(),
        "world_size": env.world_size,
        "config": cfg.to_dict(),
        "classes": classes,
        "init": init,
        # the validation split's digest (data/datasets.DatasetIndex.val_digest): enet eval
        # checks that a split enet made (data.val_pct) holds the same images
        "val_digest": val_digest,
        # the files the run's listing left out: a resume leaves out the same (data.build_loaders)
        "left_out": list(left_out),
    }
    if optimizer is not None:
        loaders, rngs = [loader.state_dict()], [rng_state()]
        if env.distributed:
            loaders, rngs = distributed.gather(loaders[0], env), distributed.gather(rngs[0], env)
        state |= {
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "loaders": loaders,
            "rng": rngs,
        }
    if env.is_main:
        atomic_torch_save(state, path)


def restore_training_state(
    ckpt: dict, *, model, optimizer, scaler, ema, loader, env: distributed.DistEnv, warn
) -> Position:
    """A checkpoint's weights, optimiser, scaler, EMA, loader place and RNG states into the
    run's objects; returns its position. On another number of ranks the data order changes
    from there on (`warn` says so)."""
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scaler.load_state_dict(ckpt["scaler"])
    if ema is not None and ckpt.get("ema") is not None:
        ema.load_state_dict(ckpt["ema"])
    if ckpt["world_size"] == env.world_size:
        loader.load_state_dict(ckpt["loaders"][env.rank])
        set_rng_state(ckpt["rng"][env.rank])
    else:
        warn(
            f"[yellow]resuming on {env.world_size} ranks a run of "
            f"{ckpt['world_size']}: the data order changes from here on"
        )
        state = dict(ckpt["loaders"][0])
        state.pop("dali_checkpoint", None)
        loader.load_state_dict(state)
    return Position.from_state(ckpt["position"])


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


def _tuples(value):
    """random.setstate wants tuples where a round trip through torch.save may give lists."""
    if isinstance(value, list | tuple):
        return tuple(_tuples(v) for v in value)
    return value
