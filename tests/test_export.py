"""`enet export`: ONNX checked with onnxruntime at batch 1 and 3, torch.export and TorchScript
programs loaded back, each against the PyTorch model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import run_enet

from enet.config import config_from_dict
from enet.evaluate import load_model


def _reference(run_dir):
    ckpt = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    cfg = config_from_dict(ckpt["config"])
    return load_model(cfg, ckpt["model"], len(ckpt["classes"]), torch.device("cpu")).eval()


def _inputs():
    g = torch.Generator().manual_seed(0)
    return [torch.randn(n, 3, 32, 32, generator=g) for n in (1, 3)]


def test_onnx_matches_pytorch_in_onnxruntime(tmp_path, run_dir):
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "model.onnx"
    proc = run_enet("export", str(run_dir), "--format", "onnx", "--out", str(out), "--json",
                    check=True)  # fmt: skip
    info = json.loads(proc.stdout)
    assert info["res"] == 32 and len(info["classes"]) == 10
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    # the classes travel with the file (issue 33): ids and readable names, in output order
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["classes"]) == info["classes"] and meta["res"] == "32"
    # the input's normalisation and evaluation crop too: xresnet takes ImageNet's
    assert json.loads(meta["mean"]) == info["mean"] == [0.485, 0.456, 0.406]
    assert json.loads(meta["std"]) == [0.229, 0.224, 0.225] and meta["crop_pct"] == "0.875"
    names = json.loads(meta["class_names"])
    assert len(names) == 10 and names[info["classes"].index("n01440764")] == "tench"
    model = _reference(run_dir)
    for x in _inputs():  # the batch axis is dynamic
        (logits,) = session.run(None, {"images": x.numpy()})
        with torch.no_grad():
            expected = model(x).numpy()
        assert logits.shape == expected.shape
        np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("fmt", ["exported", "torchscript"])
def test_programs_load_back_and_match(tmp_path, run_dir, fmt):
    out = tmp_path / f"model.{fmt}"
    run_enet("export", str(run_dir), "--format", fmt, "--out", str(out), check=True)
    program = (
        torch.export.load(str(out)).module() if fmt == "exported" else torch.jit.load(str(out))
    )
    model = _reference(run_dir)
    for x in _inputs():
        with torch.no_grad():
            assert torch.allclose(program(x), model(x), atol=1e-5)


def test_export_errors(tmp_path, run_dir):
    bad = run_enet("export", str(run_dir), "--format", "tflite", "--out", str(tmp_path / "m"))
    assert bad.returncode == 2 and "onnx, exported or torchscript" in bad.stderr
    no_ema = run_enet("export", str(run_dir), "--ema", "--out", str(tmp_path / "m.onnx"))
    assert no_ema.returncode == 2 and "no EMA weights" in no_ema.stderr
    assert not list(tmp_path.glob(".*.tmp"))
