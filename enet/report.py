"""Reports: plots (PNG, matplotlib's Agg backend) and tables (rich, markdown, CSV).

Every file is written to a temporary name and renamed into place, so a crash never leaves a
half-written report.
"""

from __future__ import annotations

import csv
import io
import math
import shlex
import statistics
from pathlib import Path

import matplotlib
import numpy as np

from .class_names import display_names
from .divergence import diverged, untrained_loss
from .fileio import write_json_atomic

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from .fileio import atomic_write, read_json, write_text_atomic  # noqa: E402
from .tables import compare_table, duration, eval_tables


def save_figure(fig, path: Path) -> None:
    try:
        atomic_write(
            path, lambda f: fig.savefig(f, format="png", dpi=120, bbox_inches="tight"), mode="wb"
        )
    finally:
        plt.close(fig)


LABELLED_CLASSES = 30  # up to this many classes a confusion matrix has names and counts
MAX_FIGURE_INCHES = 14.0  # at 120 dpi: at most about 1,700 px a side, at any class count


def confusion_plot(matrix: list[list[int]], names: list[str], path: Path, title: str) -> None:
    """Row-normalised confusion matrix (true class per row); names and counts up to
    LABELLED_CLASSES classes, a plain matrix (no tick labels) above."""

    m = np.asarray(matrix, dtype=float)
    rows = m.sum(1, keepdims=True)
    norm = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    n = len(names)
    labelled = n <= LABELLED_CLASSES
    size = min(MAX_FIGURE_INCHES, max(4.0, 0.45 * n + 2)) if labelled else 10.0
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    if labelled:
        ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(n), names, fontsize=8)
        for i, j in zip(*np.nonzero(m), strict=True):
            colour = "white" if norm[i, j] > 0.5 else "black"
            ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7, color=colour)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_xlabel("predicted class" + ("" if labelled else f" (index 0-{n - 1})"))
    ax.set_ylabel("true class" + ("" if labelled else f" (index 0-{n - 1})"))
    ax.set_title(title)
    save_figure(fig, path)


def per_class_plot(per_class: list[dict], path: Path, title: str, named: int = 15) -> None:
    """Every class's accuracy, sorted; the `named` worst classes labelled with their names."""
    rows = sorted((r for r in per_class if r["images"]), key=lambda r: r["accuracy"])
    fig, (ax, worst_ax) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [3, 2]})
    ax.plot(range(len(rows)), [r["accuracy"] for r in rows], color="tab:blue")
    ax.set_xlabel("classes, sorted by accuracy")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    worst = rows[:named]
    worst_ax.barh([r["name"] for r in worst], [r["accuracy"] for r in worst], color="tab:red")
    worst_ax.invert_yaxis()
    worst_ax.set_xlim(0, 100)
    worst_ax.set_xlabel("top-1 accuracy (%)")
    worst_ax.set_title(f"the {len(worst)} worst classes")
    worst_ax.tick_params(axis="y", labelsize=8)
    save_figure(fig, path)


# ---------------------------------------------------------------------------------------------
# enet eval's record, table and files


def eval_record(result, classes: list[str], options: dict, step: int | None) -> dict:
    """What eval.json holds: the options, the totals, every class (ID and name), the most
    confused pairs."""

    names = display_names(classes)
    per_class = [
        dict(
            class_id=c,
            name=name,
            correct=k,
            images=t,
            accuracy=100.0 * k / t if t else None,
        )
        for c, name, k, t in zip(
            classes, names, result.per_class_correct, result.per_class_total, strict=True
        )
    ]
    return dict(
        **options,
        step=step,
        loss=result.loss,
        top1=result.top1,
        top5=result.top5,
        count=result.count,
        img_per_s=result.img_per_s,
        classes=classes,
        class_names=names,
        per_class_correct=result.per_class_correct,
        per_class_total=result.per_class_total,
        per_class=per_class,
        most_confused=most_confused(result.confusion, classes, names),
    )


