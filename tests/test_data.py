"""Data: datasets, both loader backends, bad files, resume, and downloads from a local server."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets_util import CLASS_COLOURS, broken_dataset, indexed_val_dataset, solid_dataset

from enet.data import build_loaders, dali_status
from enet.data.checks import decode_problem, quick_problem
from enet.data.common import IMAGENET_MEAN, IMAGENET_STD, Resolutions, TrainPlan, eval_shard
from enet.data.datasets import NAMED_DATASETS, index_dataset, resolve_data
from enet.data.download import download_dataset
from enet.errors import EnetError

BACKENDS = ["torch"] + (["dali"] if dali_status() is None else [])
MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Every test gets its own cache folder (check results, downloads)."""
    monkeypatch.setenv("ENET_DATA_DIR", str(tmp_path / "cache"))


def _pixels(images: torch.Tensor) -> torch.Tensor:
    """Undo the normalisation: back to 0..255 pixel values."""
    return (images * STD + MEAN) * 255


# ---------------------------------------------------------------------------------------------
# datasets


def test_index_classes_counts_and_ignored(tmp_path):
    root = solid_dataset(tmp_path / "d", n_train=3, n_val=2)
    (root / "train" / "ant" / "notes.txt").write_text("x")
    (root / "train" / "ant" / "upper.JPG").write_bytes((root / "train/ant/ant0.JPEG").read_bytes())
    (root / "train" / "stray.JPEG").write_bytes(b"")  # outside any class folder
    index = index_dataset(root)
    assert index.classes == ("ant", "bee", "cat", "dog")
    assert len(index.train) == 13 and len(index.val) == 8
    assert index.train.per_class(4) == [4, 3, 3, 3]
    assert index.ignored == 2


def test_index_errors(tmp_path):
    root = solid_dataset(tmp_path / "d", n_train=1, n_val=1)
    (root / "val" / "dog").rename(root / "val" / "wolf")
    with pytest.raises(EnetError, match="only in train: dog; only in val: wolf"):
        index_dataset(root)
    only_train = solid_dataset(tmp_path / "e", n_train=1, n_val=1)
    import shutil

    shutil.rmtree(only_train / "val")
    with pytest.raises(EnetError, match="has no val/ folder"):
        index_dataset(only_train)
    with pytest.raises(EnetError, match="no such folder, and not a dataset name"):
        resolve_data(tmp_path / "missing")


def test_mini_is_shipped():
    index = index_dataset(resolve_data("mini"))
    assert len(index.classes) == 10
    assert index.train.per_class(10) == [24] * 10 and index.val.per_class(10) == [10] * 10
    assert (resolve_data("mini") / "PROVENANCE.md").read_text().count("Apache-2.0") == 1


# ---------------------------------------------------------------------------------------------
# loaders


@pytest.mark.parametrize("backend", BACKENDS)
def test_labels_shapes_and_ranges(tmp_path, backend):
    root = solid_dataset(tmp_path / "d")
    train, val, classes = build_loaders(root, 32, 8, loader=backend, randaugment=(0, 9), workers=1)
    assert classes == ["ant", "bee", "cat", "dog"]
    assert train.backend == backend and len(train) == 6 and len(val) == 3
    lo, hi = (0 - MEAN) / STD, (1 - MEAN) / STD
    for loader in (train, val):
        seen = 0
        for images, labels in loader:
            assert images.dtype == torch.float32 and labels.dtype == torch.int64
            assert images.shape[1:] == (3, 32, 32) and images.shape[0] == labels.shape[0]
            assert (images >= lo - 1e-4).all() and (images <= hi + 1e-4).all()
            colours = torch.tensor(CLASS_COLOURS, dtype=torch.float32)[labels]  # (B, 3)
            mean_rgb = _pixels(images).mean((2, 3))
            # every image shows its class's colour (JPEG and resampling move it by a few levels)
            assert (mean_rgb - colours).abs().max() < 8, (mean_rgb, colours)
            seen += len(labels)
        assert seen == loader.num_samples
    assert val.num_samples == 20


