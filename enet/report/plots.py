"""Reports' figures (PNG through matplotlib's Agg backend), each written atomically."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

from ..fileio import atomic_write

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


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
