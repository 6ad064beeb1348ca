"""The command line as a user meets it: help, the models table, errors without tracebacks."""

from __future__ import annotations

import json

from conftest import run_enet


def test_help_lists_the_commands():
    out = run_enet("--help", check=True).stdout
    for command in ("train", "eval", "compare-baselines", "data", "models", "bench"):
        assert command in out


def test_models_table_has_exact_counts():
    out = run_enet("models", check=True).stdout
    for count in ("5,288,548", "66,347,960", "11,708,744", "60,212,040"):
        assert count in out
    rows = {r["name"]: r for r in json.loads(run_enet("models", "--json", check=True).stdout)}
    assert rows["efficientnet_b3"]["params"] == 12_233_232
    assert rows["efficientnet_b3"]["resolution"] == 300
    assert rows["efficientnet_b0"]["gflops"] == 0.772
    assert rows["xresnet50"]["dropout"] == 0.0
    ten = json.loads(run_enet("models", "--json", "--num-classes", "10", check=True).stdout)
    assert {r["name"]: r["params"] for r in ten}["xresnet34"] == 21_309_034


def test_bad_option_is_a_usage_error_without_traceback():
    proc = run_enet("models", "--num-classes", "many")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
