"""How sure a comparison's answer is (issue 29), from per-image correctness: arrays of 0/1 of
shape (seeds, images), one per entry, the images in the same order for every entry.

- An entry's top-1 gets a 95% interval from a two-level bootstrap, seeds and images resampled
  together: the seeds' spread alone understates the uncertainty (Imagenette's 3,925 validation
  images are worth about +-1.25 points at 80%), the images' alone ignores the training noise.
  scipy.stats.bootstrap resamples one level (or several samples of equal size in lockstep), not
  a nested design, so this one is numpy (percentile intervals, 4,000 resamples, seeded).
- Two entries: the difference in top-1 with a paired interval (the same images resampled for
  both; seeds paired by position) and a p-value from the exact sign test on the images where
  the two differ, `scipy.stats.binomtest` (with one seed each it is McNemar's exact test; with
  several, each image's correctness is averaged over seeds first).
- Several entries against the best: Holm's step-down adjustment of the p-values (scipy has
  Benjamini-Hochberg, `false_discovery_control`, but not Holm's family-wise control).

No plotting library and no files: aggregation only (testable alone).
"""

from __future__ import annotations

from dataclasses import dataclass

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


def paired_difference(a, b, level: float = LEVEL, seed: int = 0) -> tuple[Estimate, float]:
    """Top-1 of `a` minus `b` (points) with a paired interval, and the sign test's p-value.
    Seeds pair by position (the first seeds of each, as many as both have); the interval
    resamples those pairs and the images together."""
    a, b = _as_matrix(a), _as_matrix(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"the entries were evaluated on {a.shape[1]} and {b.shape[1]} images")
    k = min(len(a), len(b))
    diff = a[:k] - b[:k]  # (k, n) in {-1, 0, 1}
    n = diff.shape[1]
    rng = np.random.default_rng(seed)
    image_w = _weights(rng, n, RESAMPLES)
    seed_w = _weights(rng, k, RESAMPLES)
    draws = 100 * ((image_w @ diff.T / n) * seed_w).sum(1) / k
    low, high = _interval(draws, level)
    value = 100 * float(a.mean() - b.mean())
    per_image = a.mean(0) - b.mean(0)  # every seed of each entry, image by image
    wins, losses = int((per_image > 0).sum()), int((per_image < 0).sum())
    p = stats.binomtest(wins, wins + losses, 0.5).pvalue if wins + losses else 1.0
    return Estimate(value, low, high, k, n), float(p)


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
            return (
                f"{self.leader} beats {self.other} by {d.value:.1f} points ({ci}, "
                f"p = {self.p:.2g}; {size})"
            )
        return (
            f"no clear winner between {self.leader} and {self.other} (difference "
            f"{d.value:.1f} points, {ci}, p = {self.p:.2g}; {size}): more seeds or a larger "
            "validation set would narrow it"
        )


def verdict(entries: dict[str, object]) -> list[Comparison]:
    """Each entry against the best mean top-1, Holm-adjusted when there are more than two."""
    if len(entries) < 2:
        return []
    means = {name: float(_as_matrix(c).mean()) for name, c in entries.items()}
    leader = max(means, key=means.get)
    others = [name for name in entries if name != leader]
    pairs = [paired_difference(entries[leader], entries[o]) for o in others]
    pvalues = [p for _, p in pairs]
    if len(others) > 1:
        pvalues = holm(pvalues)
    return [
        Comparison(leader, other, diff, p)
        for other, (diff, _), p in zip(others, pairs, pvalues, strict=True)
    ]
