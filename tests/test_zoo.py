"""torchvision:NAME and timm:NAME models (enet/models/zoo.py) through the registry's contract and
enet's commands: small zoo models (timm's test_resnet, torchvision's squeezenet1_1) at 32 px on
crafted data, trained, resumed bit for bit, evaluated, predicted, exported, fine-tuned and
compared with adaptive seeds; and every bad input as one line."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, run_enet
from datasets_util import solid_dataset

from enet.config import build_config
from enet.data.common import IMAGENET_MEAN, IMAGENET_STD
from enet.errors import EnetError
from enet.models import (
    classifier_name,
    create_model,
    get_model_info,
    set_grad_checkpointing,
)
from enet.settings import resolve_normalization, zoo_defaults_note

timm = pytest.importorskip("timm")  # a dev dependency: make install brings it


def test_zoo_defaults_come_from_the_zoos_metadata():
    tv = get_model_info("torchvision:resnet18")
    assert (tv.family, tv.resolution, tv.crop_pct) == ("torchvision", 224, 0.875)
    assert "ResNet18_Weights.IMAGENET1K_V1" in tv.defaults_from
    inception = get_model_info("torchvision:inception_v3")
    assert (inception.resolution, inception.crop_pct) == (299, round(299 / 342, 4))
    t = get_model_info("timm:test_resnet")
    cfg = timm.models.get_pretrained_cfg("test_resnet")
    assert (t.family, t.resolution, t.crop_pct) == ("timm", cfg.input_size[-1], cfg.crop_pct)
    assert t.defaults_from == "timm's pretrained_cfg"
    # parameters as the zoo builds them
    assert t.params(4) == sum(p.numel() for p in timm.create_model("test_resnet", num_classes=4)
                              .parameters())  # fmt: skip
    assert get_model_info("torchvision:resnet18").params(1000) == 11_689_512


@pytest.mark.parametrize(
    "name,expected",
    [
        ("torchvision:resnet18", "fc"),
        ("torchvision:mobilenet_v3_small", "classifier.3"),
        ("torchvision:squeezenet1_1", "classifier.1"),
        ("torchvision:vit_b_16", "heads.head"),
        ("timm:test_resnet", "fc"),
        ("efficientnet_b0", "head.fc"),
        ("xresnet18", "head.fc"),
    ],
)
def test_the_classifier_is_found_for_every_kind_of_model(name, expected):
    with torch.device("meta"):
        model = create_model(name, 7)
    assert classifier_name(model, 7) == expected


def test_unknown_names_and_rejected_options_are_one_line():
    with pytest.raises(EnetError, match=r"closest: timm:test_resnet"):
        get_model_info("timm:test_resnt")
    with pytest.raises(EnetError, match=r"closest: torchvision:resnet18"):
        get_model_info("torchvision:resnet1")
    with pytest.raises(EnetError, match=r"unknown model 'efficientnet_bo'; closest:"):
        get_model_info("efficientnet_bo")
    with pytest.raises(EnetError, match=r"rejects option 'colour' \(model.kwargs\)"):
        create_model("timm:test_resnet", 4, colour=1)
    with pytest.raises(EnetError, match=r"rejects option 'colour'"):
        create_model("torchvision:resnet18", 4, colour=1)
    model = create_model("timm:test_resnet", 4, drop_rate=0.3)  # a timm option passes through
    assert model.drop_rate == 0.3
    with pytest.raises(EnetError, match="cannot take 64x64 inputs"):
        get_model_info("torchvision:vit_b_16").gflops(64, 10)


def test_config_keys_for_zoo_models():
    cfg = build_config(
        flags={"model.name": "timm:test_resnet"},
        overrides=["model.kwargs.drop_rate=0.1", "model.kwargs.drop_path_rate=0.05"],
    )
    assert cfg.model.kwargs == {"drop_rate": 0.1, "drop_path_rate": 0.05}
    with pytest.raises(EnetError, match=r"model.dropout applies to enet's own models"):
        build_config(flags={"model.name": "timm:test_resnet"}, overrides=["model.dropout=0.2"])
    with pytest.raises(EnetError, match=r"model.kwargs must be a mapping"):
        build_config(overrides=["model.kwargs=3"])
    with pytest.raises(EnetError, match=r"grad_checkpointing: torchvision:resnet18 does not"):
        build_config(
            flags={"model.name": "torchvision:resnet18"},
            overrides=["train.grad_checkpointing=true"],
        )
    with pytest.raises(EnetError, match=r"model.name: unknown model 'timm:nope'"):
        build_config(flags={"model.name": "timm:nope"})
    with torch.device("meta"):
        tv = create_model("torchvision:resnet18", 4)
        tm = create_model("timm:test_resnet", 4)
    with pytest.raises(EnetError, match="does not support it"):
        set_grad_checkpointing(tv, "torchvision:resnet18")
    set_grad_checkpointing(tv, "torchvision:resnet18", False)  # off is always fine
    set_grad_checkpointing(tm, "timm:test_resnet")
    assert tm.grad_checkpointing


def test_a_zoo_models_own_normalisation_unless_the_config_sets_one():
    """timm's ViTs expect mean and std 0.5 (their pretrained_cfg), torchvision's and enet's
    models ImageNet's; data.mean and data.std override, and a malformed one is one line."""
    vit = build_config(flags={"model.name": "timm:test_vit"})
    assert get_model_info("timm:test_vit").mean == (0.5, 0.5, 0.5)
    assert resolve_normalization(vit) == ((0.5,) * 3, (0.5,) * 3)
    assert "crop 0.95, mean 0.5,0.5,0.5 and std 0.5,0.5,0.5 from timm's" in zoo_defaults_note(vit)
    tv = build_config(flags={"model.name": "torchvision:resnet18"})
    assert resolve_normalization(tv) == (IMAGENET_MEAN, IMAGENET_STD)
    assert "mean" not in zoo_defaults_note(tv)
    assert resolve_normalization(build_config()) == (IMAGENET_MEAN, IMAGENET_STD)
    mine = build_config(flags={"model.name": "timm:test_vit"}, overrides=["data.mean=0.4,0.4,0.4"])
    assert resolve_normalization(mine) == ((0.4,) * 3, (0.5,) * 3)
    assert "mean" not in zoo_defaults_note(mine) and "std 0.5,0.5,0.5 from" in zoo_defaults_note(
        mine
    )
    with pytest.raises(EnetError, match=r"data.std must be empty .* three values"):
        build_config(overrides=["data.std=0.2,0.2"])


