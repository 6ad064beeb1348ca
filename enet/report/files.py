"""Reports' files: enet eval's eval.json, per_class.csv and plots; compare's report.md,
results.csv and plots. Every file is written to a temporary name and renamed into place, so a
crash never leaves a half-written report."""

from __future__ import annotations

import csv
import gzip
import io
import shlex
from dataclasses import asdict
from pathlib import Path

import numpy as np
from scipy import stats

from ..class_names import display_name
from ..fileio import read_json, write_json_atomic, write_text_atomic
from ..tables import compare_table, duration, eval_tables
from ..train.run_folder import RunFolder
from .aggregate import CSV_COLUMNS, _fmt, _table_rows, aggregate, learning_warnings
from .plots import LABELLED_CLASSES, compare_plots, confusion_plot, per_class_plot
from .verdict import EntryResults, Verdict, judge

PREDICTIONS = RunFolder(".").predictions.name  # a run's per-image results, for messages


def print_eval(record: dict, title: str, console) -> None:
    for t in eval_tables(record, title):
        console.print(t)


def write_eval(record: dict, confusion: list[list[int]], out_dir: Path, title: str) -> list[Path]:
    """eval.json, per_class.csv, confusion.png (and per_class.png above LABELLED_CLASSES
    classes); every file atomic, so a failure leaves no partial or temporary file."""

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    files = [out_dir / "eval.json", out_dir / "per_class.csv", out_dir / "confusion.png"]
    write_json_atomic(files[0], record)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["class_id", "name", "correct", "images", "accuracy"])
    writer.writeheader()
    writer.writerows(record["per_class"])
    write_text_atomic(files[1], buf.getvalue())
    confusion_plot(confusion, record["class_names"], files[2], title)
    if len(record["classes"]) > LABELLED_CLASSES:
        files.append(out_dir / "per_class.png")
        per_class_plot(record["per_class"], files[-1], title)
    return files


def read_predictions(path: Path) -> dict[str, np.ndarray] | None:
    """A run's predictions.csv.gz as arrays (file, true, predicted, correct); None if absent."""
    if not path.is_file():
        return None
    with gzip.open(path, "rt", newline="") as f:
        rows = list(csv.DictReader(f))
    return {
        "file": np.array([r["file"] for r in rows]),
        "true": np.array([r["true"] for r in rows]),
        "predicted": np.array([r["predicted"] for r in rows]),
        "correct": np.array([int(r["correct"]) for r in rows], dtype=np.int8),
    }


def comparison_statistics(rows: list[dict], names: list[str]) -> Verdict | None:
    """The verdict from each finished run's predictions.csv.gz; adds each run's own 95% interval
    over its images (Wilson's, scipy.stats.binomtest) to its row."""
    entries, missing = {}, {}
    for name in names:
        runs = sorted(
            (r for r in rows if r["name"] == name and r["status"] == "finished"),
            key=lambda r: r["seed"],
        )
        found = [(r, read_predictions(RunFolder(r["run_dir"]).predictions)) for r in runs]
        found = [(r, p) for r, p in found if p is not None]
        for r, p in found:
            ci = stats.binomtest(int(p["correct"].sum()), len(p["correct"])).proportion_ci()
            r.update(images=len(p["correct"]), top1_ci_low=100 * ci.low, top1_ci_high=100 * ci.high)
        if not runs:
            missing[name] = "no finished run yet"
        elif not found:
            missing[name] = f"no per-image results ({PREDICTIONS}: runs from before enet wrote it)"
        else:
            if len(found) < len(runs):
                missing[name] = f"{len(runs) - len(found)} of its runs have no {PREDICTIONS}"
            files = [p["file"] for _, p in found]
            if any(not np.array_equal(f, files[0]) for f in files):
                missing[name] = "its runs were evaluated on different images"
                continue
            entries[name] = EntryResults(
                [r["seed"] for r, _ in found],
                np.stack([p["correct"] for _, p in found]),
                found[0][1]["true"],
            )
    classes = set().union(*(e.true.tolist() for e in entries.values()))
    return judge(entries, missing, {c: display_name(c) for c in classes})


