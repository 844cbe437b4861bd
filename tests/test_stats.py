"""The statistics behind every verdict (tssl/records/stats.py): t-intervals, the equivalence rule against the paper, the
seeds that would decide an inconclusive verdict, Welch's test and the regression gate.

The per-seed values here are SYNTHETIC (made up for the tests), except where a test says it repeats the
numbers issue 13 quotes from the F-MNIST records, to pin the rule's decision on them.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from tssl.records.stats import (
    EQUIVALENCE_LEVEL,
    INCONCLUSIVE,
    NOT_REPRODUCED,
    REGRESSION_ALPHA,
    REGRESSION_RULE,
    REPRODUCED,
    VERDICT_RULE,
    equivalence_verdict,
    regression_test,
    seeds_needed,
    summarize,
    t_interval,
    t_quantile,
    welch,
)


def with_mean_and_std(n: int, mean: float, std: float) -> list[float]:
    """n SYNTHETIC values whose sample mean and sample std (ddof = 1) are exactly ``mean`` and ``std``."""
    z = np.linspace(-1.0, 1.0, n)
    z = (z - z.mean()) / z.std(ddof=1)
    return list(mean + std * z)


# ------------------------------------------------------------------------------------------------------------
# t quantiles and intervals


@pytest.mark.parametrize("df", [1, 2, 5, 30, 31, 35, 60, 120, 1000])
def test_t_quantiles_are_scipys_at_every_df(df: int) -> None:
    # The old table returned 1.96 for every df > 30 (2.040 at df = 31, 2.000 at 60: intervals too narrow).
    assert t_quantile(0.975, df) == pytest.approx(scipy_stats.t.ppf(0.975, df), rel=1e-12)
    assert t_quantile(0.95, df) == pytest.approx(scipy_stats.t.ppf(0.95, df), rel=1e-12)
    if df <= 120:
        assert t_quantile(0.975, df) > 1.97


def test_no_jump_to_the_normal_quantile_past_30_seeds() -> None:
    values = with_mean_and_std(35, 90.0, 1.0)  # df = 34
    low, high = t_interval(values, 0.95)
    half = scipy_stats.t.ppf(0.975, 34) / math.sqrt(35)
    assert (high - low) / 2 == pytest.approx(half, rel=1e-9)
    assert (high - low) / 2 > 1.96 / math.sqrt(35) * 1.01  # not the normal approximation
    quantiles = [t_quantile(0.975, df) for df in range(25, 40)]
    assert all(a > b for a, b in itertools.pairwise(quantiles))  # smooth, decreasing: no step at 31
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_quantile(0.975, 0)


def test_summarize_and_intervals() -> None:
    summary = summarize([97.0, 97.1, 97.2])
    assert summary.n == 3 and summary.mean == pytest.approx(97.1) and summary.std == pytest.approx(0.1)
    assert summary.ci95 == pytest.approx((97.1 - 4.302653 * 0.1 / math.sqrt(3), 97.1 + 4.302653 * 0.1 / math.sqrt(3)))
    assert summary.ci90 == pytest.approx((97.1 - 2.919986 * 0.1 / math.sqrt(3), 97.1 + 2.919986 * 0.1 / math.sqrt(3)))
    one = summarize([97.0])
    assert one.n == 1 and math.isnan(one.std) and one.ci95 is None and one.ci90 is None
    assert t_interval([97.0]) is None
    with pytest.raises(ValueError):
        summarize([])


# ------------------------------------------------------------------------------------------------------------
# The equivalence verdict (two one-sided tests)


def test_a_wild_spread_around_the_paper_is_not_reproduced() -> None:
    # Issue 13: seeds [50, 99, 91.5] have mean 80.17, within δ = 0.5 of P = 80; the old rule (n ≥ 3 and
    # |μ - P| ≤ δ) called that "reproduced" whatever the spread.
    outcome = equivalence_verdict([50.0, 99.0, 91.5], 80.0, 0.5)
    assert outcome.label == INCONCLUSIVE
    assert "90 % CI" in outcome.reason and "not inside" in outcome.reason


def test_the_three_seed_fmnist_final_numbers_are_not_reproduced() -> None:
    # Issue 13: the F-MNIST MLP's three final-epoch values (mean 89.48) against the paper's 89.75 ± δ 0.3: the
    # old rule said "reproduced" (|μ - P| = 0.27 ≤ 0.3) with a 95 % CI reaching 0.27 below the band.
    outcome = equivalence_verdict([89.62, 89.40, 89.42], 89.75, 0.3)
    assert outcome.label == INCONCLUSIVE
    assert outcome.summary.ci90[0] < 89.45  # the 90 % interval leaves the band on the low side
    assert outcome.seeds_needed is not None and outcome.seeds_needed > 3


def test_the_five_seed_fmnist_best_numbers_are_reproduced() -> None:
    # Issue 13's five F-MNIST best-epoch values against the paper's 89.75 ± δ 0.3: the 90 % CI [89.56, 90.01]
    # lies inside [89.45, 90.05].
    outcome = equivalence_verdict([89.78, 89.90, 89.77, 89.41, 90.05], 89.75, 0.3)
    assert outcome.label == REPRODUCED, outcome.reason
    low, high = outcome.summary.ci90
    assert low >= 89.45 and high <= 90.05
    assert outcome.seeds_needed is None


def test_verdict_rule_cases() -> None:
    assert equivalence_verdict([97.0, 97.1, 97.2], 97.0, 0.5).label == REPRODUCED
    # n = 2, far below: the 95 % CI [88.83, 91.37] lies below [96.5, 97.5].
    far = equivalence_verdict([90.0, 90.2], 97.0, 0.5)
    assert far.label == NOT_REPRODUCED and far.summary.ci95[1] < 96.5
    # Far above also counts as not reproduced.
    assert equivalence_verdict([99.0, 99.1, 99.2], 97.0, 0.5).label == NOT_REPRODUCED
    one = equivalence_verdict([97.0], 97.0, 0.5)
    assert one.label == INCONCLUSIVE and "n = 1" in one.reason and one.seeds_needed is None
    # Inside the band on average but too few seeds for the interval to fit in it.
    wide = equivalence_verdict([96.6, 97.4, 97.0], 97.0, 0.5)
    assert wide.label == INCONCLUSIVE and wide.seeds_needed is not None
    # The mean outside the band, the 95 % CI still reaching into it: inconclusive, not "not reproduced".
    near = equivalence_verdict([95.5, 96.5, 96.0], 97.0, 0.5)
    assert near.label == INCONCLUSIVE and near.summary.ci95[1] >= 96.5
    # Zero spread exactly on the band's edge counts as inside it (the interval is the point 95.2 = P + δ).
    assert equivalence_verdict([95.2, 95.2, 95.2], 94.7, 0.5).label == REPRODUCED
    assert str(far).startswith("not reproduced (n = 2")


def test_the_rule_text_states_the_levels() -> None:
    for phrase in ("90 % t-interval", "95 % t-interval", "two one-sided tests", "scipy"):
        assert phrase in VERDICT_RULE
    assert EQUIVALENCE_LEVEL == 0.90
    assert "1 %" in REGRESSION_RULE and "Welch" in REGRESSION_RULE


# ------------------------------------------------------------------------------------------------------------
# Seeds needed


@pytest.mark.parametrize(
    ("mean", "std", "paper", "tolerance", "expected"),
    [
        (97.1, 0.3, 97.0, 0.5, REPRODUCED),  # inside the band [96.5, 97.5]: the 90 % CI must fit in it
        (89.48, 0.12165525060596472, 89.75, 0.3, REPRODUCED),  # the 3-seed F-MNIST final numbers' mean and std
        (95.9, 1.0, 97.0, 0.5, NOT_REPRODUCED),  # below the band: the 95 % CI must leave it
        (98.2, 0.8, 97.0, 0.5, NOT_REPRODUCED),  # above it
    ],
)
def test_seeds_needed_is_where_the_rule_decides(mean: float, std: float, paper: float, tolerance: float,
                                                expected: str) -> None:
    n = seeds_needed(mean, std, paper, tolerance)
    assert n is not None and n >= 2
    # With that many seeds at the same mean and spread the rule decides, and one seed fewer it does not.
    assert equivalence_verdict(with_mean_and_std(n, mean, std), paper, tolerance).label == expected
    if n > 2:
        assert equivalence_verdict(with_mean_and_std(n - 1, mean, std), paper, tolerance).label == INCONCLUSIVE


def test_seeds_needed_agrees_with_an_inconclusive_verdict() -> None:
    values = [89.62, 89.40, 89.42]
    outcome = equivalence_verdict(values, 89.75, 0.3)
    summary = summarize(values)
    assert outcome.seeds_needed == seeds_needed(summary.mean, summary.std, 89.75, 0.3)
    assert f"about {outcome.seeds_needed} seeds" in outcome.reason


def test_seeds_needed_when_nothing_decides() -> None:
    assert seeds_needed(97.5, 0.1, 97.0, 0.5) is None  # the mean on the band's edge: no n decides
    assert seeds_needed(97.1, math.nan, 97.0, 0.5) is None  # one seed: no spread to project
    assert seeds_needed(97.49, 10.0, 97.0, 0.5) is None  # more than MAX_SEEDS_NEEDED
    assert "no number of seeds" in equivalence_verdict([50.0, 99.0, 91.5], 80.0, 0.5).reason


# ------------------------------------------------------------------------------------------------------------
# Welch's test


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([89.3, 89.1, 89.6, 89.4, 89.2], [88.5, 88.9, 88.8]),  # n = 5 vs 3 (the TSSL-BP vs surrogate shape)
        ([1.0, 2.0, 3.5, 4.0], [2.0, 5.0, 6.0, 7.0, 9.0]),
        ([97.0, 97.0, 97.1], [96.0, 98.0]),
    ],
)
def test_welch_matches_scipy(a: list[float], b: list[float]) -> None:
    ours = welch(a, b)
    theirs = scipy_stats.ttest_ind(a, b, equal_var=False)
    assert ours.t == pytest.approx(theirs.statistic, rel=1e-10)
    assert ours.p_two_sided == pytest.approx(theirs.pvalue, rel=1e-10)
    assert ours.df == pytest.approx(theirs.df, rel=1e-10)
    interval = theirs.confidence_interval(0.95)
    assert ours.ci95 == pytest.approx((interval.low, interval.high), rel=1e-10)
    assert ours.difference == pytest.approx(np.mean(a) - np.mean(b))
    assert (ours.n_a, ours.n_b) == (len(a), len(b))
    # The one-sided p against a shift: scipy's test of H1 mean(a) - shift < mean(b).
    shifted = welch(a, b, shift=-0.5)
    one_sided = scipy_stats.ttest_ind(np.asarray(a) + 0.5, b, equal_var=False, alternative="less")
    assert shifted.p_less == pytest.approx(one_sided.pvalue, rel=1e-10)
    assert shifted.ci95 == pytest.approx(ours.ci95)  # the interval is of the difference itself, not shifted


def test_welch_describe_and_small_samples() -> None:
    text = welch([89.3, 89.1, 89.6, 89.4, 89.2], [88.5, 88.9, 88.8]).describe("tssl", "tssl-surrogate")
    assert text.startswith("tssl - tssl-surrogate = +0.59 points, 95 % CI [")
    assert "Welch: t = " in text and "p = " in text and "n = 5 vs 3" in text
    one = welch([90.0], [89.0, 89.5])
    assert one.ci95 is None and math.isnan(one.p_two_sided)
    assert "needs two seeds on each side" in one.describe("a", "b")
    with pytest.raises(ValueError):
        welch([], [1.0, 2.0])


def test_welch_with_zero_spread() -> None:
    same = welch([95.0, 95.0], [95.0, 95.0])
    assert same.difference == 0.0 and same.p_two_sided == 1.0 and same.ci95 == (0.0, 0.0)
    apart = welch([90.0, 90.0, 90.0], [95.0, 95.0])
    assert apart.p_two_sided == 0.0 and apart.p_less == 0.0 and apart.t == -math.inf
    assert welch([96.0, 96.0], [95.0, 95.0]).p_less == 1.0


# ------------------------------------------------------------------------------------------------------------
# The regression gate


def test_a_drop_within_the_tolerance_passes() -> None:
    outcome = regression_test([94.9, 95.0, 95.1], [95.1, 95.2, 95.3], 0.5)
    assert not outcome.regressed and "within the tolerance" in outcome.reason


def test_a_large_significant_drop_fails() -> None:
    outcome = regression_test([90.0, 90.1, 89.9], [95.0, 95.1, 94.9], 0.5)
    assert outcome.regressed
    assert outcome.test.p_less < REGRESSION_ALPHA and "p = " in outcome.reason


def test_a_drop_beyond_the_tolerance_that_welch_cannot_confirm_passes() -> None:
    current, reference = [93.0, 97.0, 94.0], [95.0, 95.5, 96.0]
    outcome = regression_test(current, reference, 0.5)
    assert np.mean(reference) - np.mean(current) > 0.5  # beyond δ on the means alone (the old band rule's input)
    assert not outcome.regressed and "not significant" in outcome.reason
    assert outcome.test.p_less >= REGRESSION_ALPHA
    expected = scipy_stats.ttest_ind(np.asarray(current) + 0.5, reference, equal_var=False, alternative="less")
    assert outcome.test.p_less == pytest.approx(expected.pvalue)


def test_the_gate_with_zero_spread() -> None:
    assert regression_test([90.0, 90.0, 90.0], [95.0, 95.0, 95.0], 0.5).regressed  # an exact drop of 5 points
    assert not regression_test([95.0, 95.0, 95.0], [95.0, 95.0, 95.0], 0.5).regressed
    assert not regression_test([94.6, 94.6], [95.0, 95.0], 0.5).regressed  # exactly 0.4 below: within δ
    assert regression_test([93.0, 93.0], [95.0, 95.2, 94.8], 0.5).regressed  # spread on one side only
    single = regression_test([90.0], [95.0, 95.1], 0.5)
    assert not single.regressed and "two seeds on each side" in single.reason
