"""Datasets: the layouts, named datasets, listing with bad files removed, and info.

Layouts: ROOT/train/<class>/<image> and ROOT/val/<class>/<image> (Imagenette and ImageNet);
classes are the sorted folder names of train/, val/ must have the same. A folder without val/
(ROOT/train/<class>/ or ROOT/<class>/) with data.val_pct. A label file (.csv, .tsv: path, label
and optionally split columns; labels.py). Images are files ending in .jpeg, .jpg or .png in any
case; other files are counted and ignored.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import Progress

from ..errors import EnetError
from . import checks, labels, shards
from .download import download_dataset

IMAGE_EXTENSIONS = labels.IMAGE_EXTENSIONS  # one home: labels.py (it lists files too)
_S3 = "https://s3.amazonaws.com/fast-ai-imageclas"


@dataclass(frozen=True)
class NamedDataset:
    archive: str  # file name at fastai's address
    md5s: tuple[str, ...]  # every published checksum of the archive (re-uploaded over time)
    about: str


# MD5s from torchvision.datasets.Imagenette and two versions of fastai's data/checks.txt.
NAMED_DATASETS = {
    "imagenette": NamedDataset(
        "imagenette2-160.tgz",
        (
            "e793b78cc4c9e9a4ccc0c1155377a412",
            "c475f8f7617a200ba35b9facc48443c3",
            "e28cd4207d545c64f2372bcb64753d01",
        ),
        "Imagenette v2, 10 easy ImageNet classes, shorter side 160 px",
    ),
    "imagenette-320": NamedDataset(
        "imagenette2-320.tgz",
        (
            "3df6f0d01a2c9592104656642f5e78a3",
            "1f1f74f133caff120e575856659b87a2",
            "55496feff4562875a3246d819d094b2b",
        ),
        "Imagenette v2, shorter side 320 px",
    ),
    "imagenette-full": NamedDataset(
        "imagenette2.tgz",
        (
            "fe2fc210e6bb7c5664d602c3cd71e612",
            "2c774ecb40005b35d7937d50f5d42336",
            "5103dc075392e9e6a7bc92653a88c3cd",
        ),
        "Imagenette v2, full-size images",
    ),
    "imagewoof": NamedDataset(
        "imagewoof2-160.tgz",
        ("3559b194123981a540b87132dbda412f", "8cd8964848106c00af3c087330af9057"),
        "Imagewoof v2, 10 hard dog breeds, shorter side 160 px",
    ),
    "imagewoof-320": NamedDataset(
        "imagewoof2-320.tgz",
        ("7a1fd92672a559a85de76e4810a20c21", "e24c62362b2594f2d1f3ce5f9e7ee18d"),
        "Imagewoof v2, shorter side 320 px",
    ),
}
MINI = Path(__file__).resolve().parent / "mini"


def dataset_url(name: str) -> str:
    """fastai's address, or the same file under $ENET_DOWNLOAD_BASE (a mirror)."""
    base = os.environ.get("ENET_DOWNLOAD_BASE") or _S3
    return f"{base.rstrip('/')}/{NAMED_DATASETS[name].archive}"


def is_dataset_name(data: str) -> bool:
    """A shipped or downloadable dataset's name (mini, imagenette, ...), not a folder."""
    return data == "mini" or data in NAMED_DATASETS


def is_data_source(data: str) -> bool:
    """A dataset name, a folder, or a label file (.csv, .tsv): what --data may name."""
    path = Path(data).expanduser()
    is_label_file = path.is_file() and path.suffix.lower() in labels.LABEL_FILES
    return is_dataset_name(data) or path.is_dir() or is_label_file or shards.is_url(data)


def check_data_present(data: str, command: str) -> None:
    """A run's stored data folder is still there (else one line: give --data)."""
    if not (is_dataset_name(data) or shards.is_url(data) or Path(data).expanduser().exists()):
        raise EnetError(
            f"{command}: the run's data {data} is not there (moved, or another machine?); "
            "give --data PATH"
        )


def resolve_data(
    data: str | os.PathLike, *, download: bool = True, quiet: bool = False
) -> Path | str:
    """A dataset name or a folder -> the local folder holding train/ and val/."""
    text = str(data)
    if text == "mini":
        return MINI
    if text in NAMED_DATASETS:
        target = checks.cache_dir() / text
        if target.is_dir():
            return target
        if not download:
            raise EnetError(
                f"dataset {text!r} is not downloaded yet; run `enet data download {text}`"
            )
        return download_dataset(dataset_url(text), NAMED_DATASETS[text].md5s, target, quiet=quiet)
    if shards.is_url(text):
        return text  # a shard set served over HTTP(S) (data/shards.py)
    path = Path(text).expanduser()
    if not path.exists():
        names = ", ".join(["mini", *NAMED_DATASETS])
        raise EnetError(f"--data {text}: no such folder, and not a dataset name ({names})")
    if path.is_file() and path.suffix.lower() in labels.LABEL_FILES:
        return path
    if not path.is_dir():
        raise EnetError(
            f"--data {text}: not a folder, nor a label file ({', '.join(labels.LABEL_FILES)})"
        )
    return path


