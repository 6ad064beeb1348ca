"""`enet compare-baselines` on the shipped mini data: runs, report, resume, a failing run."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_enet

from enet.compare import entry_recipes, load_compare_config, plan_runs, recipe_digests
from enet.errors import EnetError
from enet.report.aggregate import _best, _table_rows, aggregate, at_chance, learning_warnings


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ENET_DATA_DIR", str(tmp_path / "cache"))


def _tiny_config(tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "data": {"randaugment_n": 0, "workers": 1},
                "optim": {"name": "adamw", "lr": 0.002},
                "train": {"batch_size": 32, "device": "cpu"},
            }
        )
    )
    config = tmp_path / "compare.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": "mini",
                "resolution": 32,
                "epochs": 1,
                "seeds": 2,
                "models": ["xresnet18", "efficientnet_b0", "xresnet34"],
                "recipes": {"xresnet": "tiny.yaml", "efficientnet": "tiny.yaml"},
                # this model's runs fail: a batch larger than the data
                "overrides": {
                    "xresnet34": ["train.batch_size=5000"],
                    "efficientnet_b0": ["train.ema_decay=0.9"],  # reported beside top-1
                },
            }
        )
    )
    return config


def test_compare_runs_reports_resumes_and_survives_a_failure(tmp_path):
    config, out = _tiny_config(tmp_path), tmp_path / "cmp"
    args = [
        sys.executable,
        "-m",
        "enet",
        "compare-baselines",
        "--config",
        str(config),
        "--out",
        str(out),
    ]
    # interrupt the comparison once its first run has finished
    proc = subprocess.Popen(
        args,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "xresnet18 seed 0: top-1" in line:
            proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=300)
    assert proc.returncode == 130, "".join(seen)
    assert "run the same command again" in "".join(seen)

    again = run_enet("compare-baselines", "--config", str(config), "--out", str(out), timeout=900)
    # the report is written, and the failed runs are named with a non-zero exit
    assert again.returncode == 1, again.stdout + again.stderr
    assert "2 of 6 runs failed: xresnet34-s0 (batch size 5000" in again.stderr
    assert "Traceback" not in again.stderr
    assert "xresnet18 seed 0: finished earlier, skipped" in again.stdout
    assert "xresnet34 seed 0: failed (batch size 5000 is larger" in again.stdout

    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert all(r["name"] == r["model"] for r in rows)  # plain models: named after themselves
    assert [(r["model"], r["seed"]) for r in rows] == [  # seed-major
        ("xresnet18", "0"),
        ("efficientnet_b0", "0"),
        ("xresnet34", "0"),
        ("xresnet18", "1"),
        ("efficientnet_b0", "1"),
        ("xresnet34", "1"),
    ]
    status = {(r["model"], r["seed"]): r["status"] for r in rows}
    assert [status[k] for k in sorted(status)] == ["finished"] * 4 + ["failed"] * 2
    finished = [r for r in rows if r["status"] == "finished"]
    assert all(float(r["top1"]) >= 0 and int(r["epochs"]) == 1 for r in finished)
    assert all(r["resolution"] == "32" for r in finished)
    assert {r["params"] for r in finished if r["model"] == "xresnet18"} == {"11200874"}
    assert "larger than" in next(r for r in rows if r["model"] == "xresnet34")["reason"]
    assert {bool(r["ema_top1"]) for r in finished} == {True, False}  # B0's EMA only
    assert all(bool(r["ema_top1"]) == (r["model"] == "efficientnet_b0") for r in finished)

    # each run's own 95% interval over its images (columns added after today's)
    for r in finished:
        assert int(r["images"]) == 100
        assert float(r["top1_ci_low"]) <= float(r["top1"]) <= float(r["top1_ci_high"])
    verdict = json.loads((out / "verdict.json").read_text())
    (comparison,) = verdict["comparisons"]  # the two entries that finished; xresnet34 missing
    assert {comparison["leader"], comparison["other"]} == {"xresnet18", "efficientnet_b0"}
    assert verdict["images"] == 100 and comparison["difference"]["seeds"] == 2
    assert verdict["missing"] == {"xresnet34": "no finished run yet"}
    assert len(verdict["per_class"]) == 10

    report = (out / "report.md").read_text()
    assert report.startswith("# enet compare-baselines: mini\n\n## Verdict\n")
    assert comparison["sentence"][1:] in report and "xresnet34: no finished run yet." in report
    assert "## Per class" in report and "| 95% CI | vs leader |" in report
    # one epoch at 32 px may leave a model at chance: then its row is marked, not starred
    assert (
        "| xresnet18 | xresnet18 | 2/2" in report
        or "★ **xresnet18** | **xresnet18** | **2/2**" in report
    )
    assert "(2 failed)" in report and "★" in report and "EMA top-1 %" in report
    assert "enet train --config" in report and "--seed 1" in report
    assert "- torch:" in report
    for name in ("top1_vs_epoch", "top1_vs_time", "top1_vs_params", "top1_vs_gflops", "throughput"):
        png = out / f"{name}.png"
        assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"

    # the report alone, from the runs as they stand: nothing trains, unfinished runs are marked
    only = run_enet(
        "compare-baselines", "--config", str(config), "--out", str(out), "--report-only"
    )
    assert only.returncode == 0 and "training" not in only.stdout, only.stdout + only.stderr
    assert "Runs finished: 4 of 6 (the others are marked below)" in (out / "report.md").read_text()
    empty = run_enet("compare-baselines", "--models", "xresnet18", "--data", "mini", "--out",
                     str(tmp_path / "none"), "--report-only")  # fmt: skip
    assert empty.returncode == 2 and "holds no comparison" in empty.stderr

    # another budget into the same folder is refused before anything runs
    before = (out / "results.csv").read_text()
    other = run_enet(
        "compare-baselines", "--config", str(config), "--out", str(out), "--epochs", "2"
    )
    assert other.returncode == 2 and "holds runs of another budget (epochs 1 -> 2)" in other.stderr
    # ... and so is a recipe whose settings changed (its path did not); comments do not count
    recipe = tmp_path / "tiny.yaml"
    cfg = load_compare_config(config)
    digests = recipe_digests(cfg)
    recipe.write_text("# a comment\n" + recipe.read_text())
    assert recipe_digests(cfg) == digests
    recipe.write_text(recipe.read_text().replace("0.002", "0.003"))
    other = run_enet("compare-baselines", "--config", str(config), "--out", str(out))
    assert other.returncode == 2, other.stdout + other.stderr
    assert "another budget (recipe of xresnet18 changed, recipe of efficientnet_b0" in other.stderr
    assert (out / "results.csv").read_text() == before


def test_compare_config_errors(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("models: [xresnet18]\ncolour: red\n")
    with pytest.raises(EnetError, match="unknown key 'colour'"):
        load_compare_config(config)
    config.write_text("models: [xresnet18]\nseeds: 0\n")
    with pytest.raises(EnetError, match="seeds must be >= 1"):
        load_compare_config(config)
    with pytest.raises(EnetError, match="unknown model 'resnet'"):
        load_compare_config(None, models=["resnet"])
    config.write_text("models: [xresnet18]\nrecipes: {xresnet: missing.yaml}\n")
    with pytest.raises(EnetError, match="recipe missing.yaml for xresnet18 not found"):
        load_compare_config(config)
    proc = run_enet("compare-baselines", "--models", "nope", "--out", str(tmp_path / "x"))
    assert proc.returncode == 2 and "unknown model" in proc.stderr
    proc = run_enet(
        "compare-baselines", "--models", "xresnet18", "--data", "/nonexistent", "--out",
        str(tmp_path / "y"),
    )  # fmt: skip
    assert proc.returncode == 2 and "'/nonexistent' is no folder" in proc.stderr
    assert not (tmp_path / "y").exists()


def test_named_entries_plan_report_and_refuse_clashes(tmp_path):
    """`entries:` (a recipe study): names become run folders, rows and the csv's name column."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text("optim:\n  name: adamw\n")
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": "mini",
                "models": ["xresnet18"],
                "entries": [
                    {"name": "x18-adamw", "model": "xresnet18", "recipe": "r.yaml"},
                    {"name": "x18-lr", "model": "xresnet18", "set": ["optim.lr=0.004"]},
                ],
            }
        )
    )
    cfg = load_compare_config(config)
    assert cfg.names == ["xresnet18", "x18-adamw", "x18-lr"]
    runs = plan_runs(cfg, tmp_path / "out")
    assert [r.out.name for r in runs] == ["xresnet18-s0", "x18-adamw-s0", "x18-lr-s0"]
    assert str(recipe) in runs[1].command and "optim.lr=0.004" in runs[2].command
    # every run tells its trackers (run.trackers) which comparison, entry and seed it is
    assert runs[1].command[-2:] == ["--set", "run.tags=comparison=out,entry=x18-adamw,seed=0"]
    # entries without a recipe of their own train with their family's default (issue 33)
    for run in (runs[0], runs[2]):
        assert Path(run.command[run.command.index("--config") + 1]).name == "xresnet50.yaml"
    from enet.compare import collect_rows

    rows = collect_rows(runs, cfg)
    assert [(r["name"], r["model"], r["status"]) for r in rows][1] == (
        "x18-adamw",
        "xresnet18",
        "not run",
    )
    config.write_text("models: [xresnet18]\nentries: [{model: xresnet18}]\n")
    with pytest.raises(EnetError, match="two entries are named 'xresnet18'"):
        load_compare_config(config)
    config.write_text("entries: [{model: xresnet18, colour: red}]\n")
    with pytest.raises(EnetError, match="unknown key 'colour'"):
        load_compare_config(config)


