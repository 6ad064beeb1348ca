"""Training: `fit(cfg)` runs one training job; `launch` starts several ranks with torchrun."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import Config, build_config, config_from_dict
from ..errors import EnetError
from .launch import launch, launcher_requested
from .loop import fit


def resolve_train_config(
    config_file: str | None, flags: dict[str, Any], overrides: list[str] | None
) -> Config:
    """The run's config. With --resume the resumed run's own config is the starting point
    (so `enet train --out DIR --resume` needs nothing else); anything given on top changes it."""
    base = None
    if flags.get("run.resume"):
        out = flags.get("run.out")
        if not out:
            raise EnetError("--resume needs --out DIR (the run folder to continue)")
        last = Path(out) / "checkpoints" / "last.pt"
        if not last.is_file():
            raise EnetError(f"--resume: no checkpoint at {last} to continue from")
        from .checkpoint import load_checkpoint

        saved = load_checkpoint(last).get("config")
        if not isinstance(saved, dict):
            raise EnetError(f"{last} holds no config; is it an enet checkpoint?")
        saved = {k: v for k, v in saved.items() if k != "run"}
        base = config_from_dict(saved)
    return build_config(config_file, flags, overrides, base=base)


__all__ = ["fit", "launch", "launcher_requested", "resolve_train_config"]
