"""Label files and held-out splits: the data layouts beyond train/ and val/ class folders.

A label file (`--data labels.csv`, or .tsv) has a header row naming its columns: `path` and
`label`, and optionally `split` (train or val). Paths are relative to the file's folder, or
absolute: ImageNet's flat validation folder with its labels is one such file. Classes are the
sorted labels of the training rows. Without a split column (or a val/ folder) `data.val_pct`
holds out a seeded, stratified part of each class (`split_by_pct`), the same on every rank,
every resume and every `enet eval` of the run.
"""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path

from ..errors import EnetError

LABEL_FILES = (".csv", ".tsv")
COLUMNS = ("path", "label", "split")
SPLITS = ("train", "val")
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")  # what a listing takes as an image, in any case

Entry = tuple[str, int, int, int]  # path, label, size in bytes, mtime in ns


def read_label_file(path: Path):
    """-> (classes, train entries, val entries or None without a split column, ignored).
    Every problem is one line naming the file, the line and the first offending value."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = [h.strip().lower() for h in next(reader, [])]
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise EnetError(f"--data {path}: cannot read it as a label file ({err})") from None
    unknown = [h for h in header if h not in COLUMNS]
    if unknown or "path" not in header or "label" not in header:
        what = f"unknown column {unknown[0]!r}" if unknown else "no path and label columns"
        raise EnetError(
            f"--data {path}: {what}; a label file's header names path, label and optionally split"
        )
    col = {name: header.index(name) for name in header}
    base = path.parent
    seen: dict[str, int] = {}
    parsed: list[tuple[str, str, str | None, int]] = []
    ignored = 0
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise EnetError(f"--data {path}: line {line} has {len(row)} fields, not {len(header)}")
        file, label = row[col["path"]].strip(), row[col["label"]].strip()
        split = row[col["split"]].strip().lower() if "split" in col else None
        if not label:
            raise EnetError(f"--data {path}: line {line} has an empty label ({file})")
        if split is not None and split not in SPLITS:
            raise EnetError(
                f"--data {path}: line {line}: split must be train or val, got {split!r}"
            )
        full = os.path.normpath(file if os.path.isabs(file) else os.path.join(base, file))
        if full in seen:
            raise EnetError(
                f"--data {path}: {file} is listed twice (lines {seen[full]} and {line})"
            )
        seen[full] = line
        if not file.lower().endswith(IMAGE_EXTENSIONS):
            ignored += 1
            continue
        parsed.append((full, label, split, line))
    classes = tuple(sorted({label for _, label, split, _ in parsed if split != "val"}))
    if not classes:
        raise EnetError(f"--data {path}: no training rows")
    ids = {name: i for i, name in enumerate(classes)}
    train: list[Entry] = []
    val: list[Entry] = []
    missing = []
    for full, label, split, line in parsed:
        if label not in ids:
            raise EnetError(
                f"--data {path}: line {line}: validation label {label!r} has no training images"
            )
        try:
            st = os.stat(full)
        except OSError:
            missing.append((full, line))
            continue
        (val if split == "val" else train).append((full, ids[label], st.st_size, st.st_mtime_ns))
    if missing:
        file, line = missing[0]
        raise EnetError(
            f"--data {path}: {len(missing)} listed file(s) do not exist, e.g. {file} (line {line})"
        )
    return classes, train, (val if "split" in col else None), ignored


def split_by_pct(
    entries: list[Entry], classes: tuple[str, ...], val_pct: float, seed: int, root: Path
) -> tuple[list[Entry], list[Entry]]:
    """Hold out round(n * val_pct) of each class's n images, chosen by a generator seeded with
    (seed, class name) over the class's files sorted by path: the same split wherever and
    whenever it is made from the same files, whatever the run's training seed."""
    if not 0.0 < val_pct < 1.0:
        raise EnetError(f"data.val_pct must be in (0, 1), got {val_pct}")
    by_class: dict[int, list[Entry]] = {}
    for entry in entries:
        by_class.setdefault(entry[1], []).append(entry)
    train, val = [], []
    for label, name in enumerate(classes):
        mine = sorted(by_class.get(label, []))
        held = round(len(mine) * val_pct)
        if held == 0 or held == len(mine):
            which = "validation" if held == 0 else "training"
            raise EnetError(
                f"data.val_pct {val_pct} leaves class {name} of {root} without {which} images "
                f"({len(mine)} images)"
            )
        order = list(range(len(mine)))
        random.Random(f"{seed}/{name}").shuffle(order)
        chosen = set(order[:held])
        val += [e for i, e in enumerate(mine) if i in chosen]
        train += [e for i, e in enumerate(mine) if i not in chosen]
    return train, val
