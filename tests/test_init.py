"""Fine-tuning: --init-from an enet checkpoint or a torchvision state dict, the classifier
replaced when the classes differ; --pretrained's offline message; summary.json says which."""

from __future__ import annotations

import json

import torch
import torchvision
from conftest import run_enet
from datasets_util import solid_dataset

TINY_B0 = ["--model", "efficientnet_b0", "--res", "32", "--epochs", "1", "--batch-size", "16",
           "--device", "cpu", "--set", "data.workers=1"]  # fmt: skip


def test_init_from_a_torchvision_state_dict_replaces_the_classifier(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.efficientnet_b0(num_classes=1000)
    path = tmp_path / "tv_b0.pth"
    torch.save(tv.state_dict(), path)
    out = tmp_path / "run"
    proc = run_enet("train", *TINY_B0, "--data", "mini", "--out", str(out), "--init-from",
                    str(path), "--set", "optim.lr=1e-9", check=True)  # fmt: skip
    assert "classifier replaced (1000 -> 10 classes)" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["init"].startswith(f"file {path}")
    # with an lr of 1e-9 the backbone is still torchvision's (up to BatchNorm statistics)
    ours = torch.load(out / "checkpoints" / "last.pt", weights_only=True)["model"]
    stem = tv.state_dict()["features.0.0.weight"]
    assert torch.allclose(ours["stem.conv.weight"], stem, atol=1e-6)
    assert ours["head.fc.weight"].shape == (10, 1280)


def test_init_from_an_enet_checkpoint_and_errors(tmp_path):
    first = tmp_path / "first"
    run_enet("train", *TINY_B0, "--data", "mini", "--out", str(first), check=True)
    other = solid_dataset(tmp_path / "d", n_train=8, n_val=2)  # 4 classes
    second = tmp_path / "second"
    proc = run_enet("train", *TINY_B0, "--data", str(other), "--out", str(second),
                    "--init-from", str(first / "checkpoints" / "best.pt"), check=True)  # fmt: skip
    assert "10 -> 4 classes" in proc.stdout
    best = str(first / "checkpoints" / "best.pt")
    wrong = run_enet("train", *TINY_B0, "--model", "xresnet18", "--data", "mini", "--out",
                     str(tmp_path / "w"), "--init-from", best)  # fmt: skip
    assert wrong.returncode == 2 and "does not fit XResNet" in wrong.stderr
    missing = run_enet("train", *TINY_B0, "--data", "mini", "--out", str(tmp_path / "m"),
                       "--init-from", str(tmp_path / "nope.pt"))  # fmt: skip
    assert missing.returncode == 2 and "no such file" in missing.stderr
    xres = run_enet("train", *TINY_B0, "--model", "xresnet18", "--data", "mini", "--out",
                    str(tmp_path / "x"), "--pretrained")  # fmt: skip
    assert xres.returncode == 2 and "efficientnet_b0-b7, not xresnet18" in xres.stderr


def test_pretrained_offline_says_where_to_put_the_file(tmp_path):
    proc = run_enet("train", *TINY_B0, "--data", "mini", "--out", str(tmp_path / "p"),
                    "--pretrained", env={"TORCH_HOME": str(tmp_path / "hub"),
                                         "HTTPS_PROXY": "http://127.0.0.1:9"})  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "download.pytorch.org" in proc.stderr and "place that file in" in proc.stderr
    assert str(tmp_path / "hub") in proc.stderr
