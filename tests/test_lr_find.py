"""`enet lr-find`: the range test on the shipped mini data, its valley rule, its errors."""

from __future__ import annotations

import json
import math

import numpy as np
from conftest import run_enet

from enet.lr_find import valley

TINY = ["--model", "xresnet18", "--data", "mini", "--res", "32", "--batch-size", "16"]


def test_valley_is_inside_the_longest_descent():
    lrs = list(np.geomspace(1e-6, 1.0, 60))
    # flat, then a long descent from step 20 to 45, then a blow-up
    losses = [3.0] * 20 + list(np.linspace(3.0, 1.0, 26)[1:]) + list(np.linspace(1.2, 9, 15))
    pick = lrs.index(valley(lrs, losses))
    assert 20 <= pick <= 45
    assert pick < 40  # towards the start of the descent, away from the minimum


def test_lr_find_sweeps_plots_and_leaves_no_run_folder(tmp_path):
    proc = run_enet(
        "lr-find", *TINY, "--device", "cpu", "--num-it", "40", "--end-lr", "100",
        "--plot", "sweep.png", "--json", "--set", "data.workers=1", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    lrs = result["lrs"]
    assert lrs[0] == 1e-7 and all(b > a for a, b in zip(lrs, lrs[1:], strict=False))
    ratios = [b / a for a, b in zip(lrs, lrs[1:], strict=False)]
    assert max(ratios) / min(ratios) < 1 + 1e-9  # exponential
    assert result["stopped"] in ("diverged", "non-finite")  # 100 is far too high
    assert result["steps"] < 40 and len(result["smoothed"]) == result["steps"]
    assert lrs[0] < result["suggestion"] < lrs[-1] and math.isfinite(result["min_lr_div10"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.png"]  # nothing else
    assert result["descent_steps"] >= 1
    assert (result["warning"] is None) == (result["descent_steps"] >= 10)


def test_a_sweep_too_short_for_a_valley_warns(tmp_path):
    """Issue 33: `--num-it` too small leaves a valley resting on a few steps: the result says
    so (the CLI prints it as a warning); a long descent does not."""
    lrs = list(np.geomspace(1e-6, 1.0, 60))
    losses = [3.0] * 20 + list(np.linspace(3.0, 1.0, 26)[1:]) + list(np.linspace(1.2, 9, 15))
    assert valley(lrs, losses, steps=True)[1] >= 25
    short = [3.0, 2.9, 2.95, 2.7, 3.5, 9.0]
    assert valley(lrs[:6], short, steps=True)[1] == 3
    proc = run_enet("lr-find", *TINY, "--device", "cpu", "--num-it", "6", "--set",
                    "data.workers=1", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "warning: the valley lies in a descent of only" in proc.stdout
    assert "--num-it 100 or more" in proc.stdout


def test_lr_find_bad_arguments_are_one_line(tmp_path):
    for args, message in (
        (["--start-lr", "1", "--end-lr", "0.1"], "--start-lr"),
        (["--num-it", "2"], "--num-it"),
        (["--plot", "x.jpg"], ".png"),
    ):
        proc = run_enet("lr-find", *TINY, *args, cwd=tmp_path)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []
