"""`enet predict CKPT PATH...`: the top-k classes of image files with a checkpoint's evaluation
transform; an unreadable file gets a row with its error instead of ending the command."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import torch

from .class_names import display_name
from .config import check_res
from .data.checks import decode_problem
from .data.common import Normalizer
from .data.datasets import IMAGE_EXTENSIONS
from .data.torch_loader import eval_image
from .errors import EnetError
from .evaluate import load_model
from .fileio import write_text_atomic
from .settings import (
    autocast,
    resolve_crop_pct,
    resolve_normalization,
    resolve_precision,
    resolve_resolution,
)
from .train.checkpoint import open_checkpoint
from .train.distributed import resolve_device

BATCH = 32


def image_files(paths: list[str]) -> list[Path]:
    """The files named, and the images under the folders named (sorted), in the order given."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.name.lower().endswith(IMAGE_EXTENSIONS))
        elif p.exists():
            found.append(p)
        else:
            raise EnetError(f"{p}: no such file or folder")
    if not found:
        raise EnetError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {', '.join(paths)}")
    return found


def predict(
    checkpoint: str,
    paths: list[str],
    *,
    top_k: int = 5,
    ema: bool = False,
    res: int | None = None,
    device: str = "auto",
) -> list[dict]:
    """One row per file: path, top-k class IDs, names and probabilities, or an error."""
    if top_k < 1:
        raise EnetError(f"--top-k must be >= 1, got {top_k}")
    check_res(res)
    path, cfg, classes, weights, *_ = open_checkpoint(checkpoint, ema)
    dev = resolve_device(device)
    model = load_model(cfg, weights, len(classes), dev).eval()
    res = res or cfg.data.eval_res or resolve_resolution(cfg)
    resize_to = int(round(res / resolve_crop_pct(cfg)))
    normalize = Normalizer(dev, cfg.train.channels_last, *resolve_normalization(cfg))
    precision = resolve_precision(cfg.train.precision, dev, cfg.model.name, inference=True)
    files = image_files(paths)
    rows: list[dict] = []
    for start in range(0, len(files), BATCH):
        batch, images = [], []
        for f in files[start : start + BATCH]:
            try:
                images.append(eval_image(str(f), res, resize_to))
                batch.append(f)
            except Exception as err:  # noqa: BLE001 (a corrupt file: its row says why)
                why = decode_problem(str(f)).problem or f"{type(err).__name__}: {err}"
                rows.append({"path": str(f), "error": why[:200]})
        if not images:
            continue
        with torch.no_grad(), autocast(dev, precision):
            probs = model(normalize(torch.stack(images))).float().softmax(1)
        top = probs.topk(min(top_k, len(classes)), 1)
        for f, p, i in zip(batch, top.values.tolist(), top.indices.tolist(), strict=True):
            ids = [classes[k] for k in i]
            rows.append(
                {"path": str(f), "classes": ids, "names": [display_name(c) for c in ids],
                 "probs": p, "error": None}
            )  # fmt: skip
    order = {str(f): n for n, f in enumerate(files)}
    return sorted(rows, key=lambda r: order[r["path"]])


def write_predictions(rows: list[dict], out: Path) -> None:
    """FILE.json (the rows) or FILE.csv (path, class_1, name_1, prob_1, ..., error)."""
    if out.suffix.lower() == ".json":
        write_text_atomic(out, json.dumps(rows, indent=1) + "\n")
        return
    if out.suffix.lower() != ".csv":
        raise EnetError(f"--out {out}: give a .csv or .json file")
    k = max((len(r.get("classes") or []) for r in rows), default=0)
    header = ["path"] + [f"{c}_{i}" for i in range(1, k + 1) for c in ("class", "name", "prob")]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([*header, "error"])
    for r in rows:
        cells = [r["path"]]
        guesses = zip(
            r.get("classes") or [], r.get("names") or [], r.get("probs") or [], strict=True
        )
        for c, n, p in guesses:
            cells += [c, n, f"{p:.6f}"]
        cells += [""] * (len(header) - len(cells))
        writer.writerow([*cells, r.get("error") or ""])
    write_text_atomic(out, buf.getvalue())