def write_compare_report(out: Path, rows, curves, specs, cfg, console=None) -> list[dict]:
    """results.csv, report.md (opening with the verdict), verdict.json and the plots, from
    compare's rows (one per planned run) and curves (each finished run's metrics, by entry
    name)."""

    out = Path(out)
    verdict = comparison_statistics(rows, cfg.names)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out / "results.csv", buf.getvalue())
    summary = aggregate(rows, cfg.names, verdict)
    plots = compare_plots(out, curves, summary, cfg.names)
    write_json_atomic(out / "verdict.json", verdict_record(verdict))
    write_text_atomic(out / "report.md", _markdown(cfg, specs, rows, summary, plots, verdict))
    if console is not None:
        header, body, best = _table_rows(summary)
        budget = f"{cfg.minutes} min" if cfg.minutes is not None else f"{cfg.epochs} epochs"
        title = f"{cfg.data}, {budget} per run, {cfg.seeds_text}"
        console.print(compare_table(title, header, body, best))
        for line in learning_warnings(summary):
            console.print(f"[bold red]warning:[/] {line}", highlight=False)
        for line in verdict.lines() if verdict else []:
            console.print(line.replace("**", ""), highlight=False, soft_wrap=True)
        console.print(
            f"report: {out / 'report.md'}, {out / 'results.csv'}, {len(plots)} plots",
            highlight=False,
        )
    return rows


def _note(row: dict) -> str:
    """A run's note: why it failed, or its initial weights when not random (the Imagenette
    leaderboard admits random initialisation only)."""
    init = row.get("init")
    pretrained = f"not from scratch: {init}" if init and init != "random" else ""
    return "; ".join(x for x in (row.get("reason") or "", pretrained) if x)


def verdict_record(verdict: Verdict | None) -> dict:
    """verdict.json: the statistics as numbers (report.md has them in words)."""
    if verdict is None:
        return {"images": 0, "entries": {}, "comparisons": [], "per_class": [], "missing": {}}
    return {
        "images": verdict.images,
        "entries": {name: asdict(e) for name, e in verdict.estimates.items()},
        "comparisons": [
            dict(
                leader=c.leader,
                other=c.other,
                difference=asdict(c.difference),
                p=c.p,
                decided=c.decided,
                sentence=c.sentence(),
            )
            for c in verdict.comparisons
        ],
        "per_class": verdict.per_class,
        "missing": verdict.missing,
        "method": VERDICT_METHOD,
    }


VERDICT_METHOD = (
    "top-1 intervals: two-level bootstrap over seeds and validation images (4,000 resamples, "
    "percentile); differences: paired bootstrap (the same images, runs paired by seed), "
    "p-values: exact sign test on the images where the entries differ (scipy.stats.binomtest; "
    "McNemar's with one seed each), Holm-adjusted against the leader when there are more than "
    "two entries; a win needs the interval above zero and p < 0.05"
)


def _verdict_lines(verdict: Verdict | None) -> list[str]:
    if verdict is None:
        return ["## Verdict", "", "No finished run has per-image results yet.", ""]
    lines = ["## Verdict", ""] + [f"- {line}" for line in verdict.lines()]
    lines += ["", f"Method: {VERDICT_METHOD}.", ""]
    return lines


def _per_class_lines(verdict: Verdict | None) -> list[str]:
    """Which entry wins each class (a table up to 30 classes; above, the count per entry)."""
    if verdict is None or not verdict.per_class:
        return []
    names = list(verdict.per_class[0]["accuracy"])
    lines = ["", "## Per class", "", "Accuracy (%) per class over each entry's seeds; the "
             "winner's margin over the runner-up in points.", ""]  # fmt: skip
    wins = {n: sum(r["winner"] == n for r in verdict.per_class) for n in names}
    lines.append(
        "Classes won: " + ", ".join(f"{n} {w}" for n, w in wins.items())
        + f" (of {len(verdict.per_class)})."
    )  # fmt: skip
    if len(verdict.per_class) > 30:
        return lines
    lines += ["", "| class | " + " | ".join(names) + " | winner | margin |",
              "|---|" + "---:|" * len(names) + "---|---:|"]  # fmt: skip
    for r in verdict.per_class:
        accs = " | ".join(f"{r['accuracy'][n]:.1f}" for n in names)
        lines.append(f"| {r['name']} | {accs} | {r['winner']} | {r['margin']:.1f} |")
    return lines


