"""Reports' files: enet eval's eval.json, per_class.csv and plots; compare's report.md,
results.csv and plots. Every file is written to a temporary name and renamed into place, so a
crash never leaves a half-written report."""

from __future__ import annotations

import csv
import io
import shlex
from pathlib import Path

from ..fileio import read_json, write_json_atomic, write_text_atomic
from ..tables import compare_table, duration, eval_tables
from .aggregate import CSV_COLUMNS, _fmt, _table_rows, aggregate, learning_warnings
from .plots import LABELLED_CLASSES, compare_plots, confusion_plot, per_class_plot


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


def write_compare_report(out: Path, rows, curves, specs, cfg, console=None) -> list[dict]:
    """results.csv, report.md and the plots, from compare's rows (one per planned run) and
    curves (each finished run's metrics, by entry name)."""

    out = Path(out)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out / "results.csv", buf.getvalue())
    summary = aggregate(rows, cfg.names)
    plots = compare_plots(out, curves, summary, cfg.names)
    write_text_atomic(out / "report.md", _markdown(cfg, specs, rows, summary, plots))
    if console is not None:
        header, body, best = _table_rows(summary)
        budget = f"{cfg.minutes} min" if cfg.minutes is not None else f"{cfg.epochs} epochs"
        title = f"{cfg.data}, {budget} per run, {len(cfg.seeds)} seed(s)"
        console.print(compare_table(title, header, body, best))
        for line in learning_warnings(summary):
            console.print(f"[bold red]warning:[/] {line}", highlight=False)
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


def _markdown(cfg, specs, rows, summary, plots) -> str:
    header, body, best = _table_rows(summary)
    finished = sum(r["status"] == "finished" for r in rows)
    unfinished = " (the others are marked below)" if finished < len(rows) else ""
    budget = f"{cfg.minutes} minutes" if cfg.minutes is not None else f"{cfg.epochs} epochs"
    res = "each model's own" if cfg.resolution == "model" else f"{cfg.resolution} px"
    lines = [
        f"# enet compare-baselines: {cfg.data}",
        "",
        f"Budget: {budget} per run; resolution: {res}; seeds: "
        f"{', '.join(map(str, cfg.seeds))}. Runs finished: "
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
