"""Crafted datasets for the tests: real image files on disk, made with Pillow."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

# One solid colour per class: after any crop, flip or resize an image keeps its class colour.
CLASS_COLOURS = [(220, 30, 30), (30, 200, 40), (40, 60, 210), (230, 220, 40)]


def solid_dataset(
    root: Path,
    n_train: int = 12,
    n_val: int = 5,
    size=(48, 40),
    classes=("ant", "bee", "cat", "dog"),
) -> Path:
    """ROOT/{train,val}/<class>/*.JPEG, every image of class k filled with CLASS_COLOURS[k]."""
    for split, n in (("train", n_train), ("val", n_val)):
        for k, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.new("RGB", size, CLASS_COLOURS[k]).save(
                    folder / f"{name}{i}.JPEG", quality=95
                )
    return root


def indexed_val_dataset(root: Path, n_val: int = 23, size=(40, 40)) -> tuple[Path, list]:
    """A dataset whose val images each have a unique grey level: the image identifies itself."""
    solid_dataset(root, n_train=4, n_val=0, classes=("a", "b"))
    levels = []
    for i in range(n_val):
        level = 20 + 9 * i
        name = "ab"[i % 2]
        folder = root / "val" / name
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (level, level, level)).save(folder / f"v{i:03d}.png")
        levels.append(level)
    return root, levels


def broken_dataset(root: Path) -> dict[str, Path]:
    """Two classes of good images plus every kind of trouble; returns the special files."""
    solid_dataset(root, n_train=6, n_val=3, classes=("a", "b"))
    train_a = root / "train" / "a"
    good = (train_a / "a0.JPEG").read_bytes()
    files = {
        "truncated": train_a / "truncated.JPEG",
        "empty": train_a / "empty.JPEG",
        "text": train_a / "notes.JPEG",
        "png_named_jpeg": train_a / "really_png.JPEG",
        "cmyk": train_a / "cmyk.jpg",
        "gray": root / "train" / "b" / "gray.jpeg",
    }
    files["truncated"].write_bytes(good[: len(good) // 2])
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is not an image\n")
    Image.new("RGB", (40, 40), (200, 20, 20)).save(files["png_named_jpeg"], format="PNG")
    Image.new("CMYK", (40, 40), (0, 200, 200, 30)).save(files["cmyk"], format="JPEG")
    Image.new("L", (40, 40), 128).save(files["gray"], format="JPEG")
    (train_a / "README.txt").write_text("not an image, ignored")
    return files


def broken_stream(src: Path, dst: Path) -> Path:
    """A copy of a real JPEG whose entropy-coded data is garbled in the middle: its header and
    end marker pass the listing's quick check, but no decoder can read it (libjpeg-turbo through
    torchvision: "Unsupported marker type"; Pillow: "broken data stream")."""
    import random

    data = bytearray(Path(src).read_bytes())
    rng = random.Random(0)
    start = len(data) // 3
    for i in range(start, start + 400):
        data[i] = rng.randrange(256)
    dst.write_bytes(bytes(data))
    return dst
