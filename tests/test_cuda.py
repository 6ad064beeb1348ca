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