def test_plan_follows_budget_and_resolution_policy():
    cfg = load_compare_config(
        None, models=["efficientnet_b3", "xresnet50"], minutes=2.5, seeds=2, data="mini"
    )
    runs = plan_runs(cfg, REPO / "runs" / "x")
    assert len(runs) == 4
    assert "--minutes" in runs[0].command and "--epochs" not in runs[0].command
    own = load_compare_config(
        REPO / "configs" / "compare-imagenette.yaml", models=["efficientnet_b3"]
    )
    assert own.resolution == 128 and own.seeds == (0, 1, 2, 3, 4) and own.epochs == 5


def test_res_sets_every_run_and_set_data_res_is_refused(tmp_path):
    """Issue 33: `--set data.res=64` ran at 64 px under a header and commands saying 128; compare
    has --res, and a data.res in any set is one line naming it."""
    cfg = load_compare_config(None, models=["xresnet18"], data="mini", res=64)
    (run,) = plan_runs(cfg, tmp_path)
    assert cfg.resolution == 64 and run.command[run.command.index("--res") + 1] == "64"
    assert "data.res=64" not in run.command
    proc = run_enet(
        "compare-baselines", "--models", "xresnet18", "--data", "mini", "--out",
        str(tmp_path / "c"), "--set", "data.res=64",
    )  # fmt: skip
    assert proc.returncode == 2 and "use --res N" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "c").exists()


