"""Benchmarks run and report what they promise (their figures belong to `make bench`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import run_enet

from enet.bench import bench_model
from enet.errors import EnetError
from enet.settings import cpu_bf16_support


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
    # each model ran in its own process: enet's with freed memory retained, as enet train runs
    # it on the CPU, torchvision's in a plain one; peak memory is each process's measured RSS
    assert ours["retained_cpu_memory"] and not theirs["retained_cpu_memory"]
    for r in rows:
        assert r["peak_memory_mb"] > max(100.0, r["state_mb"])  # torch itself, then the model
    assert ours["memory_vs_torchvision"] == pytest.approx(
        ours["peak_memory_mb"] / theirs["peak_memory_mb"]
    )
    assert ours["vs_torchvision"] == pytest.approx(ours["median"] / theirs["median"])
    assert "vs_torchvision" not in by_name["enet xresnet18"]  # no torchvision xresnet


RETAIN_CHECK = """
import resource, sys, torch
from enet.runtime import memory_retained, retain_freed_memory
if sys.argv[1] == "retain":
    assert not memory_retained() and retain_freed_memory() and memory_retained()
torch.ones(16 * 2**20)  # 64 MiB made, filled and freed
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
torch.ones(12 * 2**20)  # 48 MiB: fits where the first one was
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.parametrize("mode", ["default", "retain"])
def test_retained_memory_is_reused_without_page_faults(mode):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    proc = subprocess.run(
        [sys.executable, "-c", RETAIN_CHECK, mode], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    faults = int(proc.stdout.split()[-1])
    # 48 MiB is 12,288 pages of 4 KiB: by default glibc maps them afresh (the first tensor's
    # pages went back to the system); with freed memory retained, they are the first's, reused
    if mode == "default":
        assert faults > 10_000
    else:
        assert faults < 500


def test_bench_model_refuses_too_few_steps():
    with pytest.raises(EnetError, match="at least 5"):
        bench_model(("efficientnet_b0",), (), steps=2, device="cpu")
    # and its help says so before anyone tries (issue 33)
    help_text = " ".join(
        run_enet("bench", "model", "--help", env={"COLUMNS": "200"}).stdout.split()
    )
    assert "Timed steps per model, at least 5" in help_text


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


@pytest.mark.skipif(cpu_bf16_support() is None, reason="this CPU has no native bf16")
def test_bench_model_sets_bf16_beside_fp32_on_the_cpu():
    """bf16 on the CPU: each enet model also runs in fp32, alternating with the rest, and its
    bf16 row carries the speed-up; torchvision's model runs at the asked precision."""
    rows = bench_model(
        ("xresnet18",), ("resnet18",), batch_size=4, res=32, steps=5, warmup=1, device="cpu",
        precision="bf16",
    )  # fmt: skip
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) == {
        "enet xresnet18 bf16",
        "enet xresnet18 fp32",
        "torchvision resnet18 bf16",
    }
    bf16, fp32 = by_name["enet xresnet18 bf16"], by_name["enet xresnet18 fp32"]
    assert (bf16["precision"], fp32["precision"]) == ("bf16", "fp32")
    assert bf16["vs_fp32"] == pytest.approx(bf16["median"] / fp32["median"])
    assert "vs_fp32" not in fp32 and "vs_torchvision" not in bf16  # no torchvision xresnet18
    assert bf16["passes"] == fp32["passes"] == 5
