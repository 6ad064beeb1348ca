"""Reports, the pure part: eval.json's record, results.csv's columns, a comparison's
aggregation (mean, spread, best, warnings). No plotting library: testable on its own."""

from __future__ import annotations

import math
import statistics

import numpy as np

from ..class_names import display_names
from ..divergence import diverged, untrained_loss
from ..tables import duration


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
    # the statistics' columns (added, never replacing the above): the run's validation images
    # and its top-1's 95% interval over them (Wilson's)
    "images",
    "top1_ci_low",
    "top1_ci_high",
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


def aggregate(rows: list[dict], names: list[str], verdict=None) -> list[dict]:
    """Per entry: top-1/top-5 mean and standard deviation over finished seeds, and costs; with
    a verdict (report/verdict.py), the top-1's interval over seeds and images and the
    difference from the leader."""
    out = []
    estimates = verdict.estimates if verdict else {}
    against = {c.other: c for c in verdict.comparisons} if verdict else {}
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
                top1_interval=estimates.get(name),
                vs_leader=against.get(name),
                leader=bool(verdict and verdict.comparisons)
                and verdict.comparisons[0].leader == name,
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


def _interval(estimate) -> str:
    return "-" if estimate is None else f"{estimate.low:.1f} to {estimate.high:.1f}"


def _against(s: dict) -> str:
    """The entry's difference from the leader with its interval and p-value ('leader' for the
    leader itself): e.g. '-1.6 (-2.4 to -0.8) p=0.001'."""
    if s.get("leader"):
        return "leader"
    c = s.get("vs_leader")
    if c is None:
        return "-"
    d = c.difference
    behind, low, high = (0.0 - x for x in (d.value, d.high, d.low))  # 0.0 - 0.0: no "-0.0"
    return f"{behind:+.1f} ({low:.1f} to {high:.1f}) p={c.p:.2g}"


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
        "95% CI",
        "vs leader",
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
                _interval(s.get("top1_interval")),
                _against(s),
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