def test_models_without_a_config_train_with_their_familys_recipe(tmp_path, monkeypatch):
    """Issue 33: `--models a,b` alone gives each family its default recipe (not bare `enet
    train` defaults), says which, and `none` still asks for the bare defaults."""
    monkeypatch.chdir(REPO)
    cfg = load_compare_config(None, models=["efficientnet_b0", "xresnet18"], data="mini")
    b0, x18 = plan_runs(cfg, tmp_path)
    assert b0.command[2:4] == ["--config", "configs/efficientnet_b0.yaml"]
    assert x18.command[2:4] == ["--config", "configs/xresnet50.yaml"]
    notes = entry_recipes(cfg)
    assert notes["xresnet18"] == "configs/xresnet50.yaml (the xresnet family's default)"
    bare = tmp_path / "bare.yaml"
    bare.write_text("models: [xresnet18]\nrecipes: {xresnet: none}\n")
    (run,) = plan_runs(load_compare_config(bare, data="mini"), tmp_path)
    assert "--config" not in run.command
    assert entry_recipes(load_compare_config(bare, data="mini"))["xresnet18"].startswith(
        "enet train's defaults"
    )


def test_the_star_ranks_only_entries_with_the_most_finished_seeds():
    def row(name, seed, top1, status="finished"):
        return dict(
            name=name, model=name, seed=seed, status=status, top1=top1, top5=99.0,
            best_top1=top1, params=1, gflops=1.0, resolution=32, train_img_per_s=1.0,
            wall_s=1.0, peak_memory_bytes=1,
        )  # fmt: skip

    rows = [row("a", 0, 80.0), row("b", 0, 79.0), row("c", 0, 85.0)]
    rows += [row("a", 1, 80.0), row("b", 1, 79.0), row("c", 1, None, "interrupted")]
    summary = aggregate(rows, ["a", "b", "c"])
    assert _best(summary) == 0  # c's one seed (85) is not ranked against two
    rows[-1] = row("c", 1, 84.0)
    assert _best(aggregate(rows, ["a", "b", "c"])) == 2
    none_yet = [row(n, 0, None, "not run") for n in "ab"]
    assert _best(aggregate(none_yet, ["a", "b"])) is None


