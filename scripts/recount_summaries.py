"""Recount the parameters and GFLOPs in finished runs' summary.json files written before the
counts took the model's options into account (commit 439c0b9): they held the plain model's
figures, so a run with self-attention or MaxBlurPool (the leaderboard xse_resnext50) reported
too few. The count is recomputed from the run's own config.yaml; top-1, times and everything
else stay as the run wrote them.

    python scripts/recount_summaries.py RUN_OR_COMPARISON_FOLDER...   (--dry-run: only print)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from enet.config import config_from_dict, load_yaml
from enet.fileio import write_json_atomic
from enet.models import get_model_info
from enet.settings import model_options


def recount(run: Path, dry_run: bool) -> None:
    summary_path = run / "summary.json"
    summary = json.loads(summary_path.read_text())
    cfg = config_from_dict(load_yaml(run / "config.yaml"))
    info, options = get_model_info(cfg.model.name), model_options(cfg)
    params = info.params(summary["classes"], **options)
    gflops = info.gflops(summary["res"], summary["classes"], **options)
    if (params, gflops) == (summary["params"], summary["gflops"]):
        return
    print(
        f"{run}: params {summary['params']:,} -> {params:,}, "
        f"GFLOPs {summary['gflops']:.4f} -> {gflops:.4f}"
    )
    if not dry_run:
        write_json_atomic(summary_path, {**summary, "params": params, "gflops": gflops})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    for folder in args.folders:
        for summary in sorted(folder.glob("**/summary.json")):
            if json.loads(summary.read_text()).get("status") == "finished":
                recount(summary.parent, args.dry_run)


if __name__ == "__main__":
    main()