def most_confused(matrix: list[list[int]], classes: list[str], names: list[str], k: int = 10):
    """The k largest off-diagonal cells: (true, predicted, images)."""

    m = np.array(matrix, dtype=np.int64)
    np.fill_diagonal(m, 0)
    flat = np.argsort(m, axis=None)[::-1][:k]
    pairs = []
    for index in flat:
        i, j = divmod(int(index), m.shape[1])
        if m[i, j] == 0:
            break
        pairs.append(
            dict(
                true=classes[i],
                true_name=names[i],
                predicted=classes[j],
                predicted_name=names[j],
                images=int(m[i, j]),
            )
        )
    return pairs


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


# ---------------------------------------------------------------------------------------------
# compare-baselines report

CSV_COLUMNS = [
    "name",
    "model",
    "seed",
    "status",
    "params",
    "gflops",
    "resolution",
    "epochs",
    "top1",
    "top5",
    "best_top1",
    "ema_top1",
    "train_img_per_s",
    "eval_img_per_s",
    "wall_s",
    "peak_memory_bytes",
    "init",
    "reason",
    "run_dir",
    "classes",
    "diverged",
    "val_loss",
]

# A run whose top-1 is at most this many times what guessing scores (100 / classes %) learned
# nothing: flagged, never ranked.
CHANCE_FACTOR = 1.5


def at_chance(top1: float, classes: int | None) -> bool:
    """Is a top-1 (%) within CHANCE_FACTOR of guessing among `classes`?"""
    return bool(classes) and top1 <= CHANCE_FACTOR * 100.0 / classes


def failed_to_learn(row: dict) -> str | None:
    """A finished run that ended diverged (its last validation loss exploded: not a spike it
    recovered from) or sits at chance: why (None: it learned)."""
    if row.get("status") != "finished":
        return None
    val_loss, classes = row.get("val_loss"), row.get("classes")
    if val_loss is not None and classes and diverged(val_loss, untrained_loss(classes)):
        return "diverged"
    if at_chance(row["top1"], row.get("classes")):
        return "at chance"
    return None


def _mean_std(values: list[float]) -> tuple[float, float]:

    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(rows: list[dict], names: list[str]) -> list[dict]:
    """Per entry: top-1/top-5 mean and standard deviation over finished seeds, and costs."""
    out = []
    for name in names:
        mine = [r for r in rows if r["name"] == name]
        done = [r for r in mine if r["status"] == "finished"]
        flags = [f for f in map(failed_to_learn, done) if f]
        top1, top1_std = _mean_std([r["top1"] for r in done])
        top5, top5_std = _mean_std([r["top5"] for r in done])
        out.append(
            dict(
                name=name,
                model=mine[0]["model"],
                runs=len(done),
                planned=len(mine),
                failed=sum(r["status"] == "failed" for r in mine),
                at_chance=flags.count("at chance"),
                diverged=flags.count("diverged"),
                classes=done[0].get("classes") if done else None,
                top1=top1,
                top1_std=top1_std,
                top5=top5,
                top5_std=top5_std,
                best_top1=_mean_std([r["best_top1"] for r in done])[0],
                params=done[0]["params"] if done else None,
                gflops=done[0]["gflops"] if done else None,
                resolution=mine[0]["resolution"],
                train_img_per_s=_mean_std([r["train_img_per_s"] for r in done])[0],
                wall_s=_mean_std([r["wall_s"] for r in done])[0],
                peak_memory_bytes=_mean_std([r["peak_memory_bytes"] or 0 for r in done])[0],
            )
        )
    return out


def _fmt(value, spec: str, missing: str = "-") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return format(value, spec)


def _mean_spread(mean, std, runs: int) -> str:
    """`mean ± std` over seeds; one seed has no spread to show."""
    if not runs:
        return "-"
    if runs == 1:
        return f"{_fmt(mean, '.2f')} (1 seed)"
    return f"{_fmt(mean, '.2f')} ± {_fmt(std, '.2f')}"


