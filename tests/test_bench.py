"""Benchmarks run and report what they promise (their figures belong to `make bench`)."""

from __future__ import annotations

import json

import pytest
from conftest import run_enet

from enet.bench import bench_model
from enet.errors import EnetError


def test_bench_model_rows_and_memory_accounting():
    rows = bench_model(
        ("efficientnet_b0", "xresnet18"),
        ("efficientnet_b0",),
        batch_size=4,
        res=32,
        steps=5,
        warmup=1,
        device="cpu",
    )
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) == {"enet efficientnet_b0", "enet xresnet18", "torchvision efficientnet_b0"}
    for r in rows:
        assert r["passes"] == 5 and r["min"] <= r["median"] <= r["max"] and r["median"] > 0
        assert r["unit"] == "img/s" and r["precision"] == "fp32"
    ours, theirs = by_name["enet efficientnet_b0"], by_name["torchvision efficientnet_b0"]
    # the same network: the same parameters and the same bytes kept for the backward pass
    assert ours["params"] == theirs["params"] == 5_288_548
    assert ours["activation_mb"] == pytest.approx(theirs["activation_mb"])
    assert ours["memory_vs_torchvision"] == pytest.approx(1.0)
    assert ours["vs_torchvision"] == pytest.approx(ours["median"] / theirs["median"])
    assert "vs_torchvision" not in by_name["enet xresnet18"]  # no torchvision xresnet


def test_bench_model_refuses_too_few_steps():
    with pytest.raises(EnetError, match="at least 5"):
        bench_model(("efficientnet_b0",), (), steps=2, device="cpu")


def test_bench_data_cli_writes_json(tmp_path):
    out = tmp_path / "data.json"
    proc = run_enet(
        "bench",
        "data",
        "mini",
        "--res",
        "32",
        "--batch-size",
        "16",
        "--images",
        "64",
        "--passes",
        "3",
        "--loaders",
        "torch,baseline",
        "--out",
        str(out),
        timeout=600,
        check=True,
    )
    rows = json.loads(out.read_text())
    assert [r["name"].split()[0] for r in rows] == ["enet", "baseline"]
    assert all(r["passes"] == 3 and r["median"] > 0 for r in rows)
    assert rows[1]["vs_baseline"] == pytest.approx(1.0)
    assert "loader throughput" in proc.stdout
