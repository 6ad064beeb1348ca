"""CUDA paths: run by scripts/gpu_check.sh on a machine with an NVIDIA GPU; skipped elsewhere."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import run_enet
from datasets_util import CLASS_COLOURS, solid_dataset

from enet.data import build_loaders, dali_status
from enet.data.common import IMAGENET_MEAN, IMAGENET_STD
from enet.models import create_model

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU"),
]
BACKENDS = ["torch"] + (["dali"] if dali_status() is None else [])


@pytest.mark.parametrize("backend", BACKENDS)
def test_gpu_loaders_decode_on_the_device_with_right_labels(tmp_path, backend):
    root = solid_dataset(tmp_path / "d")
    train, val, _ = build_loaders(
        root,
        32,
        8,
        loader=backend,
        device="cuda",
        randaugment=(0, 9),
        workers=2,
        channels_last=True,
    )
    mean = torch.tensor(IMAGENET_MEAN, device="cuda").view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device="cuda").view(1, 3, 1, 1)
    for loader in (train, val):
        for images, labels in loader:
            assert images.is_cuda and labels.is_cuda and images.dtype == torch.float32
            assert images.is_contiguous(memory_format=torch.channels_last)
            rgb = ((images * std + mean) * 255).mean((2, 3))
            colours = torch.tensor(CLASS_COLOURS, dtype=torch.float32, device="cuda")[labels]
            assert (rgb - colours).abs().max() < 10


def test_gpu_randaugment_runs_on_the_device():
    from enet.data.randaugment import rand_augment

    x = torch.randint(0, 256, (16, 3, 64, 64), dtype=torch.uint8, device="cuda")
    out = rand_augment(x, 2, 9, torch.Generator().manual_seed(0))
    assert out.is_cuda and out.dtype == torch.uint8 and out.shape == x.shape


@pytest.mark.parametrize("name", ["efficientnet_b0", "xresnet50"])
def test_bf16_channels_last_step(name):
    model = create_model(name, 10).cuda().to(memory_format=torch.channels_last)
    x = torch.randn(8, 3, 64, 64, device="cuda").to(memory_format=torch.channels_last)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = torch.nn.functional.cross_entropy(
            model(x), torch.randint(0, 10, (8,), device="cuda")
        )
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters())


def test_train_one_epoch_on_cuda(tmp_path):
    out = tmp_path / "run"
    run_enet(
        "train",
        "--config",
        "configs/smoke.yaml",
        "--device",
        "cuda",
        "--loader",
        "torch",
        "--epochs",
        "1",
        "--out",
        str(out),
        check=True,
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["precision"] in ("bf16", "fp16") and summary["status"] == "finished"


def test_gpu_torch_path_reads_bad_and_unusual_files(tmp_path):
    """CMYK, grey, PNG-named-JPEG and truncated files through the torch loader's GPU path: bad
    files are skipped and counted, the unusual ones decoded (CMYK on the CPU, not nvJPEG)."""
    from datasets_util import broken_dataset

    root = tmp_path / "d"
    broken_dataset(root)
    train, val, _ = build_loaders(
        root, 32, 4, loader="torch", device="cuda", randaugment=(0, 9), workers=2
    )
    assert train.skipped >= 3  # truncated, empty, text
    seen = 0
    for loader in (train, val):
        for images, labels in loader:
            assert images.is_cuda and torch.isfinite(images).all()
            seen += len(labels)
    assert seen == train.num_samples + val.num_samples


def test_training_steps_synchronise_rarely(tmp_path):
    """A few steps under torch.cuda.set_sync_debug_mode("warn"): host synchronisations per
    step, written for gpu_check.sh to report (the target is none between log steps)."""
    import warnings

    from enet.config import build_config
    from enet.train.loop import fit

    cfg = build_config(
        "configs/smoke.yaml",
        {"train.device": "cuda", "data.loader": "torch", "run.out": str(tmp_path / "run")},
        ["train.epochs=1", "train.log_every_steps=1000"],
    )
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            summary = fit(cfg)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    syncs = sum("synchroniz" in str(w.message) for w in caught)
    per_step = syncs / summary["steps"]
    (tmp_path.parent / "syncs.json").write_text(json.dumps({"syncs": syncs, "per_step": per_step}))
    print(f"host synchronisations: {syncs} in {summary['steps']} steps ({per_step:.1f} per step)")
    assert summary["status"] == "finished"
