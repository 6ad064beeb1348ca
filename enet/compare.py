"""`enet compare-baselines`: every (model, seed) as an ordinary `enet train` run under one
budget, then one report (CSV, markdown, PNG plots, a terminal table).

Each run is a subprocess `enet train ...` into OUT/<model>-s<seed>/, its output logged to
OUT/logs/<model>-s<seed>.log: a crash cannot take the others down, and report.md lists the
exact commands. Finished runs are
skipped when the comparison runs again, interrupted ones resume from their checkpoint, and a
failed one is recorded with its reason while the rest go on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from .config import load_yaml, parse_yaml
from .data.datasets import NAMED_DATASETS, is_data_source
from .errors import EnetError
from .fileio import read_json, write_json_atomic, write_text_atomic
from .models import get_model_info
from .report.aggregate import CSV_COLUMNS
from .report.files import comparison_statistics, write_compare_report
from .train.records import Summary
from .train.run_folder import RunFolder

# The recipe each family trains with when a comparison names none for it (`recipes:` by model or
# family, or an entry's `recipe:`, choose another; the name `none` asks for `enet train`'s bare
# defaults): EfficientNet's short-budget recipe (docs/results/study-b0-128-5ep/) and fastai's
# Imagenette recipe for XResNet (it changes no layer; the leaderboard recipe adds Mish,
# self-attention and MaxBlurPool, so it is a choice, not a default). From the repository's
# configs/, beside the package.
# A family's recipe where the comparison names none; the zoos' (configs/zoo.yaml) is fastai's
# short-budget recipe of xresnet50.yaml without its XResNet-only model keys.
DEFAULT_RECIPES = {
    "efficientnet": "efficientnet_b0.yaml",
    "xresnet": "xresnet50.yaml",
    "torchvision": "zoo.yaml",
    "timm": "zoo.yaml",
}
RECIPE_DIR = Path(__file__).resolve().parent.parent / "configs"


@dataclass(frozen=True)
class Entry:
    """One line of a comparison: a name (its runs' folder and its row in the report), a model,
    an optional recipe of its own and `section.key=value` overrides."""

    name: str
    model: str
    recipe: str | None = None
    set: tuple[str, ...] = ()

    @property
    def folder(self) -> str:
        """The name as a folder name: a zoo model's colon becomes '-' (timm-resnet18d-s0)."""
        return re.sub(r"[^\w.+-]", "-", self.name)


@dataclass(frozen=True)
class CompareConfig:
    data: str = "imagenette"
    """Dataset for every run (a folder or a name)."""
    resolution: int | str = 128
    """Pixels for every model, or "model": each model's own (b3: 300, xresnet: 224)."""
    epochs: int | None = 5
    """Budget in epochs (the same for every run) ..."""
    minutes: float | None = None
    """... or in wall-clock minutes per run (each schedule fitted to end on time)."""
    seeds: tuple[int, ...] = (0,)
    """The seeds every entry runs; with `seeds: auto`, the first min_seeds (0 .. min - 1)."""
    adaptive: tuple[int, int] | None = None
    """`seeds: auto`: (min_seeds, max_seeds). After the minimum, a seed more for the leader and
    every entry whose comparison with it is undecided, until decided or at the maximum."""
    entries: tuple[Entry, ...] = (Entry("efficientnet_b0", "efficientnet_b0"),)
    """What is compared: `models:` (each its own entry, named after it) then `entries:`."""
    recipes: dict[str, str] = field(default_factory=dict)
    """Training recipe (a train config YAML) per family or per model name."""
    overrides: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Per-model `section.key=value` overrides on top of its recipe."""
    set: tuple[str, ...] = ()
    """Overrides for every run."""
    base_dir: Path = Path(".")
    """Recipes are found relative to the compare config's folder."""

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    @property
    def seeds_text(self) -> str:
        """'3 seed(s)', or for seeds: auto 'seeds auto (3 to 10 per entry)'."""
        if self.adaptive:
            return f"seeds auto ({self.adaptive[0]} to {self.adaptive[1]} per entry)"
        return f"{len(self.seeds)} seed(s)"

    def named_recipe(self, entry: Entry) -> str | None:
        """The recipe the comparison names for an entry: its own, its model's, its family's."""
        family = get_model_info(entry.model).family
        return entry.recipe or self.recipes.get(entry.model) or self.recipes.get(family)

    def recipe_for(self, entry: Entry) -> Path | None:
        """The entry's own recipe, else its model's, else its family's (`recipes:`), else the
        family's default (DEFAULT_RECIPES); None: `enet train`'s defaults."""
        name = self.named_recipe(entry)
        if name is None:
            default = RECIPE_DIR / DEFAULT_RECIPES.get(get_model_info(entry.model).family, "")
            return _shortest(default) if default.is_file() else None
        if str(name).lower() == "none":
            return None
        path = Path(name)
        for candidate in (path, self.base_dir / path):
            if candidate.is_file():
                return candidate
        raise EnetError(
            f"recipe {name} for {entry.name} not found (looked in . and {self.base_dir})"
        )


def _shortest(path: Path) -> Path:
    """A path relative to the working folder when it lies below it (commands in reports stay
    free of this machine's folders), else absolute."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


_KEYS = {
    "data",
    "resolution",
    "epochs",
    "minutes",
    "seeds",
    "min_seeds",
    "max_seeds",
    "models",
    "entries",
    "recipes",
    "overrides",
    "set",
}


def load_compare_config(
    path: str | Path | None,
    *,
    models: list[str] | None = None,
    epochs: int | None = None,
    minutes: float | None = None,
    seeds: int | str | None = None,
    min_seeds: int | None = None,
    max_seeds: int | None = None,
    data: str | None = None,
    res: int | None = None,
    extra_set: list[str] | None = None,
) -> CompareConfig:
    """A compare config (YAML) with the command line's choices on top."""
    raw: dict[str, Any] = {}
    base = Path(".")
    if path is not None:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as err:
            raise EnetError(f"--config {path}: {err.strerror}") from None
        raw = parse_yaml(text, f"--config {path}")
        if not isinstance(raw, dict):
            raise EnetError(f"--config {path}: expected a mapping")
        unknown = sorted(set(raw) - _KEYS)
        if unknown:
            raise EnetError(
                f"--config {path}: unknown key {unknown[0]!r}; keys: {', '.join(sorted(_KEYS))}"
            )
        base = path.parent
    budget_epochs = raw.get("epochs", 5)
    budget_minutes = raw.get("minutes")
    if epochs is not None:
        budget_epochs, budget_minutes = epochs, None
    if minutes is not None:
        budget_minutes = minutes
    seed_list, adaptive = _seeds(raw, seeds, min_seeds, max_seeds)
    model_list = tuple(models or raw.get("models") or ())
    entries = tuple(Entry(m, m) for m in model_list)
    if not models:
        entries += _entries(raw.get("entries") or [])
    if not entries:
        raise EnetError(
            "nothing to compare: give --models a,b, or `models:` or `entries:` in the config"
        )
    for e in entries:
        get_model_info(e.model)  # an unknown name: one line with the closest names
    names = [e.name for e in entries]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise EnetError(f"two entries are named {duplicate!r}; give each a name of its own")
    resolution = raw.get("resolution", 128) if res is None else res
    if not (resolution == "model" or (isinstance(resolution, int) and resolution >= 16)):
        raise EnetError(f'resolution must be pixels (>= 16) or "model", got {resolution!r}')
    if budget_minutes is None and (not isinstance(budget_epochs, int) or budget_epochs < 1):
        raise EnetError(f"epochs must be >= 1, got {budget_epochs!r}")
    overrides = {k: tuple(v) for k, v in (raw.get("overrides") or {}).items()}
    cfg = CompareConfig(
        data=data or raw.get("data", "imagenette"),
        resolution=resolution,
        epochs=budget_epochs if budget_minutes is None else None,
        minutes=budget_minutes,
        seeds=seed_list,
        adaptive=adaptive,
        entries=entries,
        recipes=dict(raw.get("recipes") or {}),
        overrides=overrides,
        set=tuple(raw.get("set") or ()) + tuple(extra_set or ()),
        base_dir=base,
    )
    for e in cfg.entries:
        cfg.recipe_for(e)  # fail early on a missing recipe
    _check_sets(cfg)
    _check_data(cfg.data)
    return cfg


def _seeds(raw: dict, seeds, min_seeds, max_seeds):
    """-> (the seeds every entry runs first, (min_seeds, max_seeds) for seeds: auto or None);
    the command line's choices over the config's."""
    spec = raw.get("seeds", 1) if seeds is None else seeds
    if spec != "auto":
        if min_seeds is not None or max_seeds is not None or {"min_seeds", "max_seeds"} & set(raw):
            raise EnetError("min_seeds and max_seeds go with seeds: auto (--seeds auto)")
        return _seed_list(spec), None
    low = raw.get("min_seeds", 3) if min_seeds is None else min_seeds
    high = raw.get("max_seeds", 10) if max_seeds is None else max_seeds
    if not (isinstance(low, int) and isinstance(high, int) and 2 <= low <= high):
        raise EnetError(f"seeds auto needs 2 <= min_seeds <= max_seeds, got {low!r} and {high!r}")
    return _seed_list(low), (low, high)


def _seed_list(spec) -> tuple[int, ...]:
    """`seeds:` / --seeds: a count (0 .. n-1) or a list of seeds."""
    if isinstance(spec, str) and spec.isdigit():
        spec = int(spec)
    if isinstance(spec, int):
        if spec < 1:
            raise EnetError(f"seeds must be >= 1, got {spec}")
        return tuple(range(spec))
    if isinstance(spec, list) and all(isinstance(s, int) for s in spec) and spec:
        return tuple(spec)
    raise EnetError(f"seeds must be a count, a list of integers or auto, got {spec!r}")


def _check_sets(cfg: CompareConfig) -> None:
    """No `data.res` in any set: the resolution is compare's own (--res, `resolution:`), so
    that the report's header and commands name what ran."""
    sets = [*cfg.set, *(s for v in cfg.overrides.values() for s in v)]
    sets += [s for e in cfg.entries for s in e.set]
    if any(s.replace(" ", "").startswith("data.res=") for s in sets):
        raise EnetError(
            "set data.res is not how a comparison sets its resolution (its report would name "
            'another); use --res N, or `resolution: N` (or "model", each its own) in the config'
        )


def _entries(raw: list) -> tuple[Entry, ...]:
    """`entries:` items: {name, model, recipe, set} (name defaults to the model's)."""
    out = []
    for item in raw:
        if not isinstance(item, dict) or "model" not in item:
            raise EnetError(f"entries: each item needs at least a model, got {item!r}")
        unknown = sorted(set(item) - {"name", "model", "recipe", "set"})
        if unknown:
            raise EnetError(f"entries: unknown key {unknown[0]!r}; keys: name, model, recipe, set")
        overrides = item.get("set") or []
        if isinstance(overrides, str) or not all(isinstance(x, str) for x in overrides):
            raise EnetError(f"entries: set must be a list of section.key=value, got {overrides!r}")
        out.append(
            Entry(
                str(item.get("name") or item["model"]),
                str(item["model"]),
                item.get("recipe"),
                tuple(overrides),
            )
        )
    return tuple(out)


def _check_data(data: str) -> None:
    """Before any run starts: the data is a folder or a dataset name."""

    if is_data_source(data):
        return
    raise EnetError(
        f"--data {data!r} is no folder, no label file and no dataset name (mini, "
        f"{', '.join(NAMED_DATASETS)})"
    )


BUDGET_KEYS = ("data", "resolution", "epochs", "minutes", "recipes", "overrides", "set")


class RunsFailed(EnetError):
    """Some runs of a comparison failed (the report is written all the same)."""

    exit_code = 1


def _check_budget(cfg: CompareConfig, out: Path) -> None:
    """A folder's runs all belong to one budget: a rerun with another one (epochs, minutes,
    resolution, data, recipes, overrides) is refused, never reported as the new one."""
    saved_path = out / "compare.yaml"
    if not saved_path.is_file():
        return
    saved = yaml.safe_load(saved_path.read_text()) or {}
    now = _as_yaml(cfg)
    changed = [k for k in BUDGET_KEYS if k in saved and saved[k] != now[k]]
    before = {e["name"]: e for e in saved.get("entries") or []}
    changed += [
        f"entry {e['name']}"
        for e in now["entries"]
        if e["name"] in before and before[e["name"]] != e
    ]
    digests = saved.get("recipe_digests") or {}  # absent in folders from before they were kept
    changed += [
        f"recipe of {name}"
        for name, digest in now["recipe_digests"].items()
        if digests.get(name, digest) != digest
    ]
    has_runs = any(run_state(p) != "new" for p in out.iterdir() if p.is_dir() and p.name != "logs")
    if changed and has_runs:
        what = ", ".join(
            f"{k} {saved[k]!r} -> {now[k]!r}" if k in saved else f"{k} changed" for k in changed
        )
        raise EnetError(
            f"{out} holds runs of another budget ({what}); use another --out, or the same "
            "settings to continue those runs"
        )


# results.csv's columns that come from a run's summary.json (train/records.Summary): by the
# same name, or renamed here
SUMMARY_FIELD = {"resolution": "res", "train_img_per_s": "img_per_s"}
FROM_SUMMARY = [
    c
    for c in CSV_COLUMNS
    if SUMMARY_FIELD.get(c, c) in {f.name for f in dataclasses.fields(Summary)}
    and c not in ("model", "seed", "status")
]

# ---------------------------------------------------------------------------------------------
# running


@dataclass
class RunSpec:
    name: str
    model: str
    seed: int
    out: Path
    command: list[str]


def plan_runs(cfg: CompareConfig, out: Path) -> list[RunSpec]:
    # seed-major: every model's first seed before any model's second, so that a comparison
    # stopped part-way (they take days on a CPU) reports every model
    return [plan_run(cfg, out, entry, seed) for seed in cfg.seeds for entry in cfg.entries]


def plan_run(cfg: CompareConfig, out: Path, entry: Entry, seed: int) -> RunSpec:
    """One run of an entry: its folder and its `enet train` command."""
    model = entry.model
    run_dir = out / f"{entry.folder}-s{seed}"
    cmd = ["enet", "train"]
    recipe = cfg.recipe_for(entry)
    if recipe is not None:
        cmd += ["--config", str(recipe)]
    cmd += ["--model", model, "--data", cfg.data, "--seed", str(seed), "--out", str(run_dir)]
    if cfg.resolution != "model":
        cmd += ["--res", str(cfg.resolution)]
    if cfg.minutes is not None:
        cmd += ["--minutes", str(cfg.minutes)]
    else:
        cmd += ["--epochs", str(cfg.epochs)]
    for item in (*cfg.set, *cfg.overrides.get(model, ()), *entry.set):
        cmd += ["--set", item]
    # the trackers' run (run.trackers) names its comparison, entry and seed
    tags = f"comparison={out.name},entry={entry.name},seed={seed}"
    cmd += ["--set", f"run.tags={tags}"]
    return RunSpec(entry.name, model, seed, run_dir, cmd)


def more_seeds(cfg: CompareConfig, out: Path, specs: list[RunSpec]) -> list[RunSpec]:
    """`seeds: auto`: the next round's runs, once every planned run has finished: a seed more
    for the leader and for each entry undecided against it, below max_seeds. Decided from the
    planned runs only, so a resumed comparison plans the same rounds again."""
    rows = collect_rows(specs, cfg)
    if cfg.adaptive is None or any(r["status"] != "finished" for r in rows):
        return []
    verdict = comparison_statistics(rows, cfg.names)
    if verdict is None or not verdict.undecided:
        return []
    count = {name: sum(s.name == name for s in specs) for name in cfg.names}
    wanted = [verdict.comparisons[0].leader, *verdict.undecided]
    entries = {e.name: e for e in cfg.entries}
    return [
        plan_run(cfg, out, entries[name], count[name])  # seeds 0, 1, ...: the next is the count
        for name in wanted
        if count[name] < cfg.adaptive[1]
    ]


def log_path(run_dir: Path) -> Path:
    """OUT/logs/<run>.log: kept outside the run folder, which belongs to `enet train`."""
    return run_dir.parent / "logs" / f"{run_dir.name}.log"


def failure_path(run_dir: Path) -> Path:
    return run_dir.parent / "logs" / f"{run_dir.name}.failed.json"


def run_state(run_dir: Path) -> str:
    """finished, interrupted (a checkpoint to resume), failed, or new."""
    summary = RunFolder(run_dir).summary
    if summary.is_file():
        try:
            if json.loads(summary.read_text()).get("status") == "finished":
                return "finished"
        except ValueError:
            pass
    if RunFolder(run_dir).last.is_file():
        return "interrupted"
    if failure_path(run_dir).is_file():
        return "failed"
    return "new"


def _last_error(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("error:"):
            return line[len("error:") :].strip()
    return lines[-1] if lines else "no output"


def run_one(spec: RunSpec, console: Console, index: int, total: int) -> str:
    """Run (or resume, or skip) one training run; returns its final state."""
    state = run_state(spec.out)
    label = f"[{index}/{total}] {spec.name} seed {spec.seed}"
    if state == "finished":
        console.print(f"{label}: finished earlier, skipped", highlight=False)
        return "finished"
    cmd = list(spec.command)
    if state == "interrupted":
        cmd += ["--resume"]
    elif spec.out.exists():
        cmd += ["--overwrite"]  # a failed or never-checkpointed attempt: start it again
    console.print(
        f"{label}: {'resuming' if state == 'interrupted' else 'training'} -> {spec.out} "
        f"(log: {log_path(spec.out)})",
        highlight=False,
    )
    failure_path(spec.out).unlink(missing_ok=True)
    start = time.perf_counter()
    log = log_path(spec.out)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        f.write(f"$ {shlex.join(cmd)}\n")
        f.flush()
        proc = subprocess.Popen(
            [sys.executable, "-m", "enet", *cmd[1:]],
            stdout=f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        _CHILD.append(proc)
        try:
            returncode = proc.wait()
        finally:
            _CHILD.clear()
    elapsed = time.perf_counter() - start
    if returncode == 0 and run_state(spec.out) == "finished":
        summary = json.loads(RunFolder(spec.out).summary.read_text())
        console.print(
            f"{label}: top-1 {summary['top1']:.2f}% in {elapsed / 60:.1f} min", highlight=False
        )
        return "finished"
    if returncode in (130, 138, 143, -2, -10, -15):  # stopped by a signal: resumable
        raise KeyboardInterrupt
    reason = _last_error(log)
    write_json_atomic(
        failure_path(spec.out), {"exit_code": returncode, "reason": reason, "command": cmd}
    )
    console.print(f"{label}: [red]failed[/] ({reason}); the others go on", highlight=False)
    return "failed"


def collect_rows(specs, cfg) -> list[dict]:
    """One row per planned run, from its run folder (finished, failed or not yet run)."""
    rows = []
    for spec in specs:
        info = get_model_info(spec.model)
        res = cfg.resolution if cfg.resolution != "model" else info.resolution
        row = {c: None for c in CSV_COLUMNS}
        row.update(
            name=spec.name,
            model=spec.model,
            seed=spec.seed,
            run_dir=str(spec.out),
            resolution=res,
            status="not run",
        )
        summary = read_json(RunFolder(spec.out).summary)
        failed = read_json(failure_path(spec.out))
        if summary and summary.get("status") == "finished":
            # results.csv's columns are summary.json's fields (two renamed), read by name
            row.update({c: summary.get(SUMMARY_FIELD.get(c, c)) for c in FROM_SUMMARY})
            row.update(
                status="finished", init=row["init"] or "random", diverged=bool(row["diverged"])
            )
        elif failed:
            row.update(status="failed", reason=failed.get("reason"))
        elif RunFolder(spec.out).last.is_file():
            row["status"] = "interrupted"
        rows.append(row)
    return rows


def collect_curves(specs: list[RunSpec]) -> dict[str, list[list[dict]]]:
    """Each finished run's metrics.jsonl records, by entry name."""
    curves: dict[str, list[list[dict]]] = {}
    for spec in specs:
        records = RunFolder(spec.out).read_metrics()
        if records and RunFolder(spec.out).summary.is_file():
            curves.setdefault(spec.name, []).append(records)
    return curves


def write_report(out: Path, specs: list[RunSpec], cfg: CompareConfig, console=None) -> list[dict]:
    return write_compare_report(
        out, collect_rows(specs, cfg), collect_curves(specs), specs, cfg, console=console
    )


_CHILD: list[subprocess.Popen] = []  # the run in progress, if any


def _on_stop(signum, frame) -> None:
    """SIGTERM / SIGINT: a running `enet train` gets the signal (it saves its checkpoint and
    exits, and is resumed next time); between runs the comparison stops at once."""
    if _CHILD:
        _CHILD[0].send_signal(signum)
    else:
        raise KeyboardInterrupt


def run(
    cfg: CompareConfig, out: str | Path, console: Console | None = None, report_only: bool = False
) -> list[dict]:
    """Train every (model, seed) pair not finished yet, then write the report. `report_only`:
    write the report of the runs as they stand (unfinished ones marked), training nothing."""
    console = console or Console()
    out = Path(out)
    if report_only and not (out / "compare.yaml").is_file():
        raise EnetError(f"--report-only: {out} holds no comparison (no compare.yaml)")
    out.mkdir(parents=True, exist_ok=True)
    _check_budget(cfg, out)
    specs = plan_runs(cfg, out)
    while report_only and (extra := more_seeds(cfg, out, specs)):
        specs += extra  # the adaptive rounds run so far (the next one shows as not run)
    if report_only:
        return write_report(out, specs, cfg, console=console)
    budget = f"{cfg.minutes} min" if cfg.minutes is not None else f"{cfg.epochs} epochs"
    console.print(
        f"comparing {', '.join(cfg.names)} on {cfg.data}: {budget} per run, "
        f"{cfg.seeds_text}, {len(specs)} runs, into {out} (each run's output: "
        f"{out / 'logs'}/<model>-s<seed>.log)",
        highlight=False,
    )
    console.print(
        "recipes: " + "; ".join(f"{name} {recipe}" for name, recipe in entry_recipes(cfg).items()),
        highlight=False,
        soft_wrap=True,
    )
    write_text_atomic(out / "compare.yaml", yaml.safe_dump(_as_yaml(cfg), sort_keys=False))
    previous = {sig: signal.signal(sig, _on_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        done = 0
        while True:
            for spec in specs[done:]:
                done += 1
                run_one(spec, console, done, len(specs))
            extra = more_seeds(cfg, out, specs)
            if not extra:
                break
            console.print(
                f"seeds auto: undecided against the leader, one more seed for "
                f"{', '.join(s.name for s in extra)}",
                highlight=False,
            )
            specs += extra
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted; run the same command again to continue (finished runs are kept)",
            highlight=False,
        )
        write_report(out, specs, cfg, console=None)
        raise SystemExit(130) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    rows = write_report(out, specs, cfg, console=console)
    failed = [r for r in rows if r["status"] == "failed"]
    if failed:
        names = "; ".join(f"{Path(r['run_dir']).name} ({r['reason']})" for r in failed)
        raise RunsFailed(f"{len(failed)} of {len(rows)} runs failed: {names}")
    return rows


def recipe_digests(cfg: CompareConfig) -> dict[str, str]:
    """Per entry, a digest of its recipe's settings (the parsed YAML, so comments and layout do
    not count): a recipe edited between two sessions of one comparison is caught."""
    digests = {}
    for e in cfg.entries:
        path = cfg.recipe_for(e)
        if path is not None:
            settings = json.dumps(load_yaml(path), sort_keys=True)
            digests[e.name] = hashlib.sha256(settings.encode()).hexdigest()[:16]
    return digests


def entry_recipes(cfg: CompareConfig) -> dict[str, str]:
    """Per entry, the recipe its runs use and where it comes from."""
    out = {}
    for e in cfg.entries:
        path = cfg.recipe_for(e)
        if path is None:
            out[e.name] = "enet train's defaults (no recipe)"
        elif cfg.named_recipe(e) is None:
            out[e.name] = f"{path} (the {get_model_info(e.model).family} family's default)"
        else:
            out[e.name] = str(path)
    return out


def _as_yaml(cfg: CompareConfig) -> dict:
    return {
        "data": cfg.data,
        "resolution": cfg.resolution,
        "epochs": cfg.epochs,
        "minutes": cfg.minutes,
        "seeds": "auto" if cfg.adaptive else list(cfg.seeds),
        **({"min_seeds": cfg.adaptive[0], "max_seeds": cfg.adaptive[1]} if cfg.adaptive else {}),
        "models": [
            e.model for e in cfg.entries if e.name == e.model and not e.recipe and not e.set
        ],
        "entries": [
            {"name": e.name, "model": e.model, "recipe": e.recipe, "set": list(e.set)}
            for e in cfg.entries
            if not (e.name == e.model and not e.recipe and not e.set)
        ],
        "recipes": {k: str(v) for k, v in cfg.recipes.items()},
        "overrides": {k: list(v) for k, v in cfg.overrides.items()},
        "set": list(cfg.set),
        "entry_recipes": entry_recipes(cfg),
        "recipe_digests": recipe_digests(cfg),
    }
