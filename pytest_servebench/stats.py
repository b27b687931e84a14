"""Pure statistics: percentiles with distribution-free confidence intervals.

Latency distributions are skewed and multi-modal, so intervals come from order statistics, which
assume nothing about the shape: the number of samples below the true q-quantile is
Binomial(n, q), so a pair of order statistics brackets the quantile with known probability.
scipy is imported lazily: plugin load must stay light.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True, slots=True)
class Estimate:
    """A measured value with its confidence interval (``low``/``high`` may be -inf/inf when the
    sample is too small to bound it) and the number of samples behind it."""

    value: float
    low: float
    high: float
    n: int

    @classmethod
    def point(cls, value: float, n: int) -> Estimate:
        return cls(value, value, value, n)

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation between closest ranks (numpy's default)."""
    n = len(sorted_values)
    if n == 0:
        return math.nan
    if not 0 <= q <= 1:
        raise ValueError("q must be in [0, 1]")
    h = (n - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo])


def order_statistic_bounds(n: int, q: float, confidence: float) -> tuple[int | None, int | None]:
    """0-based indices (lo, hi) of the order statistics that bracket the q-quantile of a sample
    of ``n`` with at least ``confidence`` coverage; None where the sample is too small to bound
    that side."""
    from scipy.stats import binom

    if n <= 0:
        return None, None
    alpha = 1 - confidence
    # B ~ Binomial(n, q) samples fall below the true quantile. With 1-based order statistics
    # X_(l), X_(u): P(X_(l) <= xi <= X_(u)) = P(l <= B <= u - 1).
    l_1 = int(binom.ppf(alpha / 2, n, q))
    # ppf gives the smallest k with CDF >= p; step back so that P(B < l) <= alpha/2.
    if l_1 > 0 and binom.cdf(l_1 - 1, n, q) > alpha / 2:  # pragma: no cover - float edge
        l_1 -= 1
    u_1 = int(binom.ppf(1 - alpha / 2, n, q)) + 1
    lo = l_1 - 1 if l_1 >= 1 else None
    hi = u_1 - 1 if u_1 <= n else None
    return lo, hi


def quantile_estimate(
    sorted_values: Sequence[float], q: float, confidence: float = DEFAULT_CONFIDENCE
) -> Estimate:
    n = len(sorted_values)
    value = percentile(sorted_values, q)
    if n == 0:
        return Estimate(math.nan, -math.inf, math.inf, 0)
    lo, hi = order_statistic_bounds(n, q, confidence)
    low = sorted_values[lo] if lo is not None else -math.inf
    high = sorted_values[hi] if hi is not None else math.inf
    return Estimate(value, min(low, value), max(high, value), n)


def unseen_tail_share(n: int, confidence: float = DEFAULT_CONFIDENCE) -> float:
    """The largest share of requests that could lie above every one of ``n`` samples with
    probability at least (1 - confidence) / 2: ``1 - (alpha/2)^(1/n)`` (the "rule of three" at
    95% one-sided is its small-share limit, 3/n).

    >>> round(unseen_tail_share(50), 4)
    0.0711
    """
    if n <= 0:
        return 1.0
    return float(1 - ((1 - confidence) / 2) ** (1 / n))


def mean_estimate(values: Sequence[float], confidence: float = DEFAULT_CONFIDENCE, *,
                  upper_bound: float = math.inf) -> Estimate:
    """The mean with an interval that stays honest on skewed latency.

    The Student-t interval alone covers badly when a rare slow mode dominates the mean (on a
    98/2 mix of 5 ms and 200 ms, 50 samples miss the slow mode 36% of the time, and then every
    data-only interval sits at 5 ms while the mean is 8.9 ms). No finite upper bound on the mean
    of an unbounded variable follows from a sample (Bahadur and Savage, 1956), so the upper end
    also allows for the share of requests the sample may not have seen
    (``unseen_tail_share``) lying at ``upper_bound``: the per-request timeout, above which no
    latency is recorded (timed-out requests count at the timeout). Without a bound the mean
    has no upper limit (``inf``), which makes a ``mean <`` SLO inconclusive rather than wrongly
    passed. The lower end is the t interval's.
    """
    n = len(values)
    if n == 0:
        return Estimate(math.nan, -math.inf, math.inf, 0)
    mean = math.fsum(values) / n
    if n == 1:
        return Estimate(mean, -math.inf, math.inf, 1)
    from scipy.stats import t

    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    half = float(t.ppf(1 - (1 - confidence) / 2, n - 1)) * math.sqrt(var / n)
    high = mean + half
    ceiling = max(upper_bound, max(values))
    if ceiling > high:
        share = unseen_tail_share(n, confidence)
        high = math.inf if math.isinf(ceiling) else high + share * (ceiling - high)
    return Estimate(mean, mean - half, high, n)


def mean_samples_needed(est: Estimate, bound: float, *, upper_bound: float,
                        confidence: float = DEFAULT_CONFIDENCE) -> int | None:
    """About how many samples would put a mean's upper end below ``bound`` (for a ``mean <``
    bound), given this sample's spread and the unseen-tail allowance; None if none would."""
    if not (math.isfinite(est.value) and est.value < bound and math.isfinite(est.low)):
        return None
    half = est.value - est.low
    n = max(est.n, 2)
    for _ in range(64):
        t_half = half * math.sqrt(est.n / n) if est.n > 1 else half
        high = est.value + t_half
        if math.isfinite(upper_bound) and upper_bound > high:
            high += unseen_tail_share(n, confidence) * (upper_bound - high)
        elif math.isinf(upper_bound):
            return None
        if high < bound:
            return n
        n *= 2
    return None


def samples_to_settle(q: float, exceedances: int, confidence: float = DEFAULT_CONFIDENCE) -> int:
    """Smallest sample size at which a q-quantile bound can be shown to hold when ``exceedances``
    samples lie above the bound (MLPerf LoadGen's early-stopping rule).

    With no exceedance the upper order statistic must be the largest sample: for p99 at 99%
    one-sided confidence that takes ln(0.01)/ln(0.99) -> 459 samples.

    >>> samples_to_settle(0.99, 0, confidence=0.98)
    459
    """
    from scipy.stats import binom

    alpha = 1 - confidence
    p_exceed = 1 - q

    def settled(n: int) -> bool:
        # The upper bound X_(u) sits at or below the bound iff u <= n - exceedances, i.e. the
        # chance of seeing this few exceedances if the true quantile were above the bound is
        # at most alpha / 2.
        return bool(binom.cdf(exceedances, n, p_exceed) <= alpha / 2)

    lo, hi = exceedances + 1, max(exceedances + 2, 16)
    while not settled(hi):
        lo, hi = hi, hi * 2
        if hi > 10**12:  # pragma: no cover - only for q indistinguishable from 1
            raise ValueError(f"quantile {q} cannot be settled with {exceedances} exceedances")
    while lo < hi:
        mid = (lo + hi) // 2
        if settled(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def binomial_ratio_estimate(successes: int, n: int, confidence: float) -> Estimate:
    """A success ratio with its Clopper-Pearson (exact) interval."""
    if n == 0:
        return Estimate(math.nan, 0.0, 1.0, 0)
    from scipy.stats import beta

    alpha = 1 - confidence
    low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, n - successes + 1))
    high = 1.0 if successes == n else float(beta.ppf(1 - alpha / 2, successes + 1, n - successes))
    return Estimate(successes / n, low, high, n)