# ---------------------------------------------------------------------------------------------
# listing


@dataclass(frozen=True)
class Split:
    files: tuple[str, ...]
    labels: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.files)

    def per_class(self, num_classes: int) -> list[int]:
        counts = [0] * num_classes
        for label in self.labels:
            counts[label] += 1
        return counts


@dataclass(frozen=True)
class DatasetIndex:
    """What a dataset holds, after bad files are taken out."""

    root: Path
    classes: tuple[str, ...]
    train: Split
    val: Split
    ignored: int = 0  # files without an image extension
    skipped: dict[str, str] = field(default_factory=dict)  # path -> why it was left out
    split_note: str = ""  # how the validation split was made, when enet made it (val_pct)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def val_digest(self) -> str:
        """A digest of the validation split (files relative to the root, and labels): a run
        records it, and `enet eval` checks that it evaluates the same images."""
        base = self.root.parent if self.root.is_file() else self.root
        h = hashlib.sha256()
        for path, label in zip(self.val.files, self.val.labels, strict=True):
            h.update(f"{os.path.relpath(path, base)}\t{label}\n".encode())
        return h.hexdigest()[:16]


def _class_folders(split_dir: Path) -> list[str]:
    return sorted(
        e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith(".")
    )


def _list_split(split_dir: Path, classes: tuple[str, ...]) -> tuple[list[labels.Entry], int]:
    """-> [(path, label, size, mtime_ns)], number of ignored files."""
    entries, ignored = [], 0
    for label, name in enumerate(classes):
        folder = split_dir / name
        if not folder.is_dir():
            continue
        for e in sorted(os.scandir(folder), key=lambda e: e.name):
            if not e.is_file():
                continue
            if not e.name.lower().endswith(IMAGE_EXTENSIONS):
                ignored += 1
                continue
            st = e.stat()
            entries.append((e.path, label, st.st_size, st.st_mtime_ns))
    # files lying in the split folder itself, outside any class folder
    ignored += sum(1 for e in os.scandir(split_dir) if e.is_file())
    return entries, ignored


def index_dataset(
    root: str | os.PathLike,
    *,
    check: bool = True,
    val_pct: float | None = None,
    split_seed: int = 0,
    left_out: tuple[str, ...] | None = None,
) -> DatasetIndex:
    """List a dataset's images and labels; with `check`, leave out files known or found to be
    bad. ROOT is a folder with train/<class>/ and val/<class>/, a folder of class folders
    (ROOT/<class>/ or ROOT/train/<class>/ alone), or a label file (labels.LABEL_FILES). Data
    without a validation split needs `val_pct`: a seeded, stratified split (labels.split_by_pct).
    `left_out`: leave out exactly these files instead of checking (a resumed run's own list)."""
    shard_set = shards.is_shard_set(root)
    if shard_set:  # checked when written: only a run's decode findings apply
        if val_pct is not None:
            raise EnetError(f"data.val_pct: the shard set {root} has its validation split")
        (classes, train, val), ignored = shards.read_shard_set(root), 0
    elif Path(root).is_file():
        classes, train, val, ignored = labels.read_label_file(Path(root))
    else:
        classes, train, val, ignored = _list_folders(Path(root), val_pct)
    root = Path(root)  # (a shard set's URL: from here on only the check cache's key)
    split_note = ""
    if val is None:
        if val_pct is None:
            raise EnetError(
                f"{root} has no validation split (no val/ folder, no split column); give "
                "data.val_pct (e.g. --set data.val_pct=0.2) to hold out a part of each class"
            )
        train, val = labels.split_by_pct(train, classes, val_pct, split_seed, root)
        split_note = f"validation: {val_pct:.0%} of each class held out (split_seed {split_seed})"
    elif val_pct is not None:
        raise EnetError(
            f"data.val_pct: {root} has a validation split of its own; leave val_pct unset"
        )
    skipped: dict[str, str] = {}
    if left_out is not None:
        skipped = dict.fromkeys(left_out, "left out when the run started")
    elif check:

        def stats():  # (path, size, mtime) of every file, again for each pass (no copy held)
            return ((p, size, mtime) for p, _, size, mtime in itertools.chain(train, val))

        if not shard_set:
            skipped.update(checks.quick_check_cached(root, stats))
        skipped.update(checks.known_decode_problems(root, stats()))

    def split(entries) -> Split:
        kept = [(p, label) for p, label, _, _ in entries if p not in skipped]
        return Split(tuple(p for p, _ in kept), tuple(label for _, label in kept))

    index = DatasetIndex(
        root, classes, split(train), split(val), ignored, skipped, split_note=split_note
    )
    if len(index.train) == 0:
        raise EnetError(f"{root}: no readable training images")
    if len(index.val) == 0:
        raise EnetError(f"{root}: no readable validation images")
    return index