def test_predict_eval_and_export_take_the_runs_normalisation(tmp_path):
    """A ViT trained with its own mean and std: eval and predict give each image the same
    probability (both normalise as the training did), and the exported file says which."""
    data = solid_dataset(tmp_path / "d", n_train=4, n_val=2)
    run = tmp_path / "vit"
    first = run_enet(
        "train", "--model", "timm:test_vit", "--data", str(data), "--res", "32", "--epochs", "1",
        "--batch-size", "8", "--device", "cpu", "--loader", "torch", "--set", "data.workers=0",
        "--set", "model.kwargs.img_size=32", "--out", str(run), check=True,
    )  # fmt: skip
    assert "mean 0.5,0.5,0.5 and std 0.5,0.5,0.5 from timm's pretrained_cfg" in first.stdout
    best = run / "checkpoints" / "best.pt"
    run_enet("eval", str(best), "--out", str(tmp_path / "eval"), check=True)
    text = gzip.decompress((tmp_path / "eval" / "predictions.csv.gz").read_bytes()).decode()
    header, *rows = [line.split(",") for line in text.splitlines()]
    prob = {r[header.index("file")]: float(r[header.index("p_true")]) for r in rows}
    predicted = json.loads(
        run_enet("predict", str(best), str(data / "val"), "--json", "--top-k", "4",
                 check=True).stdout
    )  # fmt: skip
    assert len(predicted) == len(prob) == 8
    for row in predicted:
        path = row["path"]
        true = next(c for c in ("ant", "bee", "cat", "dog") if f"/val/{c}/" in path)
        p = dict(zip(row["classes"], row["probs"], strict=True))[true]
        key = next(k for k in prob if path.endswith(k))
        assert abs(p - prob[key]) < 2e-4, (path, p, prob[key])  # p_true has 4 digits
    info = json.loads(
        run_enet("export", str(best), "--format", "exported", "--out", str(tmp_path / "m.pt2"),
                 "--json", check=True).stdout
    )  # fmt: skip
    assert info["mean"] == info["std"] == [0.5, 0.5, 0.5]