def test_an_entry_that_learned_nothing_is_flagged_and_never_ranked():
    """Issue 33: B0 at exactly 10.00% on 10 classes in both seeds (guessing) was starred like any
    other entry. Runs at chance or diverged are counted, flagged and left out of the ranking."""

    def row(name, seed, top1, diverged=False, spiked=False):
        # diverged: its last validation loss exploded; spiked: an earlier epoch's did
        return dict(
            name=name, model=name, seed=seed, status="finished", top1=top1, top5=50.0,
            best_top1=top1, params=1, gflops=1.0, resolution=32, train_img_per_s=1.0,
            wall_s=1.0, peak_memory_bytes=1, classes=10, diverged=diverged or spiked,
            val_loss=1e6 if diverged else 0.9,
        )  # fmt: skip

    assert at_chance(10.0, 10) and at_chance(15.0, 10) and not at_chance(16.0, 10)
    assert not at_chance(0.5, 1000) and at_chance(0.1, 1000)
    rows = [row("b0", s, 10.0) for s in (0, 1)] + [row("x18", s, 9.0 + s) for s in (0, 1)]
    summary = aggregate(rows, ["b0", "x18"])
    assert _best(summary) is None  # neither learned: no star
    rows += [row("r50", s, 70.0, diverged=s == 1) for s in (0, 1)]
    rows += [row("ok", s, 60.0) for s in (0, 1)]
    summary = aggregate(rows, ["b0", "x18", "r50", "ok"])
    assert _best(summary) == 3  # "ok" at 60% beats nothing flagged; r50's 70% diverged once
    # a loss spike the run recovered from is no failure: ranked as usual
    recovered = [row("spiky", s, 80.0, spiked=True) for s in (0, 1)]
    assert _best(aggregate(rows + recovered, ["b0", "x18", "r50", "ok", "spiky"])) == 4
    assert [s["at_chance"] for s in summary] == [2, 2, 0, 0] and summary[2]["diverged"] == 1
    lines = learning_warnings(summary)
    assert len(lines) == 3 and lines[0].startswith("b0: 2 at chance of 2 finished runs")
    assert "guessing scores 10.00%" in lines[0] and lines[2].startswith("r50: 1 diverged")
    _, body, _ = _table_rows(summary)
    assert body[0][2] == "2/2 ⚠ 2 at chance" and "⚠" not in body[3][2]