def _list_folders(root: Path, val_pct: float | None):
    """A folder's classes and entries: ROOT/train/ and ROOT/val/ (val None when ROOT has no
    val/ and val_pct asks for a split), or ROOT/<class>/ alone (val None)."""
    train_dir, val_dir = root / "train", root / "val"
    if not train_dir.is_dir() and val_pct is not None:
        classes = tuple(_class_folders(root))  # ImageFolder's layout: ROOT/<class>/
        if not classes:
            raise EnetError(f"{root} has no class folders")
        entries, ignored = _list_split(root, classes)
        return classes, entries, None, ignored
    for d in (train_dir, val_dir):
        if not d.is_dir() and not (d is val_dir and val_pct is not None):
            raise EnetError(
                f"{root} has no {d.name}/ folder (expected {root}/train/<class>/... "
                f"and {root}/val/<class>/..., or give data.val_pct to split train/)"
            )
    classes = tuple(_class_folders(train_dir))
    if not classes:
        raise EnetError(f"{train_dir} has no class folders")
    train, ignored = _list_split(train_dir, classes)
    if not val_dir.is_dir():
        return classes, train, None, ignored
    val_classes = set(_class_folders(val_dir))
    if val_classes != set(classes):
        only_train = sorted(set(classes) - val_classes)
        only_val = sorted(val_classes - set(classes))
        raise EnetError(
            f"train/ and val/ of {root} have different classes: only in train: "
            f"{', '.join(only_train) or '-'}; only in val: {', '.join(only_val) or '-'}"
        )
    val, ignored_val = _list_split(val_dir, classes)
    return classes, train, val, ignored + ignored_val


def dataset_info(index: DatasetIndex) -> dict:
    """Classes, images per split and class, image size range and bytes (reads image headers)."""
    from PIL import Image

    sizes = []
    total_bytes = 0
    for path in index.train.files + index.val.files:
        member = shards.is_member(path)
        encoded = shards.read_encoded(path) if member else None
        total_bytes += len(encoded) if member else os.path.getsize(path)
        try:
            with Image.open(io.BytesIO(encoded) if member else path) as im:
                sizes.append(im.size)
        except OSError:
            continue
    widths = [w for w, _ in sizes] or [0]
    heights = [h for _, h in sizes] or [0]
    n = index.num_classes
    return dict(
        root=str(index.root),
        classes=list(index.classes),
        train_images=len(index.train),
        val_images=len(index.val),
        train_per_class=index.train.per_class(n),
        val_per_class=index.val.per_class(n),
        width_range=[min(widths), max(widths)],
        height_range=[min(heights), max(heights)],
        total_bytes=total_bytes,
        ignored_files=index.ignored,
        skipped_files=len(index.skipped),
    )


# ---------------------------------------------------------------------------------------------
# enet data check


@dataclass
class CheckReport:
    root: Path
    total: int
    problems: list[checks.Finding]
    notes: list[checks.Finding]
    saved_to: Path


def check_dataset(data: str, workers: int | None = None, quiet: bool = False) -> CheckReport:
    """Decode every image of DATA in a process pool; store and return what is wrong."""
    root = resolve_data(data)
    index = index_dataset(root, check=False)
    paths = list(index.train.files + index.val.files)
    workers = workers or max(1, len(os.sched_getaffinity(0)))
    findings: list[checks.Finding] = []
    with ProcessPoolExecutor(workers) as pool, Progress(disable=quiet, transient=True) as bar:
        task = bar.add_task(f"decoding {len(paths)} images", total=len(paths))
        for finding in pool.map(checks.decode_problem, paths, chunksize=64):
            findings.append(finding)
            bar.advance(task)
    saved = checks.save_decode_findings(root, findings)
    return CheckReport(
        root=root,
        total=len(paths),
        problems=[f for f in findings if f.problem],
        notes=[f for f in findings if f.note],
        saved_to=saved,
    )
