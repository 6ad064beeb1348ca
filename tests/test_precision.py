"""Precision: what `--precision` resolves to on the CPU (bf16 autocast where the CPU computes
bf16 natively) and why; the runs themselves are tested in test_train.py (bit-exact resume in
bf16) and test_bench.py (bf16 against fp32 side by side)."""

from __future__ import annotations

import pytest
import torch
from conftest import run_enet

from enet import settings
from enet.errors import EnetError
from enet.settings import cpu_bf16_support, precision_choice, resolve_precision

CPU = torch.device("cpu")
NATIVE = cpu_bf16_support()
needs_bf16 = pytest.mark.skipif(NATIVE is None, reason="this CPU has no native bf16")


@needs_bf16
def test_auto_picks_bf16_for_the_families_measured_faster_on_this_cpu():
    precision, why = precision_choice("auto", CPU, "xresnet18")
    assert precision == "bf16" and NATIVE in why and why.startswith("auto: ")
    assert precision_choice("auto", CPU, "xse_resnext50")[0] == "bf16"
    precision, why = precision_choice("auto", CPU, "efficientnet_b0")
    assert precision == "fp32" and "not faster in bf16" in why  # its depthwise convolutions
    assert precision_choice("bf16", CPU, "efficientnet_b0") == (
        "bf16",
        f"asked for; the CPU has {NATIVE}",
    )
    assert precision_choice("fp32", CPU, "xresnet18") == ("fp32", "asked for")


def test_this_machine_reports_what_torch_reports():
    if torch.cpu._is_amx_tile_supported():
        assert NATIVE == "AMX"
    elif torch.cpu._is_avx512_bf16_supported():
        assert NATIVE == "AVX512-BF16"


def test_a_cpu_without_native_bf16_refuses_bf16_and_auto_stays_fp32(monkeypatch):
    # the only part that cannot run for real here: a CPU without the instructions
    monkeypatch.setattr(settings, "cpu_bf16_support", lambda: None)
    with pytest.raises(EnetError, match="no native bf16 arithmetic .*use fp32"):
        precision_choice("bf16", CPU, "xresnet18")
    assert precision_choice("auto", CPU, "xresnet18") == (
        "fp32", "auto: the CPU has no native bf16"
    )  # fmt: skip
    # eval and predict follow the checkpoint's recipe: fp32 where it cannot run here
    assert resolve_precision("bf16", CPU, "xresnet18", inference=True) == "fp32"


def test_fp16_on_the_cpu_is_one_line_naming_what_works():
    with pytest.raises(EnetError, match="fp16 needs a CUDA device"):
        precision_choice("fp16", CPU, "xresnet18")
    assert resolve_precision("fp16", CPU, "xresnet18", inference=True) == "fp32"
    proc = run_enet(
        "train", "--model", "xresnet18", "--data", "mini", "--device", "cpu", "--precision",
        "fp16", "--epochs", "1",
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "fp16 needs a CUDA device" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
