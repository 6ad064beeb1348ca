"""The comparison's statistics (enet/report/verdict.py) on constructed cases: identical entries
are never a win, a large difference is decided, and the intervals cover the truth as often as
they claim where the seeds' spread alone does not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from enet.report.verdict import holm, paired_difference, top1_interval, verdict


def test_identical_entries_are_no_win():
    rng = np.random.default_rng(1)
    same = (rng.random((3, 2000)) < 0.8).astype(int)
    (comparison,) = verdict({"a": same, "b": same.copy()})
    assert comparison.difference.value == 0 and comparison.p == 1.0
    assert comparison.difference.low == comparison.difference.high == 0
    assert not comparison.decided
    assert comparison.sentence().startswith("no clear winner between a and b")


def test_a_large_difference_is_decided_and_sized():
    rng = np.random.default_rng(2)
    hard = rng.random(4000)
    a = np.stack([(hard < 0.9) ^ (rng.random(4000) < 0.02) for _ in range(3)]).astype(int)
    b = np.stack([(hard < 0.7) ^ (rng.random(4000) < 0.02) for _ in range(3)]).astype(int)
    (comparison,) = verdict({"b": b, "a": a})
    assert comparison.leader == "a" and comparison.decided
    d = comparison.difference
    assert d.low < d.value < d.high and 17 < d.low and d.high < 23
    assert comparison.p < 1e-12
    assert comparison.sentence().startswith(f"a beats b by {d.value:.1f} points (95% CI")
    assert "3 seeds each, 4,000 images" in comparison.sentence()


def test_one_seed_each_is_mcnemars_exact_test():
    a = np.array([1] * 50 + [1] * 10 + [0] * 2 + [0] * 8)  # 10 images only a, 2 only b
    b = np.array([1] * 50 + [0] * 10 + [1] * 2 + [0] * 8)
    diff, p = paired_difference(a, b)
    assert p == pytest.approx(stats.binomtest(10, 12, 0.5).pvalue)
    assert diff.value == pytest.approx(100 * 8 / 70) and diff.seeds == 1


def test_runs_pair_by_seed_where_the_seeds_match():
    """An entry whose seed 1 failed: its seeds 0 and 2 pair with the other's 0 and 2, not with
    the other's first two runs; without a seed in common, runs pair in order."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, (3, 400))
    b = a[[0, 2]].copy()  # the same answers as a's seeds 0 and 2
    diff, p = paired_difference(a[[0, 2]], b, seeds=([0, 2], [0, 2]))
    assert diff.value == 0 and diff.seeds == 2
    by_seed, by_seed_p = paired_difference(a, b, seeds=([0, 1, 2], [0, 2]))
    assert by_seed.seeds == 2 and by_seed.low == by_seed.high == 0  # seed 1 left unpaired
    assert (
        by_seed.value == 0 and by_seed_p == 1.0
    )  # from the same pairs as the interval, the test too
    in_order, _ = paired_difference(a, b)
    assert in_order.low < 0 < in_order.high  # a's seed 1 against b's seed 2: differ by chance
    assert paired_difference(a, b, seeds=([0, 1, 2], [5, 6]))[0].low == in_order.low
    (comparison,) = verdict({"a": a, "b": b}, {"a": [0, 1, 2], "b": [0, 2]})
    assert comparison.difference.low <= 0 <= comparison.difference.high


def test_the_difference_lies_in_its_interval_while_seeds_are_missing():
    """Half a comparison: the leader has two seeds, the other one. The difference, its interval
    and its test are all seed 0's; the leader's own seed 1 (far better here) moves none of them."""
    rng = np.random.default_rng(4)
    hard = rng.random(3000)
    leader = np.stack([hard < 0.80, hard < 0.95]).astype(int)  # seed 1: 15 points better
    other = (hard < 0.78).astype(int)[None, :]
    (comparison,) = verdict({"leader": leader, "other": other}, {"leader": [0, 1], "other": [0]})
    d = comparison.difference
    assert d.seeds == 1 and d.value == pytest.approx(100 * (leader[0] - other[0]).mean())
    assert d.low <= d.value <= d.high and d.high < 3
    wins = int((leader[0] > other[0]).sum())
    assert comparison.p == pytest.approx(stats.binomtest(wins, wins, 0.5).pvalue)


def test_holm_adjusts_step_down():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_intervals_cover_the_truth_where_the_seeds_spread_does_not():
    """Simulated comparisons: images of varying difficulty drawn from a population; three seeds
    that mostly agree image by image (as trained models do: the hard images are hard for every
    seed), each with a small offset and 5% of its answers its own. The two-level interval
    covers the population's accuracy about 95% of the time; mean +- 1.96 sd / sqrt(seeds) over
    the seeds (what a mean +- sd table suggests) covers it far less: it ignores the finite
    validation set."""
    rng = np.random.default_rng(3)
    population = rng.beta(8, 2, 1_000_000)
    truth = 100 * population.mean()
    covered = naive = 0
    trials = 100
    for _ in range(trials):
        difficulty = rng.choice(population, 600)
        seeds = rng.normal(0, 0.01, (3, 1))
        shared = rng.random(600)  # the image's draw, common to the seeds
        own = rng.random((3, 600)) < 0.05
        draw = np.where(own, rng.random((3, 600)), shared)
        correct = draw < np.clip(difficulty + seeds, 0, 1)
        est = top1_interval(correct, seed=int(rng.integers(1 << 30)))
        covered += est.low <= truth <= est.high
        per_seed = 100 * correct.mean(1)
        half = 1.96 * per_seed.std(ddof=1) / np.sqrt(3)
        naive += abs(per_seed.mean() - truth) <= half
    assert 0.88 <= covered / trials <= 1.0
    assert naive / trials < 0.6


def test_mismatched_images_are_refused():
    with pytest.raises(ValueError, match="2 and 3 images"):
        paired_difference([1, 0], [1, 0, 1])
