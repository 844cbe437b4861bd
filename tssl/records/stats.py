"""The statistics behind every verdict and comparison: t-intervals, the equivalence verdict against a paper's
number (two one-sided tests), Welch's test between two sets of seeds, and the regression gate.

Torch-free (numpy and scipy only), so that ``tssl report`` and ``tssl check`` run where torch is not installed.
Accuracies are in percent; a "seed" is one independent run. Every function takes the per-seed values, never
pre-computed summaries, so a verdict can always be recomputed from the records it names.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"

EQUIVALENCE_LEVEL = 0.90  # the interval that must lie inside the band: two one-sided tests at 5 % each
DIFFERENCE_LEVEL = 0.95  # the interval that must lie wholly outside the band for "not reproduced"
REGRESSION_ALPHA = 0.01  # the regression gate's one-sided Welch test
MAX_SEEDS_NEEDED = 1000  # beyond this "seeds needed" is reported as out of reach

VERDICT_RULE = (
    "Let μ, s, n be the mean, sample std (ddof = 1) and number of seeds of our metric, P the paper's number and "
    "δ the task tolerance in points. Reproduced: n ≥ 2 and the 90 % t-interval μ ± t(0.95, n-1)·s/√n lies "
    "inside [P - δ, P + δ] (two one-sided tests at 5 %). Not reproduced: n ≥ 2 and the 95 % t-interval "
    "μ ± t(0.975, n-1)·s/√n lies wholly outside [P - δ, P + δ]. Otherwise inconclusive, with the number of seeds "
    "that would decide it if the mean and std stayed as observed. t quantiles from scipy.stats.t."
)

REGRESSION_RULE = (
    "A (task, method) regresses when the current mean is below the reference mean by more than the task "
    "tolerance δ and a one-sided Welch test of H0: μ_current - μ_reference ≥ -δ rejects it at 1 % "
    "(t = (Δ + δ) / SE, Welch-Satterthwaite degrees of freedom). The current runs must have the reference's "
    "config hash, data kind and seeds."
)


@dataclass(frozen=True)
class Summary:
    """n, mean, sample std (nan for n = 1) and the 95 % and 90 % t-intervals (None for n = 1) of some seeds."""

    n: int
    mean: float
    std: float
    ci95: tuple[float, float] | None
    ci90: tuple[float, float] | None


def t_quantile(probability: float, df: float) -> float:
    """The Student t quantile t(probability, df), from scipy (no table, no normal approximation)."""
    if not df > 0:
        raise ValueError(f"degrees of freedom must be > 0; got {df}")
    return float(scipy_stats.t.ppf(probability, df))


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float] | None:
    """The two-sided ``level`` t-interval of the mean of ``values``; None for fewer than two values."""
    array = np.asarray(values, dtype=float)
    if array.size < 2:
        return None
    mean, std = float(array.mean()), float(array.std(ddof=1))
    half = t_quantile(0.5 + level / 2, array.size - 1) * std / math.sqrt(array.size)
    return mean - half, mean + half


def summarize(values: Sequence[float]) -> Summary:
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        raise ValueError("a summary needs at least one value")
    std = float(array.std(ddof=1)) if array.size >= 2 else math.nan
    return Summary(int(array.size), float(array.mean()), std, t_interval(array, DIFFERENCE_LEVEL),
                   t_interval(array, EQUIVALENCE_LEVEL))


@dataclass(frozen=True)
class Verdict:
    """The outcome of :data:`VERDICT_RULE` for one (task, method, metric)."""

    label: str  # reproduced | not reproduced | inconclusive
    reason: str
    summary: Summary
    seeds_needed: int | None  # for an inconclusive verdict: seeds that would decide it at the observed spread

    @property
    def n(self) -> int:
        return self.summary.n

    @property
    def mean(self) -> float:
        return self.summary.mean

    def __str__(self) -> str:
        return f"{self.label} ({self.reason})"


def _fmt_interval(interval: tuple[float, float]) -> str:
    return f"[{interval[0]:.2f}, {interval[1]:.2f}]"


def seeds_needed(mean: float, std: float, paper: float, tolerance: float) -> int | None:
    """The smallest n at which, with this mean and std, the verdict would be decided: the 90 % interval inside the
    band when the mean is inside it, the 95 % interval outside it when the mean is outside. None when no n
    decides it (the mean on the band's edge) or it would take more than :data:`MAX_SEEDS_NEEDED`."""
    low, high = paper - tolerance, paper + tolerance
    inside = low < mean < high
    margin = min(mean - low, high - mean) if inside else max(low - mean, mean - high)
    if not margin > 0 or not math.isfinite(std):
        return None
    probability = 0.5 + EQUIVALENCE_LEVEL / 2 if inside else 0.5 + DIFFERENCE_LEVEL / 2
    for n in range(2, MAX_SEEDS_NEEDED + 1):
        if t_quantile(probability, n - 1) * std / math.sqrt(n) < margin:
            return n
    return None


def equivalence_verdict(values: Sequence[float], paper: float, tolerance: float) -> Verdict:
    """Apply :data:`VERDICT_RULE` to the per-seed ``values`` of one metric against the paper's number."""
    summary = summarize(values)
    low, high = paper - tolerance, paper + tolerance
    band = f"[P - δ, P + δ] = [{low:.2f}, {high:.2f}]"
    if summary.n < 2:
        return Verdict(INCONCLUSIVE, "n = 1: one seed gives no interval", summary, None)
    ci90, ci95 = summary.ci90, summary.ci95
    assert ci90 is not None and ci95 is not None
    if low <= ci90[0] and ci90[1] <= high:
        reason = f"n = {summary.n}, the 90 % CI {_fmt_interval(ci90)} lies inside {band}"
        return Verdict(REPRODUCED, reason, summary, None)
    if ci95[1] < low or ci95[0] > high:
        reason = f"n = {summary.n}, the 95 % CI {_fmt_interval(ci95)} lies wholly outside {band}"
        return Verdict(NOT_REPRODUCED, reason, summary, None)
    needed = seeds_needed(summary.mean, summary.std, paper, tolerance)
    reason = (f"n = {summary.n}, the 90 % CI {_fmt_interval(ci90)} is not inside {band} and the 95 % CI "
              f"{_fmt_interval(ci95)} is not outside it; "
              + (f"about {needed} seeds would decide it at the observed spread" if needed is not None
                 else f"no number of seeds up to {MAX_SEEDS_NEEDED} decides it at the observed mean and spread"))
    return Verdict(INCONCLUSIVE, reason, summary, needed)


@dataclass(frozen=True)
class Difference:
    """Welch's comparison of two sets of seeds: mean(a) - mean(b) with its 95 % CI, t, df and p-values."""

    n_a: int
    n_b: int
    difference: float
    ci95: tuple[float, float] | None
    t: float
    df: float
    p_two_sided: float
    p_less: float  # one-sided p for H1: mean(a) - mean(b) < shift (see welch)

    def describe(self, name_a: str, name_b: str) -> str:
        if self.ci95 is None:
            return (f"{name_a} - {name_b} = {self.difference:+.2f} points (n = {self.n_a} vs {self.n_b}: "
                    "Welch's test needs two seeds on each side)")
        return (f"{name_a} - {name_b} = {self.difference:+.2f} points, 95 % CI {_fmt_interval(self.ci95)} "
                f"(Welch: t = {self.t:.2f}, df = {self.df:.1f}, p = {self.p_two_sided:.3g}; "
                f"n = {self.n_a} vs {self.n_b})")


def welch(a: Sequence[float], b: Sequence[float], shift: float = 0.0) -> Difference:
    """Welch's unequal-variance t test of mean(a) - mean(b) against ``shift``; the CI is of the difference itself.

    With zero spread on both sides the difference is exact: p is 0 or 1 by its sign against ``shift``."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size == 0 or y.size == 0:
        raise ValueError("Welch's test needs values on both sides")
    difference = float(x.mean() - y.mean())
    if x.size < 2 or y.size < 2:
        return Difference(int(x.size), int(y.size), difference, None, math.nan, math.nan, math.nan, math.nan)
    va, vb = float(x.var(ddof=1)) / x.size, float(y.var(ddof=1)) / y.size
    se = math.sqrt(va + vb)
    if se == 0.0:
        below = difference < shift
        exact = 0.0 if difference != shift else 1.0
        return Difference(int(x.size), int(y.size), difference, (difference, difference),
                          math.copysign(math.inf, difference - shift) if difference != shift else 0.0, math.inf,
                          exact, 0.0 if below else 1.0)
    df = (va + vb) ** 2 / (va**2 / (x.size - 1) + vb**2 / (y.size - 1))
    t = (difference - shift) / se
    half = t_quantile(0.975, df) * se
    return Difference(int(x.size), int(y.size), difference, (difference - half, difference + half), t, df,
                      float(2 * scipy_stats.t.sf(abs(t), df)), float(scipy_stats.t.cdf(t, df)))


@dataclass(frozen=True)
class Regression:
    """The regression gate's decision for one (task, method)."""

    regressed: bool
    reason: str
    test: Difference


def regression_test(current: Sequence[float], reference: Sequence[float], tolerance: float) -> Regression:
    """Apply :data:`REGRESSION_RULE`: regressed only when the mean dropped by more than ``tolerance`` and a
    one-sided Welch test at :data:`REGRESSION_ALPHA` says the drop exceeds it."""
    test = welch(current, reference, shift=-tolerance)
    drop = -test.difference
    if drop <= tolerance:
        return Regression(False, f"Δ = {test.difference:+.2f} is within the tolerance δ = {tolerance:g}", test)
    if math.isnan(test.p_less):
        return Regression(False, f"Δ = {test.difference:+.2f} is below -δ = {-tolerance:g}, but Welch's test needs "
                                 "two seeds on each side: not a regression by this rule", test)
    if test.p_less < REGRESSION_ALPHA:
        return Regression(True, f"Δ = {test.difference:+.2f} < -δ = {-tolerance:g} and the one-sided Welch test "
                                f"gives p = {test.p_less:.3g} < {REGRESSION_ALPHA:g}", test)
    return Regression(False, f"Δ = {test.difference:+.2f} < -δ = {-tolerance:g}, but the one-sided Welch test gives "
                             f"p = {test.p_less:.3g} ≥ {REGRESSION_ALPHA:g} (not significant)", test)
