"""Data beyond train/ and val/ class folders (enet/data/labels.py): label files (CSV, TSV) and
held-out splits (data.val_pct), indexed, trained through both loaders, evaluated on the same
split, and every bad input as one line."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from conftest import run_enet
from datasets_util import solid_dataset

from enet.data import build_loaders
from enet.data.datasets import index_dataset, resolve_data
from enet.errors import EnetError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ENET_DATA_DIR", str(tmp_path / "cache"))


def _write(path, header, rows, delimiter=","):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _rows(root, relative_to=None):
    """(path, label, split) for every image of a train/ and val/ folder."""
    rows = []
    for split in ("train", "val"):
        for image in sorted((root / split).glob("*/*.JPEG")):
            path = image.relative_to(relative_to) if relative_to else image
            rows.append([str(path), image.parent.name, split])
    return rows


def test_a_label_file_indexes_as_its_folder_does(tmp_path):
    root = solid_dataset(tmp_path / "d", n_train=5, n_val=2)
    folder = index_dataset(root)
    # relative paths (to the file's folder), a TSV, and ImageNet's flat val folder
    flat = tmp_path / "d" / "flat"
    flat.mkdir()
    rows = []
    for split in ("train", "val"):
        for i, image in enumerate(sorted((root / split).glob("*/*.JPEG"))):
            label = image.parent.name
            if split == "val":  # ImageNet's layout: one flat folder, the labels in the file
                image = Path(shutil.copy(image, flat / f"ILSVRC_val_{i:08d}.JPEG"))
            rows.append([str(image.relative_to(tmp_path / "d")), label, split])
    labels = _write(tmp_path / "d" / "labels.tsv", ["path", "label", "split"], rows, "\t")
    assert resolve_data(labels) == labels
    index = index_dataset(labels)
    assert index.classes == folder.classes and index.train.files == folder.train.files
    assert index.train.labels == folder.train.labels and index.val.labels == folder.val.labels
    assert all(f.startswith(str(flat)) for f in index.val.files)


def test_val_pct_splits_by_class_the_same_way_every_time(tmp_path):
    root = solid_dataset(tmp_path / "d", n_train=10, n_val=0)
    shutil.rmtree(root / "val")
    a = index_dataset(root, val_pct=0.3, split_seed=0)
    b = index_dataset(root, val_pct=0.3, split_seed=0)
    assert a.val.files == b.val.files and a.val_digest == b.val_digest
    assert a.val.per_class(4) == [3, 3, 3, 3] and a.train.per_class(4) == [7, 7, 7, 7]
    assert not set(a.train.files) & set(a.val.files)
    other = index_dataset(root, val_pct=0.3, split_seed=1)
    assert other.val.files != a.val.files and other.val_digest != a.val_digest
    assert "30% of each class held out (split_seed 0)" in a.split_note
    # ImageFolder's layout (ROOT/<class>/) with val_pct, and a label file without split column
    flat = tmp_path / "flat"
    shutil.copytree(root / "train", flat)
    assert index_dataset(flat, val_pct=0.3).val.per_class(4) == [3, 3, 3, 3]
    rows = [[str(p), p.parent.name] for p in sorted((root / "train").glob("*/*.JPEG"))]
    labels = _write(tmp_path / "l.csv", ["path", "label"], rows)
    assert index_dataset(labels, val_pct=0.3).val.files == a.val.files
    with pytest.raises(EnetError, match="has no validation split .* give data.val_pct"):
        index_dataset(labels)
    with pytest.raises(EnetError, match="has no val/ folder"):
        index_dataset(root)
    with pytest.raises(EnetError, match="leaves class ant of .* without validation images"):
        index_dataset(root, val_pct=0.01)
    with pytest.raises(EnetError, match="without training images"):
        index_dataset(root, val_pct=0.99)
    with pytest.raises(EnetError, match="has a validation split of its own"):
        index_dataset(solid_dataset(tmp_path / "e", n_train=2, n_val=1), val_pct=0.2)


@pytest.mark.parametrize(
    "header,rows,message",
    [
        (["path", "label", "colour"], [], "unknown column 'colour'"),
        (["file", "label"], [], "unknown column 'file'"),
        (["path", "label"], [["ant/ant0.JPEG", ""]], r"line 2 has an empty label"),
        (["path", "label"], [["ant/ant0.JPEG", "ant"], ["ant/ant0.JPEG", "ant"]],
         r"listed twice \(lines 2 and 3\)"),
        (["path", "label"], [["ant/nope.JPEG", "ant"]], r"1 listed file\(s\) do not exist"),
        (["path", "label", "split"], [["ant/ant0.JPEG", "ant", "test"]],
         "split must be train or val, got 'test'"),
        (["path", "label", "split"], [["ant/ant0.JPEG", "ant", "train"],
                                      ["bee/bee0.JPEG", "bee", "val"]],
         "validation label 'bee' has no training images"),
        (["path", "label"], [["ant/ant0.JPEG", "ant", "x"]], "line 2 has 3 fields, not 2"),
    ],
)  # fmt: skip
def test_bad_label_files_are_one_line(tmp_path, header, rows, message):
    root = solid_dataset(tmp_path / "d", n_train=1, n_val=0)
    labels = _write(root / "train" / "labels.csv", header, rows)
    with pytest.raises(EnetError, match=message):
        index_dataset(labels)


@pytest.mark.parametrize("backend", ["torch", "dali"])
def test_loaders_read_a_label_file(tmp_path, backend):
    if backend == "dali":
        pytest.importorskip("nvidia.dali")
    root = solid_dataset(tmp_path / "d", n_train=4, n_val=2)
    labels = _write(tmp_path / "labels.csv", ["path", "label", "split"], _rows(root, tmp_path))
    train, val, classes = build_loaders(labels, 16, 4, loader=backend, workers=1)
    assert classes == ["ant", "bee", "cat", "dog"] and train.backend == backend
    assert sum(len(y) for _, y in train) == 16 and sum(len(y) for _, y in val) == 8


def test_train_on_a_held_out_split_and_eval_checks_it(tmp_path):
    root = solid_dataset(tmp_path / "d", n_train=10, n_val=0)
    shutil.rmtree(root / "val")
    out = tmp_path / "run"
    args = ["--model", "xresnet18", "--data", str(root), "--res", "16", "--epochs", "1",
            "--batch-size", "8", "--device", "cpu", "--set", "data.workers=1"]  # fmt: skip
    proc = run_enet("train", *args, "--set", "data.val_pct=0.2", "--out", str(out), check=True)
    assert "validation: 20% of each class held out (split_seed 0)" in proc.stdout
    evaluated = run_enet("eval", str(out), "--out", str(tmp_path / "e"), check=True)
    assert json.loads((tmp_path / "e" / "eval.json").read_text())["count"] == 8, evaluated.stdout
    # the data changed under the run: another image in each class moves the split
    for name in ("ant", "bee", "cat", "dog"):
        folder = root / "train" / name
        shutil.copy(folder / f"{name}0.JPEG", folder / f"{name}-extra.JPEG")
    changed = run_enet("eval", str(out), "--out", str(tmp_path / "f"))
    assert changed.returncode == 2 and "no longer holds the images" in changed.stderr
    bad = run_enet("train", *args, "--set", "data.val_pct=1.5", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "data.val_pct must be in (0, 1)" in bad.stderr
    none = run_enet("train", *args, "--out", str(tmp_path / "y"))
    assert none.returncode == 2 and "give data.val_pct" in none.stderr
    assert not (tmp_path / "y").exists()  # nothing written
