"""The run's config as `enet train` resolves it: defaults < --config < flags < --set, with
--resume starting from the run's own saved config; paths made absolute for the run folder."""

from __future__ import annotations

import datetime
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import Config, build_config, config_from_dict
from ..data.datasets import check_data_present, is_dataset_name
from ..errors import EnetError
from .checkpoint import saved_config
from .run_folder import RunFolder


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
        last = RunFolder(out).last
        if not last.is_file():
            raise EnetError(f"--resume: no checkpoint at {last} to continue from")
        saved = saved_config(last)
        # the run section is this command's (out, resume, overwrite); the trackers carry over
        kept = ("tensorboard", "trackers", "tags", "log_checkpoints")
        run = {k: v for k, v in saved.get("run", {}).items() if k in kept}
        saved = {k: v for k, v in saved.items() if k != "run"} | {"run": run}
        base = config_from_dict(saved)
        if not flags.get("data.data"):
            check_data_present(base.data.data, "--resume")
    return with_resolved_paths(build_config(config_file, flags, overrides, base=base))


def with_resolved_paths(cfg: Config) -> Config:
    """The data folder and --init-from file made absolute (dataset names stay names), so that
    the run folder's config works from any folder: `enet eval`, `--resume`, `predict`."""
    data, init = cfg.data.data, cfg.train.init_from
    if not is_dataset_name(data) and Path(data).expanduser().exists():
        cfg = replace(cfg, data=replace(cfg.data, data=str(Path(data).expanduser().resolve())))
    if init and Path(init).expanduser().exists():
        init = str(Path(init).expanduser().resolve())
        cfg = replace(cfg, train=replace(cfg.train, init_from=init))
    return cfg


def default_out(cfg: Config) -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return str(Path("runs") / f"{cfg.model.name}-{stamp}")
