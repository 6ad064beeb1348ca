"""How sure a comparison's answer is (issue 29), from per-image correctness: arrays of 0/1 of
shape (seeds, images), one per entry, the images in the same order for every entry.

- An entry's top-1 gets a 95% interval from a two-level bootstrap, seeds and images resampled
  together: the seeds' spread alone understates the uncertainty (Imagenette's 3,925 validation
  images are worth about +-1.25 points at 80%), the images' alone ignores the training noise.
  scipy.stats.bootstrap resamples one level (or several samples of equal size in lockstep), not
  a nested design, so this one is numpy (percentile intervals, 4,000 resamples, seeded).
- Two entries: the difference in top-1 with a paired interval (the same images resampled for
  both; runs paired by seed where their seeds match, else in order) and a p-value from the
  exact sign test on the images where the two differ, `scipy.stats.binomtest` (with one seed
  each it is McNemar's exact test; with several, each image's difference is averaged over
  the paired runs first). Value, interval and test rest on the same paired runs.
- Several entries against the best: Holm's step-down adjustment of the p-values (scipy has
  Benjamini-Hochberg, `false_discovery_control`, but not Holm's family-wise control).

No plotting library and no files: aggregation only (testable alone).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

RESAMPLES = 4000
LEVEL = 0.95


def _as_matrix(correct) -> np.ndarray:
    m = np.asarray(correct, dtype=np.float64)
    if m.ndim == 1:
        m = m[None, :]
    if m.ndim != 2 or m.size == 0:
        raise ValueError("per-image correctness must be a (seeds, images) array")
    return m


def _weights(rng: np.random.Generator, n: int, resamples: int) -> np.ndarray:
    """Bootstrap resamples as counts: row r says how often each of n items was drawn."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)


def _interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Estimate:
    """A top-1 (or a difference of two), in percentage points, with its interval."""

    value: float
    low: float
    high: float
    seeds: int
    images: int


def top1_interval(correct, level: float = LEVEL, seed: int = 0) -> Estimate:
    """Mean top-1 (%) over seeds and images with its two-level bootstrap interval."""
    m = _as_matrix(correct)
    k, n = m.shape
    rng = np.random.default_rng(seed)
    image_w = _weights(rng, n, RESAMPLES)  # (R, n)
    seed_w = _weights(rng, k, RESAMPLES)  # (R, k)
    per_seed = image_w @ m.T / n  # (R, k): each seed's accuracy on the resampled images
    draws = 100 * (per_seed * seed_w).sum(1) / k
    low, high = _interval(draws, level)
    return Estimate(100 * float(m.mean()), low, high, k, n)


def paired_difference(
    a, b, level: float = LEVEL, seed: int = 0, seeds: tuple[list, list] | None = None
) -> tuple[Estimate, float]:
    """Top-1 of `a` minus `b` (points) with a paired interval, and the sign test's p-value.
    Runs pair by seed where `seeds` (each entry's, one per row) match; without seeds, or with
    none in common, in order (the first runs of each, as many as both have). The difference, its
    interval (those pairs and the images resampled together) and the test all rest on the paired
    runs only, so the value lies inside its interval and "k seeds each" is what they saw; each
    entry's own mean over all its seeds is `top1_interval`'s."""
    a, b = _as_matrix(a), _as_matrix(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"the entries were evaluated on {a.shape[1]} and {b.shape[1]} images")
    rows_a, rows_b = _pairs(len(a), len(b), seeds)
    diff = a[rows_a] - b[rows_b]  # (k, n) in {-1, 0, 1}
    k = len(rows_a)
    n = diff.shape[1]
    rng = np.random.default_rng(seed)
    image_w = _weights(rng, n, RESAMPLES)
    seed_w = _weights(rng, k, RESAMPLES)
    draws = 100 * ((image_w @ diff.T / n) * seed_w).sum(1) / k
    low, high = _interval(draws, level)
    # the value and the test rest on the same runs as the interval: while one entry has a seed
    # the other lacks (a comparison half done, a failed run), that seed is left out of all three
    value = 100 * float(diff.mean())
    per_image = diff.mean(0)  # the paired runs' difference, image by image
    wins, losses = int((per_image > 0).sum()), int((per_image < 0).sum())
    p = stats.binomtest(wins, wins + losses, 0.5).pvalue if wins + losses else 1.0
    return Estimate(value, low, high, k, n), float(p)