def _flag(s: dict) -> str:
    """An entry's runs that learned nothing, e.g. "2 at chance" ("" when none)."""
    parts = [f"{s[k]} {k.replace('_', ' ')}" for k in ("at_chance", "diverged") if s.get(k)]
    return ", ".join(parts)


def learning_warnings(summary: list[dict]) -> list[str]:
    """One line per entry with runs that learned nothing (diverged, or at chance)."""
    lines = []
    for s in summary:
        if _flag(s):
            guess = f"{100 / s['classes']:.2f}%" if s.get("classes") else "chance"
            lines.append(
                f"{s['name']}: {_flag(s)} of {s['runs']} finished runs (top-1 "
                f"{_fmt(s['top1'], '.2f')}%, guessing scores {guess}): it did not learn and "
                "is not ranked; check its recipe (learning rate, initialisation) in its log"
            )
    return lines


def _best(summary: list[dict]) -> int | None:
    """The entry with the best mean top-1 among those with the most finished seeds: a mean over
    fewer seeds (a comparison part-way) is not ranked against them, nor an entry with runs that
    learned nothing; None before any finished."""
    most = max((s["runs"] for s in summary), default=0)
    ranked = [i for i, s in enumerate(summary) if most and s["runs"] == most and not _flag(s)]
    return max(ranked, key=lambda i: summary[i]["top1"]) if ranked else None


def _table_rows(summary: list[dict]) -> tuple[list[str], list[list[str]], int | None]:
    header = [
        "name",
        "model",
        "runs",
        "top-1 %",
        "top-5 %",
        "params (M)",
        "GFLOPs",
        "res",
        "train img/s",
        "wall time",
        "peak memory (GB)",
    ]
    best = _best(summary)
    body = []
    for s in summary:
        runs = f"{s['runs']}/{s['planned']}" + (f" ({s['failed']} failed)" if s["failed"] else "")
        runs += f" ⚠ {_flag(s)}" if _flag(s) else ""
        body.append(
            [
                s["name"],
                s["model"],
                runs,
                _mean_spread(s["top1"], s["top1_std"], s["runs"]),
                _mean_spread(s["top5"], s["top5_std"], s["runs"]),
                _fmt(s["params"] / 1e6 if s["params"] else None, ".2f"),
                _fmt(s["gflops"], ".3f"),
                str(s["resolution"]),
                _fmt(s["train_img_per_s"], ".1f"),
                duration(s["wall_s"]),
                _fmt(s["peak_memory_bytes"] / 1e9 if s["runs"] else None, ".2f"),
            ]
        )
    return header, body, best


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


def compare_plots(out: Path, curves: dict, summary: list[dict], models: list[str]) -> list[Path]:
    """The five figures; each readable on its own (titles, axis labels with units, legends).
    `models`: the entries' names, in the report's order; `curves`: name -> runs' metrics."""
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(models)}
    paths = [
        _band_plot(out / "top1_vs_epoch.png", curves, models, colours, "epoch", "epoch",
                   "Top-1 by epoch (line: mean over seeds; band: min to max)"),
        _band_plot(out / "top1_vs_time.png", curves, models, colours, "wall_s",
                   "wall-clock time (minutes)", "Top-1 against training time (mean over seeds)",
                   scale=60.0),
    ]  # fmt: skip
    done = [s for s in summary if s["runs"]]
    if done:
        paths.append(_cost_plot(out / "top1_vs_params.png", done, colours, "params"))
        paths.append(_cost_plot(out / "top1_vs_gflops.png", done, colours, "gflops"))
        paths.append(_throughput_plot(out / "throughput.png", done, colours))
    return [p for p in paths if p is not None]