def _seeds(cfg) -> str:
    if cfg.adaptive:
        return (
            f"auto, {cfg.adaptive[0]} to {cfg.adaptive[1]} per entry (after the first "
            f"{cfg.adaptive[0]}, a seed more for the leader and each entry undecided against it)"
        )
    return ", ".join(map(str, cfg.seeds))


def _markdown(cfg, specs, rows, summary, plots, verdict=None) -> str:
    header, body, best = _table_rows(summary)
    finished = sum(r["status"] == "finished" for r in rows)
    unfinished = " (the others are marked below)" if finished < len(rows) else ""
    budget = f"{cfg.minutes} minutes" if cfg.minutes is not None else f"{cfg.epochs} epochs"
    res = "each model's own" if cfg.resolution == "model" else f"{cfg.resolution} px"
    lines = [
        f"# enet compare-baselines: {cfg.data}",
        "",
        *_verdict_lines(verdict),
        "## Results",
        "",
        f"Budget: {budget} per run; resolution: {res}; seeds: {_seeds(cfg)}. Runs finished: "
        f"{finished} of {len(rows)}{unfinished}. Top-1 and top-5 are mean ± standard deviation "
        "over the finished seeds, on the validation split, after the last epoch. ★ marks "
        "the best mean top-1 among the entries with the most finished seeds.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for i, line in enumerate(body):
        cells = list(line)
        if i == best:
            cells = [f"**{c}**" for c in cells]
            cells[0] = f"★ {cells[0]}"
        lines.append("| " + " | ".join(cells) + " |")
    flagged = learning_warnings(summary)
    if flagged:
        lines += ["", "**Warning** (⚠ in the table): runs that learned nothing.", ""]
        lines += [f"- {line}" for line in flagged]
    lines += _per_class_lines(verdict)
    lines += _runs_table(rows)
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    lines += [
        "",
        "## Commands",
        "",
        "Each run, exactly as it was started (in the folder where "
        "`enet compare-baselines` ran; `--resume` "
        "continues one):",
        "",
        "```",
    ]
    lines += [" ".join(shlex.quote(a) for a in s.command) for s in specs]
    lines += ["```", ""]
    env = next(
        (
            read_json(Path(r["run_dir"]) / "env.json")
            for r in rows
            if (Path(r["run_dir"]) / "env.json").is_file()
        ),
        None,
    )
    if env:
        keys = (
            "enet",
            "python",
            "torch",
            "torchvision",
            "dali",
            "device",
            "gpu",
            "cuda",
            "cpu_count",
            "torch_threads",
            "platform",
            "git_commit",
        )
        lines += ["## Versions", ""] + [f"- {k}: {env[k]}" for k in keys if env.get(k) is not None]
        lines.append("")
    return "\n".join(lines)


def _runs_table(rows: list[dict]) -> list[str]:
    """Every planned run; an EMA top-1 column when some run kept an EMA."""
    ema = any(r.get("ema_top1") is not None for r in rows)
    lines = [
        "",
        "## Runs",
        "",
        "| name | model | seed | status | top-1 % | top-5 % | best top-1 % |"
        + (" EMA top-1 % |" if ema else "")
        + " epochs | wall time | note |",
        "|---|---|---:|---|---:|---:|---:|" + ("---:|" if ema else "") + "---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['model']} | {r['seed']} | {r['status']} | "
            f"{_fmt(r['top1'], '.2f')} | {_fmt(r['top5'], '.2f')} | "
            f"{_fmt(r['best_top1'], '.2f')} |"
            + (f" {_fmt(r.get('ema_top1'), '.2f')} |" if ema else "")
            + f" {_fmt(r['epochs'], 'd')} | {duration(r['wall_s'])} | "
            f"{_note(r).replace('|', '/')} |"
        )
    return lines