def test_models_lists_a_zoo_and_says_when_timm_is_missing():
    proc = run_enet("models", "--zoo", "timm", "--filter", "test_res*", "--json", check=True)
    (row,) = json.loads(proc.stdout)
    assert row["name"] == "timm:test_resnet" and row["params"] > 0 and row["resolution"] == 160
    many = json.loads(run_enet("models", "--zoo", "torchvision", "--json", check=True).stdout)
    assert {"name": "torchvision:resnet18"} in many and len(many) > 40  # names only: no counts
    table = run_enet("models", "--zoo", "torchvision", check=True).stdout
    assert "torchvision:resnet18" in table and "--filter" in table
    bad = run_enet("models", "--zoo", "keras")
    assert bad.returncode == 2 and "unknown model zoo 'keras'" in bad.stderr
    # timm uninstalled: Python refuses an import whose sys.modules entry is None
    code = "import sys; sys.modules['timm'] = None; from enet.cli import main; main()"
    for args in (["models", "--zoo", "timm"], ["train", "--model", "timm:resnet18"]):
        proc = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True,
                              text=True, env={**os.environ, "COLUMNS": "200"})  # fmt: skip
        sys_argv_note = proc.stdout + proc.stderr
        assert proc.returncode == 2, sys_argv_note
        assert "pip install 'enet[timm]'" in proc.stderr and "Traceback" not in proc.stderr


def _listed(values) -> str:
    return ",".join(f"{v:g}" for v in values)


def _final(run):
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)


def test_a_timm_model_trains_resumes_exactly_evaluates_predicts_exports_and_fine_tunes(tmp_path):
    data = solid_dataset(tmp_path / "d", n_train=12, n_val=3)  # 4 classes: 6 steps of 8
    args = ["--model", "timm:test_resnet", "--data", str(data), "--res", "32", "--epochs", "2",
            "--batch-size", "8", "--device", "cpu", "--loader", "torch",
            "--set", "data.workers=1", "--set", "model.kwargs.drop_path_rate=0.1",
            "--set", "train.save_every_steps=4", "--set", "train.log_every_steps=1",
            # the EMA and progressive resizing (16 px, then 32) in the resumed state too
            "--set", "train.ema_decay=0.9", "--set", "data.min_res=16"]  # fmt: skip
    full = tmp_path / "full"
    first = run_enet("train", *args, "--out", str(full), check=True)
    cfg = timm.models.get_pretrained_cfg("test_resnet")  # timm's test models take mean/std 0.5
    own = f"crop {cfg.crop_pct}, mean {_listed(cfg.mean)} and std {_listed(cfg.std)}"
    assert f"32px ({own} from timm's pretrained_cfg)" in first.stdout
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "enet", "train", *args, "--out", str(killed)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    for line in proc.stdout:
        if "step 10/" in line:  # epoch 2, after the step-8 checkpoint
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert _final(killed)["position"]["step"] == 8
    run_enet("train", "--out", str(killed), "--resume", check=True)
    a, b = _final(full), _final(killed)
    assert a["position"]["step"] == b["position"]["step"] == 12
    for key in ("model", "ema"):  # drop-path draws included
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), (key, name)
    saved = yaml.safe_load((full / "config.yaml").read_text())
    assert saved["model"]["kwargs"] == {"drop_path_rate": 0.1}

    best = full / "checkpoints" / "best.pt"
    run_enet("eval", str(best), "--out", str(tmp_path / "eval"), check=True)
    record = json.loads((tmp_path / "eval" / "eval.json").read_text())
    rows = gzip.decompress((tmp_path / "eval" / "predictions.csv.gz").read_bytes()).decode()
    assert len(rows.splitlines()) == 1 + 12 and record["count"] == 12
    predicted = run_enet("predict", str(best), str(data / "val" / "ant"), "--json", check=True)
    assert len(json.loads(predicted.stdout)) == 3

    ort = pytest.importorskip("onnxruntime")
    onnx = tmp_path / "m.onnx"
    run_enet("export", str(best), "--format", "onnx", "--out", str(onnx), check=True)
    from enet.config import config_from_dict
    from enet.evaluate import load_model

    ckpt = torch.load(best, weights_only=True)
    model = load_model(config_from_dict(ckpt["config"]), ckpt["model"], 4, torch.device("cpu"))
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    (logits,) = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"]).run(
        None, {"images": x.numpy()}
    )
    with torch.no_grad():
        np.testing.assert_allclose(logits, model.eval()(x).numpy(), atol=1e-4, rtol=1e-4)
    program = tmp_path / "m.pt2"
    run_enet("export", str(best), "--format", "exported", "--out", str(program), check=True)
    with torch.no_grad():
        assert torch.allclose(torch.export.load(str(program)).module()(x), model(x), atol=1e-5)

    # fine-tuning onto 2 classes: the backbone carries over, the classifier is replaced
    other = solid_dataset(tmp_path / "d2", n_train=4, n_val=2, classes=("x", "y"))
    tuned = tmp_path / "tuned"
    proc = run_enet("train", *args[:2], "--data", str(other), "--res", "32", "--epochs", "1",
                    "--batch-size", "4", "--device", "cpu", "--init-from", str(best),
                    "--set", "optim.lr=1e-9", "--out", str(tuned), check=True)  # fmt: skip
    assert "classifier replaced (4 -> 2 classes)" in proc.stdout
    stem = next(k for k in a["model"] if k.endswith("weight") and "conv" in k)
    assert torch.allclose(_final(tuned)["model"][stem], ckpt["model"][stem], atol=1e-6)