def _pairs(rows_a: int, rows_b: int, seeds: tuple[list, list] | None) -> tuple[list, list]:
    """Which rows of two entries pair: the same seed where they share any, else in order."""
    if seeds is not None:
        where_b = {s: i for i, s in enumerate(seeds[1])}
        common = [(i, where_b[s]) for i, s in enumerate(seeds[0]) if s in where_b]
        if common:
            return [i for i, _ in common], [j for _, j in common]
    k = min(rows_a, rows_b)
    return list(range(k)), list(range(k))


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment: family-wise error control over several comparisons."""
    order = np.argsort(pvalues)
    m = len(pvalues)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[index]))
        adjusted[index] = running
    return adjusted.tolist()


@dataclass(frozen=True)
class Comparison:
    leader: str
    other: str
    difference: Estimate  # leader minus other, points
    p: float  # adjusted (Holm) when there are more than two entries

    @property
    def decided(self) -> bool:
        """The leader wins: its interval excludes zero and the test agrees at 5%."""
        return self.difference.low > 0 and self.p < 1 - LEVEL

    def sentence(self) -> str:
        d = self.difference
        ci = f"95% CI {d.low:.1f} to {d.high:.1f}"
        size = f"{d.seeds} seed{'s' if d.seeds != 1 else ''} each, {d.images:,} images"
        if self.decided:
            # one seed each: the interval and the test see the images' noise, not the training's
            caveat = "; one run each, so the seeds' own spread is not in it" if d.seeds < 2 else ""
            return (
                f"{self.leader} beats {self.other} by {d.value:.1f} points ({ci}, "
                f"p = {self.p:.2g}; {size}{caveat})"
            )
        return (
            f"no clear winner between {self.leader} and {self.other} (difference "
            f"{d.value:.1f} points, {ci}, p = {self.p:.2g}; {size}): {self.to_settle()}"
        )

    def to_settle(self) -> str:
        """What would settle an undecided comparison: an interval's half-width shrinks about as
        1 / sqrt(seeds) while the seeds' spread dominates it, so a difference of this size needs
        about seeds * (half-width / difference)^2 seeds each (a rough guide: the validation
        images' share of the width does not shrink with seeds)."""
        d = self.difference
        half = (d.high - d.low) / 2
        if abs(d.value) < 0.05 or half == 0:
            return "the two are within noise of each other; more runs would not separate them"
        needed = math.ceil(d.seeds * (half / abs(d.value)) ** 2)
        if needed <= d.seeds or needed > 50:
            return (
                "a difference this small against this much noise needs far more seeds or a "
                "larger validation set"
            )
        return (
            f"about {needed} seeds each might settle it if the difference holds (more seeds "
            "narrow the interval; a larger validation set too)"
        )


def verdict(entries: dict[str, object], seeds: dict[str, list] | None = None) -> list[Comparison]:
    """Each entry against the best mean top-1, Holm-adjusted when there are more than two;
    `seeds` (each entry's, one per row) pairs runs by seed."""
    if len(entries) < 2:
        return []
    means = {name: float(_as_matrix(c).mean()) for name, c in entries.items()}
    leader = max(means, key=means.get)
    others = [name for name in entries if name != leader]
    pairs = [
        paired_difference(
            entries[leader], entries[o], seeds=(seeds[leader], seeds[o]) if seeds else None
        )
        for o in others
    ]
    pvalues = [p for _, p in pairs]
    if len(others) > 1:
        pvalues = holm(pvalues)
    return [
        Comparison(leader, other, diff, p)
        for other, (diff, _), p in zip(others, pairs, pvalues, strict=True)
    ]


@dataclass
class EntryResults:
    """One entry's finished runs, image by image: `correct` (seeds, images) 0/1 and `true` the
    images' classes (the same for every entry of a comparison), seeds in ascending order."""

    seeds: list[int]
    correct: np.ndarray
    true: np.ndarray


@dataclass
class Verdict:
    """Everything compare's report says about how sure its answer is."""

    images: int
    estimates: dict[str, Estimate]  # per entry: top-1 with its two-level interval
    comparisons: list[Comparison]  # each entry against the leader
    per_class: list[dict] = field(default_factory=list)  # class, winner, margin, accuracies
    missing: dict[str, str] = field(default_factory=dict)  # entry -> why it has no statistics

    @property
    def undecided(self) -> list[str]:
        """Entries whose comparison with the leader is undecided."""
        return [c.other for c in self.comparisons if not c.decided]

    def lines(self) -> list[str]:
        """The verdict in sentences: the winner (or who is tied with the leader), then each
        comparison, then the entries without per-image results."""
        out = []
        if self.comparisons:
            leader = self.comparisons[0].leader
            beaten = [c.other for c in self.comparisons if c.decided]
            tied = self.undecided
            if not tied:
                out.append(f"**{leader} wins**: it beats every other entry.")
            elif beaten:
                out.append(
                    f"**No single winner**: {leader} leads and beats {', '.join(beaten)}, but not "
                    f"clearly {', '.join(tied)}."
                )
            else:
                out.append(f"**No clear winner**: {leader} leads, but not clearly.")
            out += [_capitalised(c.sentence()) + "." for c in self.comparisons]
        out += [f"{name}: {why}." for name, why in self.missing.items()]
        return out


def _capitalised(sentence: str) -> str:
    """A sentence's first word capitalised, unless it is an entry's name (as written)."""
    return "N" + sentence[1:] if sentence.startswith("no clear winner") else sentence


def per_class_winners(entries: dict[str, EntryResults], class_names: dict) -> list[dict]:
    """Per class: each entry's accuracy (%) over its seeds and the class's images, the winner
    and its margin over the runner-up (points; 0 is a tie, won by the first listed)."""
    any_entry = next(iter(entries.values()))
    rows = []
    for cls in sorted(set(any_entry.true.tolist()), key=str):
        mask = any_entry.true == cls
        acc = {name: 100 * float(e.correct[:, mask].mean()) for name, e in entries.items()}
        ranked = sorted(acc, key=acc.get, reverse=True)
        margin = acc[ranked[0]] - acc[ranked[1]] if len(ranked) > 1 else 0.0
        rows.append(
            dict(
                cls=cls,
                name=class_names.get(cls, cls),
                images=int(mask.sum()),
                winner=ranked[0] if margin > 0 else "tie",
                margin=margin,
                accuracy=acc,
            )
        )
    return rows


def judge(
    entries: dict[str, EntryResults], missing: dict[str, str] | None = None, class_names=None
) -> Verdict | None:
    """The statistics of a comparison from its entries' per-image results (entries without any
    are listed in `missing` with the reason). None when fewer than one entry has results."""
    missing = dict(missing or {})
    if not entries:
        return None
    images = {len(e.true) for e in entries.values()}
    first = next(iter(entries.values()))
    if len(images) > 1 or any(not np.array_equal(e.true, first.true) for e in entries.values()):
        return Verdict(
            0,
            {},
            [],
            missing=missing
            | {"all": "the entries were evaluated on different images: no paired statistics"},
        )
    estimates = {name: top1_interval(e.correct) for name, e in entries.items()}
    comparisons = verdict(
        {name: e.correct for name, e in entries.items()},
        {name: e.seeds for name, e in entries.items()},
    )
    winners = per_class_winners(entries, class_names or {}) if len(entries) > 1 else []
    return Verdict(images.pop(), estimates, comparisons, winners, missing)
