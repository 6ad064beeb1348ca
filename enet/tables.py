"""Every terminal table enet prints, in one place. Commands compute plain data (what `--json`
prints); these functions only lay it out with rich."""

from __future__ import annotations

import math
from pathlib import Path

from rich.columns import Columns
from rich.console import Group
from rich.table import Table

from .class_names import display_name


def duration(seconds) -> str:
    """1:02:03 or 2:03 (h:mm:ss or m:ss); '-' when unknown."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "-"
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes}:{sec:02d}"


def table(title: str, columns: list[str], rows: list[list[str]], left: int = 1, **kw) -> Table:
    """A table whose first `left` columns are left-aligned and the others right-aligned."""
    t = Table(title=title, **kw)
    for i, col in enumerate(columns):
        t.add_column(col, justify="left" if i < left else "right")
    for row in rows:
        t.add_row(*row)
    return t


def models_table(rows: list[dict], num_classes: int) -> Table:
    return table(
        f"enet models ({num_classes} classes; GFLOPs: 2 per multiply-add)",
        ["name", "params", "GFLOPs", "resolution", "dropout"],
        [
            [r["name"], f"{r['params']:,}", f"{r['gflops']:.3f}", str(r["resolution"]),
             f"{r['dropout']:.1f}"]
            for r in rows
        ],
    )  # fmt: skip


def zoo_table(zoo: str, rows: list[dict], num_classes: int, count_limit: int):
    """`enet models --zoo`: the names in columns, or a table with their counts when at most
    `count_limit` were asked for."""
    if rows and "params" not in rows[0]:
        title = f"{zoo}: {len(rows)} models (counts for {count_limit} or fewer: --filter GLOB)"
        return Group(title, Columns([r["name"] for r in rows], equal=True, column_first=True))
    return table(
        f"{zoo}: {len(rows)} models ({num_classes} classes; GFLOPs at the model's resolution)",
        ["name", "params", "GFLOPs", "resolution", "crop"],
        [
            [r["name"], f"{r['params']:,}", "-" if r["gflops"] is None else f"{r['gflops']:.3f}",
             str(r["resolution"]), f"{r['crop_pct']:.3f}"]
            for r in rows
        ],
    )  # fmt: skip


def data_info_table(info: dict, shown: int = 10) -> Table:
    """Every class up to 3 x `shown` classes; beyond, the `shown` smallest and largest by
    training images (ImageNet's 1,000 rows help nobody in a terminal; --json has them all)."""
    per_class = list(
        zip(info["classes"], info["train_per_class"], info["val_per_class"], strict=True)
    )
    title = f"{info['root']}: {len(per_class)} classes"
    if len(per_class) > 3 * shown:
        ordered = sorted(per_class, key=lambda c: (c[1], c[0]))
        hidden = len(per_class) - 2 * shown
        per_class = ordered[:shown] + [None] + ordered[-shown:]
        title += f" (the {shown} smallest and largest by training images; --json lists all)"
    rows = [
        [display_name(c[0]), c[0], str(c[1]), str(c[2])]
        if c
        else [f"[dim]... {hidden} more classes", "", "", ""]
        for c in per_class
    ]
    rows.append(["[bold]total", "", f"[bold]{info['train_images']}", f"[bold]{info['val_images']}"])
    return table(title, ["class", "id", "train", "val"], rows, left=2)


def unreadable_table(problems: list[tuple[str, str]]) -> Table:
    t = Table(title=f"{len(problems)} unreadable files (left out of every run)")
    t.add_column("file", no_wrap=True)
    t.add_column("problem")
    for path, problem in problems:
        t.add_row(path, problem)
    return t


def bench_table(rows: list[dict], title: str) -> Table:
    extra = [
        c
        for c in (
            "vs_baseline",
            "vs_fp32",
            "vs_torchvision",
            "peak_memory_mb",
            "memory_vs_torchvision",
        )
        if any(c in r for r in rows)
    ]
    body = []
    for r in rows:
        cells = [r["name"], f"{r['median']:.1f} {r['unit']}", f"{r['min']:.1f}", f"{r['max']:.1f}"]
        for col in extra:
            v = r.get(col)
            cells.append(
                "-" if v is None else (f"{v:.0f}" if col == "peak_memory_mb" else f"{v:.2f}x")
            )
        body.append(cells)
    columns = ["name", "median", "min", "max"] + [c.replace("_", " ") for c in extra]
    return table(title, columns, body)


def train_results_table(summary: dict) -> Table:
    ema = summary.get("ema_top1") is not None
    columns = ["top-1 %", "top-5 %", "best top-1 %"] + (["EMA top-1 %"] if ema else [])
    row = [f"{summary['top1']:.2f}", f"{summary['top5']:.2f}", f"{summary['best_top1']:.2f}"]
    row += [f"{summary['ema_top1']:.2f}"] if ema else []
    row += [f"{summary['img_per_s']:.1f}", duration(summary["wall_s"])]
    title = (
        f"{summary['model']} on {summary['data']} ({summary['res']}px, {summary['epochs']} epochs)"
    )
    return table(title, columns + ["train img/s", "wall time"], [row], left=0)


def eval_tables(record: dict, title: str, rows_shown: int = 10) -> list[Table]:
    """The totals; per-class accuracy (every class up to 2 x rows_shown classes, else the best
    and worst); the most confused pairs."""
    totals = table(
        title,
        ["top-1 %", "top-5 %", "loss", "img/s"],
        [[f"{record['top1']:.2f}", f"{record['top5']:.2f}", f"{record['loss']:.4f}",
          f"{record['img_per_s']:.0f}"]],
        left=0,
    )  # fmt: skip
    rows = [r for r in record["per_class"] if r["images"]]
    caption = None
    if len(rows) > 2 * rows_shown:
        ranked = sorted(rows, key=lambda r: r["accuracy"])
        rows = ranked[-rows_shown:][::-1] + ranked[:rows_shown][::-1]
        caption = (
            f"the {rows_shown} best and {rows_shown} worst of {len(ranked)} classes; all of them "
            "in per_class.csv"
        )
    per_class = table(
        "per-class accuracy",
        ["class", "id", "correct", "images", "accuracy %"],
        [[r["name"], r["class_id"], str(r["correct"]), str(r["images"]), f"{r['accuracy']:.1f}"]
         for r in rows],
        left=2,
        caption=caption,
    )  # fmt: skip
    out = [totals, per_class]
    if record["most_confused"]:
        pairs = record["most_confused"][:rows_shown]
        out.append(
            table(
                "most confused (true -> predicted)",
                ["true", "predicted", "images"],
                [[p["true_name"], p["predicted_name"], str(p["images"])] for p in pairs],
                left=2,
            )
        )
    return out


def predictions_table(rows: list[dict], top_k: int) -> Table:
    body = []
    for r in rows:
        if r.get("error"):
            body.append([r["path"], f"[red]{r['error']}"])
            continue
        guesses = ", ".join(
            f"{n} {100 * p:.1f}%" for n, p in zip(r["names"], r["probs"], strict=True)
        )
        body.append([r["path"], guesses])
    return table(f"top-{top_k} predictions", ["file", "classes"], body, left=2)


def compare_table(title: str, header: list[str], body: list[list[str]], best: int | None):
    t = Table(title=title)
    for i, col in enumerate(header):
        t.add_column(col, justify="left" if i < 2 else "right")
    for i, line in enumerate(body):
        t.add_row(*line, style="bold green" if i == best else None)
    return t


def relative(path: str, root: Path) -> str:
    """A dataset file as train/<class>/<file> when it lies under the dataset's root."""
    return str(Path(path).relative_to(root)) if path.startswith(str(root)) else path


def lr_find_table(result, title: str) -> Table:
    rows = [
        ["valley (suggested)", f"{result.suggestion:.2e}"],
        ["minimum / 10", f"{result.min_lr:.2e}"],
        ["steps", f"{len(result.lrs)} ({result.stopped})"],
    ]
    return table(title, ["", "learning rate"], rows)