def test_a_torchvision_model_trains_and_pretrained_offline_is_one_line(tmp_path):
    data = solid_dataset(tmp_path / "d", n_train=4, n_val=2)
    args = ["--model", "torchvision:squeezenet1_1", "--data", str(data), "--res", "32",
            "--epochs", "1", "--batch-size", "8", "--device", "cpu",
            "--set", "data.workers=1"]  # fmt: skip
    proc = run_enet("train", *args, "--out", str(tmp_path / "tv"), check=True)
    weights = "torchvision's SqueezeNet1_1_Weights.IMAGENET1K_V1 transforms"
    assert f"32px (crop 0.875 from {weights})" in proc.stdout
    summary = json.loads((tmp_path / "tv" / "summary.json").read_text())
    assert summary["model"] == "torchvision:squeezenet1_1" and summary["gflops"] > 0
    offline = {"TORCH_HOME": str(tmp_path / "hub"), "HTTPS_PROXY": "http://127.0.0.1:9",
               "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}  # fmt: skip
    tv = run_enet("train", *args, "--out", str(tmp_path / "p"), "--pretrained", env=offline)
    assert tv.returncode == 2 and "place that file in" in tv.stderr, tv.stderr
    assert str(tmp_path / "hub") in tv.stderr and "Traceback" not in tv.stderr
    args[1] = "timm:resnet18"
    tm = run_enet("train", *args, "--out", str(tmp_path / "q"), "--pretrained", env=offline)
    assert tm.returncode == 2 and "could not fetch hf-hub:timm/resnet18" in tm.stderr, tm.stderr
    assert str(tmp_path / "hf") in tm.stderr and "--init-from FILE" in tm.stderr
    vit = run_enet("train", *args[:1], "torchvision:vit_b_16", *args[2:], "--out",
                   str(tmp_path / "v"))  # fmt: skip
    assert vit.returncode == 2 and "cannot take 32x32 inputs" in vit.stderr
    assert "Traceback" not in vit.stderr


def test_adaptive_seeds_add_runs_only_while_undecided_and_never_call_a_tie_a_win(tmp_path):
    """Two entries of the same zoo model and recipe: the same predictions seed for seed, so
    their comparison stays undecided and seeds auto adds seeds to both up to the maximum."""
    data = solid_dataset(tmp_path / "d", n_train=4, n_val=3)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "data": str(data), "resolution": 32, "epochs": 1,
        "seeds": "auto", "min_seeds": 2, "max_seeds": 3,
        "entries": [{"name": "a", "model": "timm:test_resnet"},
                    {"name": "b", "model": "timm:test_resnet"}],
        "set": ["train.batch_size=8", "data.workers=1", "train.device=cpu"],
    }))  # fmt: skip
    out = tmp_path / "cmp"
    proc = run_enet("compare-baselines", "--config", str(config), "--out", str(out), check=True)
    assert "seeds auto: undecided against the leader, one more seed for a, b" in proc.stdout
    assert "zoo.yaml (the timm family's default)" in proc.stdout
    assert sorted(p.name for p in out.glob("*-s*")) == [f"{n}-s{s}" for n in "ab" for s in
                                                        range(3)]  # fmt: skip
    verdict = json.loads((out / "verdict.json").read_text())
    (comparison,) = verdict["comparisons"]
    assert comparison["difference"]["value"] == 0 and comparison["p"] == 1.0
    assert not comparison["decided"] and comparison["difference"]["seeds"] == 3
    report = (out / "report.md").read_text()
    assert report.index("## Verdict") < report.index("## Results")
    assert "No clear winner between a and b" in report and " beats " not in report
    assert "seeds: auto, 2 to 3 per entry" in report
    # resumable: the same command plans the same rounds and trains nothing more
    again = run_enet("compare-baselines", "--config", str(config), "--out", str(out), check=True)
    assert "training" not in again.stdout and again.stdout.count("finished earlier") == 6
    bad = run_enet("compare-baselines", "--config", str(config), "--out", str(tmp_path / "x"),
                   "--min-seeds", "1")  # fmt: skip
    assert bad.returncode == 2 and "2 <= min_seeds <= max_seeds" in bad.stderr