def _band_plot(path, curves, models, colours, x_key, xlabel, title, scale=1.0) -> Path | None:
    """Top-1 against epochs or time: the mean over seeds, a min-max band."""

    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = False
    for m in models:
        runs = curves.get(m, [])
        if not runs:
            continue
        n = min(len(r) for r in runs)
        top1 = np.array([[rec["top1"] for rec in r[:n]] for r in runs])
        xs = np.array([[rec[x_key] for rec in r[:n]] for r in runs]).mean(0) / scale
        label = f"{m} ({len(runs)} seed{'s' if len(runs) > 1 else ''})"
        ax.plot(xs, top1.mean(0), marker="o", color=colours[m], label=label)
        if len(runs) > 1:
            ax.fill_between(xs, top1.min(0), top1.max(0), color=colours[m], alpha=0.2)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel(xlabel)
    if x_key == "epoch":
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.set_ylabel("validation top-1 (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)
    return path


def _cost_plot(path: Path, done: list[dict], colours: dict, key: str) -> Path:
    """Top-1 (mean ± std) against parameters or GFLOPs."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in done:
        x = s[key] / 1e6 if key == "params" else s[key]
        ax.errorbar(x, s["top1"], yerr=s["top1_std"], fmt="o", color=colours[s["name"]], capsize=4)
        ax.annotate(
            s["name"], (x, s["top1"]), textcoords="offset points", xytext=(6, 6), fontsize=8
        )
    ax.set_xlabel(
        "parameters (millions)" if key == "params" else "GFLOPs per image at its resolution"
    )
    ax.set_ylabel("validation top-1 (%), mean ± std")
    ax.set_title(f"Top-1 against {'size' if key == 'params' else 'compute'}")
    ax.grid(alpha=0.3)
    save_figure(fig, path)
    return path


def _throughput_plot(path: Path, done: list[dict], colours: dict) -> Path:
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(done) + 1.5))
    names = [s["name"] for s in done]
    ax.barh(names, [s["train_img_per_s"] for s in done], color=[colours[n] for n in names])
    for i, s in enumerate(done):
        ax.text(s["train_img_per_s"], i, f" {s['train_img_per_s']:.1f}", va="center", fontsize=8)
    ax.set_xlabel("training images per second (mean over seeds)")
    ax.set_title("Training throughput")
    ax.invert_yaxis()
    save_figure(fig, path)
    return path


# ---------------------------------------------------------------------------------------------
# enet plot


RUN_CURVES = (
    ("train_loss", "training loss"),
    ("val_loss", "validation loss"),
    ("top1", "validation top-1 (%)"),
    ("lr", "learning rate (at the epoch's end)"),
)


def runs_plot(curves: dict[str, list[dict]], path: Path) -> Path:
    """Training and validation loss, top-1 and learning rate by epoch, one line per run."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for ax, (key, label) in zip(axes.flat, RUN_CURVES, strict=True):
        for name, records in curves.items():
            points = [(r["epoch"], r[key]) for r in records if r.get(key) is not None]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        if key == "val_loss" and any(r.get("diverged") for rs in curves.values() for r in rs):
            ax.set_yscale("log")  # an exploded loss would flatten everything else
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(", ".join(curves) if len(curves) <= 3 else f"{len(curves)} runs")
    fig.tight_layout()
    save_figure(fig, path)
    return path


def lr_find_plot(result, path: Path, title: str) -> Path:
    """`enet lr-find`'s curve: smoothed loss against learning rate (log axis), the raw losses
    faint behind, the suggestion marked."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(result.lrs, result.losses, color="0.8", linewidth=0.8, label="loss per step")
    ax.plot(result.lrs, result.smoothed, color="C0", label="smoothed")
    if result.suggestion is not None:
        at = result.lrs.index(result.suggestion)
        ax.plot([result.suggestion], [result.smoothed[at]], "o", color="C3")
        ax.annotate(
            f"valley {result.suggestion:.2e}", (result.suggestion, result.smoothed[at]),
            textcoords="offset points", xytext=(8, 8), color="C3",
        )  # fmt: skip
    low = min(result.smoothed)
    ax.set_ylim(low - 0.1 * abs(low), max(result.smoothed[0], low) * 1.6)
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)
    return path