def test_backends_agree_on_order_and_counts(tmp_path):
    if len(BACKENDS) < 2:
        pytest.skip("DALI is not available")
    root = solid_dataset(tmp_path / "d")
    out = {}
    for backend in BACKENDS:
        train, val, classes = build_loaders(root, 24, 8, loader=backend, workers=1, seed=4)
        out[backend] = (classes, [y.tolist() for _, y in train], [y.tolist() for _, y in val])
    assert out["dali"] == out["torch"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_seed_gives_the_same_first_batch(backend):
    def first(seed):
        train, _, _ = build_loaders("mini", 48, 16, loader=backend, workers=1, seed=seed)
        return next(iter(train))

    a, b, c = first(1), first(1), first(2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_eval_sees_every_image_once(tmp_path, backend):
    root, levels = indexed_val_dataset(tmp_path / "d", n_val=23)
    for world in (1, 2):
        found = []
        for rank in range(world):
            _, val, _ = build_loaders(
                root, 16, 4, loader=backend, rank=rank, world_size=world, workers=1
            )
            for images, _ in val:
                found += _pixels(images).mean((1, 2, 3)).round().int().tolist()
        # each grey level identifies one image: all of them, none twice
        assert sorted(found) == levels, (world, found)


@pytest.mark.parametrize("backend", BACKENDS)
def test_resize_crop_keeps_the_whole_image(tmp_path, backend):
    """crop=resize: every training image is the whole file squashed to res x res (then maybe
    flipped): red left half and blue right half, or the mirror, never a part of it."""
    from PIL import Image

    root = solid_dataset(tmp_path / "d", n_train=4, n_val=1)
    for path in (root / "train").rglob("*.JPEG"):
        image = Image.new("RGB", (48, 40), (230, 20, 20))
        image.paste((20, 20, 230), (24, 0, 48, 40))
        image.save(path, quality=95)
    train, _, _ = build_loaders(
        root, 24, 4, loader=backend, crop="resize", randaugment=(0, 9), workers=1, seed=3
    )
    flips = set()
    for images, _ in train:
        pixels = _pixels(images)
        left, right = pixels[..., :, :10].mean((2, 3)), pixels[..., :, 14:].mean((2, 3))
        for lft, rgt in zip(left, right, strict=True):
            red_left = bool(lft[0] > lft[2])
            flips.add(red_left)
            red, blue = (lft, rgt) if red_left else (rgt, lft)
            assert red[0] > 200 and red[2] < 50 and blue[2] > 200 and blue[0] < 50
    assert flips == {True, False}  # both orientations occur: the flip still runs
    with pytest.raises(EnetError, match="crop must be"):
        build_loaders(root, 24, 4, loader=backend, crop="centre")


WOOF = Path(__file__).parent / "data" / "woof"  # real non-square Imagewoof JPEGs


def test_square_crop_matches_fastai_resize():
    """crop=square is fastai's `Resize` (ResizeMethod.Crop): on real non-square images, at the
    crop places its training call draws, the same box and the same pixels within resampling
    (fastai 2.8.4's outputs recorded by scripts/fastai_reference.py --resize); the squashed
    whole image (crop=resize) is far from them."""
    from torchvision.transforms.v2 import functional as TF

    from enet.data.torch_loader import _decode, square_box

    ref = torch.load(WOOF / "fastai_resize.pt", weights_only=True)
    assert len(ref["images"]) == 6
    for name, record in ref["images"].items():
        image = _decode(torch.from_numpy(np.fromfile(WOOF / name, dtype=np.uint8)))
        height, width = image.shape[1:]
        assert (width, height) == tuple(record["size"]) and width != height
        squashed = TF.resize(image, [32, 32], antialias=True).permute(1, 2, 0).float()
        for (across, down), theirs in record["crops"].items():
            top, left, h, w = square_box(height, width, across, down)
            assert h == w == min(height, width)
            # fastai's corner: int(fraction * room left), per axis
            assert (left, top) == (int(across * (width - w)), int(down * (height - h)))
            ours = TF.resized_crop(image, top, left, h, w, [32, 32], antialias=True)
            diff = (ours.permute(1, 2, 0).float() - theirs.float()).abs()
            # measured: 0.006 of a level on average, at most 1 level (decoders, resamplers)
            assert diff.mean() < 0.05 and diff.max() <= 2, (name, across, down, diff.mean())
            assert (squashed - theirs.float()).abs().mean() > 2  # measured: 3.5 at least


@pytest.mark.parametrize("backend", BACKENDS)
def test_square_crop_takes_a_random_square_of_real_images(backend):
    """Through the loaders: every training image is a resized square window of its file (as
    large as the file's shorter side, maybe flipped), not the squashed whole image; windows at
    more than one place occur."""
    from torchvision.transforms.v2 import functional as TF

    from enet.data.torch_loader import _decode

    train, _, classes = build_loaders(
        WOOF, 32, 3, loader=backend, crop="square", randaugment=(0, 9), workers=1, seed=5
    )
    candidates = []  # (label, place or "squashed", flipped, pixels)
    for path in sorted((WOOF / "train").rglob("*.JPEG")):
        image = _decode(torch.from_numpy(np.fromfile(path, dtype=np.uint8)))
        height, width = image.shape[1:]
        side, label = min(height, width), classes.index(path.parent.name)
        windows = [("squashed", TF.resize(image, [32, 32], antialias=True))]
        for offset in range(max(height, width) - side + 1):
            top, left = (offset, 0) if height > width else (0, offset)
            windows.append((offset, TF.resized_crop(image, top, left, side, side, [32, 32])))
        for place, pixels in windows:
            for flipped in (False, True):
                view = pixels.flip(-1) if flipped else pixels
                candidates.append((label, place, flipped, view.float()))
    places = set()
    for images, labels in train:
        for image, label in zip(_pixels(images), labels.tolist(), strict=True):
            mine = [c for c in candidates if c[0] == label]
            best = min(mine, key=lambda c: (c[3] - image).abs().mean())
            assert best[1] != "squashed" and (best[3] - image).abs().mean() < 4
            places.add(best[1])
    assert len(places) > 2


def test_train_plan_shards_are_disjoint_and_equal():
    plans = [TrainPlan(103, 8, seed=3, rank=r, world_size=3) for r in range(3)]
    batches = [p.epoch_indices(5) for p in plans]
    assert all(b.shape == (4, 8) for b in batches)
    flat = np.concatenate([b.ravel() for b in batches])
    assert len(set(flat.tolist())) == len(flat)
    assert not np.array_equal(plans[0].epoch_indices(5), plans[0].epoch_indices(6))
    assert [len(eval_shard(10, r, 3)) for r in range(3)] == [3, 3, 4]


@pytest.mark.parametrize("backend", BACKENDS)
def test_resume_mid_epoch_gives_the_same_batches(backend):
    def take(loader, k):
        out = []
        while len(out) < k:
            for x, y in loader:
                out.append((x, y))
                if len(out) == k:
                    break
        return out

    train, _, _ = build_loaders("mini", 40, 32, loader=backend, workers=1, seed=7)  # 7 / epoch
    take(train, 5)
    buf = io.BytesIO()
    torch.save({"loader": train.state_dict()}, buf)
    expected = take(train, 5)  # crosses into the second epoch
    buf.seek(0)
    resumed, _, _ = build_loaders("mini", 40, 32, loader=backend, workers=1, seed=7)
    resumed.load_state_dict(torch.load(buf, weights_only=True)["loader"])
    got = take(resumed, 5)
    for (xa, ya), (xb, yb) in zip(expected, got, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_resolutions_ramp_in_steps_of_32():
    sizes = Resolutions(224, min_res=128, ramp_start=0.25, ramp_end=0.75, total=100)
    got = [sizes.at(i) for i in range(100)]
    assert got[:26] == [128] * 26 and got[75:] == [224] * 25
    assert sorted(set(got)) == [128, 160, 192, 224] and got == sorted(got)
    assert all(s % 32 == 0 for s in got)
    assert Resolutions(224).at(0) == 224 and not Resolutions(224).progressive
    areas = sizes.areas(0, 100)
    assert areas[0] == (128 / 224) ** 2 and areas[-1] == 1.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_progressive_resizing_changes_the_size_batch_by_batch(backend):
    """Both loaders give each batch the size its place in the run calls for, across epochs,
    and a loader resumed mid-ramp continues with the same batches."""
    options = dict(loader=backend, workers=1, seed=3, min_res=32, ramp=(0.2, 0.8))
    train, _, _ = build_loaders("mini", 96, 16, **options)  # 15 batches per epoch
    train.sizes.total = 4 * len(train)
    seen, state = [], None
    for _epoch in range(4):
        for images, _ in train:
            seen.append(images.shape[-1])
            assert images.shape[-2:] == (seen[-1], seen[-1])
            if len(seen) == 27:
                state, after = train.state_dict(), []
            elif state is not None and len(after) < 3:
                after.append(images)
    assert seen == [train.sizes.at(i) for i in range(60)]
    assert set(seen) == {32, 64, 96}
    resumed, _, _ = build_loaders("mini", 96, 16, **options)
    resumed.sizes.total = 4 * len(train)
    resumed.load_state_dict(state)
    for expected, (got, _) in zip(after, resumed, strict=False):
        assert torch.equal(expected, got)


@pytest.mark.skipif("dali" not in BACKENDS, reason="DALI does not import here")
def test_dali_parallel_reading_gives_the_same_batches_and_resumes():
    """Files read by DALI's worker processes (the CUDA default), here on the CPU: the same
    batches as read serially, the sizes following a run length changed after the pipeline was
    built (they stay in this process), and a loader resumed mid-ramp continues bit for bit."""
    import multiprocessing

    def loader(parallel: bool):
        options = dict(loader="dali", workers=1, seed=3, min_res=32, ramp=(0.2, 0.8))
        train, _, _ = build_loaders("mini", 96, 16, **options)  # 15 batches per epoch
        train.parallel_read, train.sizes.total = parallel, 10 * len(train)
        return train

    def run(train, state=None, count=30):
        if state is not None:
            train.load_state_dict(state)
        out, saved = [], None
        while len(out) < count:
            for images, labels in train:
                if len(out) == 3:  # the pipeline is built: the run gets shorter
                    train.sizes.total = 2 * len(train)
                    workers = [
                        p for p in multiprocessing.active_children() if "Spawn" in p.name
                    ]  # DALI starts its workers with spawn; DataLoader's are forked
                out.append((images, labels))
                if len(out) == 20:
                    saved = train.state_dict()
                if len(out) == count:
                    break
        return out, saved, workers

    serial, _, none = run(loader(False))
    parallel, state, workers = run(loader(True))
    assert not none and workers  # DALI's reading processes ran only in parallel mode
    assert {images.shape[-1] for images, _ in parallel} == {32, 64, 96}
    for (xa, ya), (xb, yb) in zip(serial, parallel, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    resumed = loader(True)
    resumed.sizes.total = 2 * len(resumed)
    again, _, _ = run(resumed, state, count=5)
    for (xa, ya), (xb, yb) in zip(parallel[20:25], again, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_resume_with_the_other_backend_is_refused():
    if len(BACKENDS) < 2:
        pytest.skip("DALI is not available")
    train, _, _ = build_loaders("mini", 40, 32, loader="torch", workers=0)
    other, _, _ = build_loaders("mini", 40, 32, loader="dali", workers=1)
    with pytest.raises(EnetError, match="--loader torch"):
        other.load_state_dict(train.state_dict())


def test_bad_arguments():
    with pytest.raises(EnetError, match="--loader"):
        build_loaders("mini", 32, 8, loader="fast")
    with pytest.raises(EnetError, match="larger than the 240 training images"):
        build_loaders("mini", 32, 500)
    with pytest.raises(EnetError, match="randaugment"):
        build_loaders("mini", 32, 8, randaugment=(2, 31))


# ---------------------------------------------------------------------------------------------
# bad files


def test_checks_classify_each_kind_of_file(tmp_path):
    files = broken_dataset(tmp_path / "d")
    assert quick_problem(files["empty"]) == "empty file"
    assert quick_problem(files["text"]) == "not a JPEG or PNG image"
    assert "truncated JPEG" in quick_problem(files["truncated"])
    for ok in ("png_named_jpeg", "cmyk", "gray"):
        assert quick_problem(files[ok]) is None
        assert decode_problem(str(files[ok])).problem is None
    assert "PNG content" in decode_problem(str(files["png_named_jpeg"])).note
    assert decode_problem(str(files["truncated"])).problem


@pytest.mark.parametrize("backend", BACKENDS)
def test_loaders_skip_bad_files_and_run_an_epoch(tmp_path, backend):
    files = broken_dataset(tmp_path / "d")
    index = index_dataset(tmp_path / "d")
    assert set(index.skipped) == {str(files[k]) for k in ("truncated", "empty", "text")}
    train, val, _ = build_loaders(tmp_path / "d", 32, 4, loader=backend, workers=1)
    assert train.skipped == 3
    batches = list(train)
    assert len(batches) == len(train) == (6 * 2 + 3) // 4
    kept = set(index.train.files)
    assert {str(files[k]) for k in ("png_named_jpeg", "cmyk", "gray")} <= kept
    assert sum(len(y) for _, y in val) == 6


def test_data_check_lists_exactly_the_broken_files(tmp_path):
    from conftest import run_enet

    files = broken_dataset(tmp_path / "d")
    proc = run_enet(
        "data", "check", str(tmp_path / "d"), env={"ENET_DATA_DIR": str(tmp_path / "cache")}
    )
    assert proc.returncode == 1, proc.stderr
    for k in ("truncated", "empty", "text"):
        assert files[k].name in proc.stdout
    for k in ("cmyk", "gray"):
        assert files[k].name not in proc.stdout
    assert "really_png.JPEG" in proc.stdout and "loads fine" in proc.stdout  # a note only
    assert "3 unreadable" in proc.stdout
    # nothing was written into the dataset; the list lives in the cache folder
    assert not any(p.suffix == ".json" for p in (tmp_path / "d").rglob("*"))
    assert list((tmp_path / "cache" / "checks").glob("*.decode.json"))


def test_data_info_cli(tmp_path):
    from conftest import run_enet

    root = solid_dataset(tmp_path / "d", n_train=3, n_val=2, size=(48, 40))
    proc = run_enet("data", "info", str(root), "--json", check=True)
    import json

    info = json.loads(proc.stdout)
    assert info["classes"] == ["ant", "bee", "cat", "dog"]
    assert info["train_images"] == 12 and info["val_per_class"] == [2, 2, 2, 2]
    assert info["width_range"] == [48, 48] and info["height_range"] == [40, 40]
    assert info["total_bytes"] == sum(p.stat().st_size for p in root.rglob("*.JPEG"))


def test_data_info_summarises_many_classes():
    """Issue 33: 1,000 classes printed 1,000 rows; beyond 30 the table shows the 10 smallest and
    10 largest by training images and says how many it leaves out (--json has them all)."""
    from rich.console import Console

    from enet.tables import data_info_table

    n = 1000
    info = dict(
        root="imagenet", classes=[f"c{i:04d}" for i in range(n)],
        train_per_class=[1300 - (i % 7) for i in range(n)], val_per_class=[50] * n,
        train_images=sum(1300 - (i % 7) for i in range(n)), val_images=50 * n,
    )  # fmt: skip
    console = Console(width=120, record=True)
    console.print(data_info_table(info))
    text = console.export_text()
    assert "980 more classes" in text and "--json lists all" in text
    rows = [line for line in text.splitlines() if "│ c0" in line]
    assert len(rows) == 20 and "1294" in text and "1300" in text
    small = dict(
        info, classes=info["classes"][:30], train_per_class=[5] * 30, val_per_class=[1] * 30
    )
    console = Console(width=120, record=True)
    console.print(data_info_table(small))
    rows = [line for line in console.export_text().splitlines() if "│ c00" in line]
    assert len(rows) == 30  # up to 30 classes: every one


# ---------------------------------------------------------------------------------------------
# downloads, from a real HTTP server on 127.0.0.1


def _archive(tmp_path: Path) -> bytes:
    src = solid_dataset(tmp_path / "src" / "tiny2-160", n_train=2, n_val=1)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src, arcname="tiny2-160")
    return buf.getvalue()


@pytest.fixture()
def server(tmp_path):
    """Serves `files` (name -> bytes); a name ending in '!cut' announces its size, sends half."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            name = self.path.lstrip("/")
            data = files.get(name)
            if data is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2] if name.endswith("!cut") else data)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", files
    httpd.shutdown()


def _leftovers(folder: Path) -> list[str]:
    """What a download left in the cache folder (check results of indexing aside)."""
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name != "checks")


def test_download_good_archive(tmp_path, server):
    url, files = server
    data = _archive(tmp_path)
    files["tiny.tgz"] = data
    dest = tmp_path / "cache" / "tiny"
    out = download_dataset(f"{url}/tiny.tgz", (hashlib.md5(data).hexdigest(),), dest, quiet=True)
    assert out == dest
    assert len(index_dataset(dest).train) == 8
    assert _leftovers(dest.parent) == ["tiny"]  # no partial file, no temporary folder


def test_download_wrong_checksum_leaves_nothing(tmp_path, server):
    url, files = server
    files["tiny.tgz"] = _archive(tmp_path)
    dest = tmp_path / "cache" / "tiny"
    with pytest.raises(
        EnetError, match=r"checksum mismatch for http://127.0.0.1:\d+/tiny.tgz.*--data PATH"
    ):
        download_dataset(f"{url}/tiny.tgz", ("0" * 32,), dest, quiet=True)
    assert _leftovers(dest.parent) == []


def test_download_cut_short_leaves_nothing(tmp_path, server):
    url, files = server
    files["tiny.tgz!cut"] = _archive(tmp_path)
    dest = tmp_path / "cache" / "tiny"
    with pytest.raises(EnetError, match="tiny.tgz!cut.*--data PATH"):
        download_dataset(f"{url}/tiny.tgz!cut", (), dest, quiet=True)
    assert _leftovers(dest.parent) == []


def test_download_truncated_archive_leaves_nothing(tmp_path, server):
    url, files = server
    data = _archive(tmp_path)
    files["half.tgz"] = data[: len(data) // 2]  # served whole, but the archive itself is cut
    dest = tmp_path / "cache" / "tiny"
    with pytest.raises(EnetError, match="could not extract"):
        download_dataset(f"{url}/half.tgz", (), dest, quiet=True)
    assert _leftovers(dest.parent) == []


def test_named_dataset_from_a_mirror_and_offline(tmp_path, server, monkeypatch):
    url, files = server
    files[NAMED_DATASETS["imagewoof"].archive] = _archive(tmp_path)  # not the real archive
    monkeypatch.setenv("ENET_DOWNLOAD_BASE", url)
    with pytest.raises(EnetError, match="checksum mismatch.*imagewoof2-160.tgz"):
        resolve_data("imagewoof", quiet=True)
    assert _leftovers(tmp_path / "cache") == []
    monkeypatch.setenv("ENET_DOWNLOAD_BASE", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(
        EnetError, match=r"could not download http://127.0.0.1:9/imagenette2-160.tgz.*--data PATH"
    ):
        resolve_data("imagenette", quiet=True)


# ---------------------------------------------------------------------------------------------
# the full Imagenette copy (ENET_TEST_DATA), when the machine has it


def test_imagenette_copy_lists_and_loads(imagenette_path):
    index = index_dataset(imagenette_path)
    # the counts of its PROVENANCE.md table
    assert len(index.train) == 9469 and len(index.val) == 3925 and index.skipped == {}
    assert index.train.per_class(10)[:3] == [963, 955, 993]
    assert index.val.per_class(10)[-2:] == [399, 390]
    for backend in BACKENDS:
        train, val, classes = build_loaders(index, 128, 32, loader=backend, workers=2)
        assert classes[0] == "n01440764" and len(train) == 9469 // 32
        images, labels = next(iter(train))
        assert images.shape == (32, 3, 128, 128) and labels.max() < 10
        assert val.num_samples == 3925


def _unusual_images(folder: Path) -> dict[str, tuple]:
    """One file of each kind either backend must read, with the RGB it should come out as."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    grey16 = Image.fromarray(np.full((20, 24), 40000, dtype=np.uint16))
    grey16.save(folder / "grey16.png")
    expected["grey16.png"] = (156, 156, 156)  # 40000 >> 8
    palette = Image.new("P", (24, 20), 0)
    palette.putpalette([200, 40, 40] + [0] * 765)
    palette.save(folder / "palette.png")
    expected["palette.png"] = (200, 40, 40)
    Image.new("LA", (24, 20), (90, 255)).save(folder / "grey_alpha.png")
    expected["grey_alpha.png"] = (90, 90, 90)
    Image.new("RGBA", (24, 20), (30, 160, 60, 255)).save(folder / "rgba.png")
    expected["rgba.png"] = (30, 160, 60)
    Image.new("CMYK", (24, 20), (0, 200, 200, 30)).save(folder / "cmyk.jpg", quality=95)
    with Image.open(folder / "cmyk.jpg") as im:
        expected["cmyk.jpg"] = im.convert("RGB").getpixel((5, 5))
    return expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_image_kind_decodes_to_the_same_rgb(tmp_path, backend):
    """16-bit, palette, grey + alpha, RGBA and CMYK files: read by both backends, as RGB."""
    root = solid_dataset(tmp_path / "d", n_train=2, n_val=0, classes=("a", "b"))
    expected = _unusual_images(root / "val" / "a")
    (root / "val" / "b").mkdir(exist_ok=True)
    _, val, _ = build_loaders(
        root, 16, 2, loader=backend, crop_pct=1.0, workers=0, eval_batch_size=16
    )
    images = torch.cat([x for x, _ in val])  # the whole pass: no iterator left half-read
    names = sorted(expected)  # the loader lists a class's files in name order
    got = _pixels(images).mean((2, 3))
    for name, colour in zip(names, got, strict=True):
        assert torch.allclose(colour, torch.tensor(expected[name], dtype=torch.float32), atol=6), (
            name,
            colour,
        )


@pytest.mark.parametrize("backend", BACKENDS)
def test_both_loaders_normalise_with_the_mean_and_std_given(tmp_path, backend):
    """A zoo model's own normalisation (a ViT's mean and std 0.5) reaches training and
    evaluation batches alike; a malformed one is one line."""
    root = solid_dataset(tmp_path / "d", n_train=4, n_val=2)
    half = (0.5, 0.5, 0.5)
    train, val, _ = build_loaders(
        root, 16, 4, loader=backend, crop_pct=1.0, workers=0, randaugment=(0, 9), mean=half,
        std=(0.25, 0.5, 0.5), eval_batch_size=8,
    )  # fmt: skip
    expected = {
        k: (torch.tensor(c, dtype=torch.float32) / 255 - 0.5) / torch.tensor([0.25, 0.5, 0.5])
        for k, c in enumerate(CLASS_COLOURS)
    }
    for loader in (train, val):
        for images, labels in loader:
            for image, label in zip(images, labels.tolist(), strict=True):
                colour = image.mean((1, 2))
                assert torch.allclose(colour, expected[label], atol=0.06), (backend, colour)
    with pytest.raises(EnetError, match=r"std must be three values above 0"):
        build_loaders(root, 16, 4, loader=backend, workers=0, std=(0.5, 0.0, 0.5))


def test_exif_orientation_applied_by_both_backends(tmp_path):
    """A landscape JPEG tagged 'rotate 90 clockwise' is read upright (portrait) by both."""
    from PIL import Image

    root = solid_dataset(tmp_path / "d", n_train=2, n_val=0, classes=("a", "b"))
    (root / "val" / "a").mkdir(parents=True, exist_ok=True)
    (root / "val" / "b").mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (40, 20), (230, 20, 20))  # red left half, blue right half
    image.paste((20, 20, 230), (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # the stored image is to be turned 90 degrees clockwise for display
    image.save(root / "val" / "a" / "rotated.jpg", exif=exif, quality=95)
    for backend in BACKENDS:
        _, val, _ = build_loaders(root, 16, 1, loader=backend, crop_pct=1.0, workers=0)
        pixels = _pixels(torch.cat([x for x, _ in val]))[0]  # upright: 20 wide, 40 tall
        top, bottom = pixels[:, :6].mean((1, 2)), pixels[:, -6:].mean((1, 2))
        # turned clockwise, the left (red) half is on top
        assert top[0] > 150 and top[2] < 100 and bottom[2] > 150 and bottom[0] < 100, backend


def test_prefetched_keeps_order_hands_over_errors_and_stops_when_closed():
    import threading

    from enet.data.torch_loader import prefetched

    cpu = torch.device("cpu")
    out = list(prefetched(lambda i: (torch.tensor(i),), iter(range(20)), cpu))
    assert [int(t[0]) for t in out] == list(range(20))

    def failing(i):
        if i == 3:
            raise EnetError("file 3 is broken")
        return (torch.tensor(i),)

    with pytest.raises(EnetError, match="file 3"):
        list(prefetched(failing, iter(range(10)), cpu))
    endless = prefetched(lambda i: (torch.tensor(i),), iter(range(10**9)), cpu)
    assert int(next(endless)[0]) == 0
    endless.close()  # the loop ended early: the thread ends too
    assert not any(t.name == "enet-prefetch" for t in threading.enumerate())


def test_resized_crops_batches_equal_boxes_with_the_same_pixels():
    """The torch GPU path resizes crops of equal size together (one call a group, flips picked
    as views): the same pixels as cropping, resizing and flipping image by image."""
    import torchvision.transforms.v2.functional as TF

    from enet.data.torch_loader import resized_crops

    gen = torch.Generator().manual_seed(0)
    shapes = [(224, 224)] * 5 + [(300, 200), (180, 260), (224, 224)]
    images = [torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8) for h, w in shapes]
    boxes = [(0, 0, 224, 224)] * 5 + [(10, 5, 150, 120), (3, 40, 150, 120), (7, 9, 97, 131)]
    flips = [True, False, True, True, False, False, True, True]  # groups of 5, 2 and 1
    got = resized_crops(images, boxes, flips, 64)
    assert got.shape == (8, 3, 64, 64) and got.dtype == torch.uint8
    for image, (top, left, h, w), flip, out in zip(images, boxes, flips, got, strict=True):
        expected = TF.resized_crop(image, top, left, h, w, [64, 64], antialias=True)
        assert torch.equal(out, expected.flip(-1) if flip else expected)
    unflipped = resized_crops(images[1:2] + images[4:5], boxes[:2], [False, False], 32)
    assert torch.equal(unflipped[1], TF.resize(images[4], [32, 32], antialias=True))


def test_gpu_path_batches_cross_worker_processes(tmp_path):
    """The workers of the torch GPU path hand each batch's JPEG bytes over to the main process
    (decoded there, nvJPEG on CUDA). Handed over as read_file gives them (a mapped file, whose
    storage has no descriptor to share) every send failed and the loader waited for ever: the
    first GPU run. Here with real worker processes on the CPU: each batch arrives, its JPEGs
    in one tensor, and decodes to the same pixels as the files (CMYK, grey, a PNG among them)."""
    import copy

    from torch.utils.data import DataLoader
    from torchvision.io import read_file

    from enet.data.torch_loader import _decode, unpack

    broken_dataset(tmp_path / "d")
    train, _, _ = build_loaders(tmp_path / "d", 32, 4, loader="torch", workers=1)
    batches = copy.copy(train.dataset)
    batches.encoded_only = True  # what the loader's workers build on CUDA
    keys = [(0, b, 32) for b in range(len(train.plan))]
    loader = DataLoader(batches, batch_size=None, sampler=keys, num_workers=2, timeout=60)
    seen = 0
    for key, (packed, labels, seed, res, failed) in zip(keys, loader, strict=True):
        assert failed == []
        # cropped, resized and flipped as on the GPU: the pixels the CPU path's workers make
        cpu_images, _, _ = train.dataset[key]
        assert torch.equal(train._gpu_images(packed, labels, seed, res)[0], cpu_images)
        flat, sizes, rest = packed
        assert flat.dtype == torch.uint8 and flat.numel() == sum(sizes) > 0
        idx = train.plan.epoch_indices(0)[key[1]]
        assert labels.tolist() == [train.dataset.labels[i] for i in idx]
        for i, image in zip(idx, unpack(packed, torch.device("cpu")), strict=True):
            assert torch.equal(image, _decode(read_file(batches.files[i]))), batches.files[i]
            seen += 1
        assert sum(image is not None for _, _, image, _ in rest) == len(idx) - len(sizes)
    assert seen == train.num_samples
