from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_servebench.stats import (
    binomial_ratio_estimate,
    mean_estimate,
    order_statistic_bounds,
    percentile,
    quantile_estimate,
    samples_to_settle,
    unseen_tail_share,
)


@pytest.mark.parametrize("n", [1, 2, 7, 100, 1001])
@pytest.mark.parametrize("q", [0.0, 0.5, 0.9, 0.99, 0.999, 1.0])
def test_percentile_matches_numpy(n: int, q: float) -> None:
    xs = sorted(np.random.default_rng(n).exponential(1.0, n).tolist())
    assert percentile(xs, q) == pytest.approx(float(np.quantile(xs, q)))


def test_confidence_interval_covers_true_quantile() -> None:
    # Exponential(1): the true p90 is ln(10). Over many samples of 400 the 95% interval must
    # contain it at least ~95% of the time (order-statistic intervals are conservative).
    rng = np.random.default_rng(3)
    truth = math.log(10)
    trials = 400
    hits = 0
    for _ in range(trials):
        xs = sorted(rng.exponential(1.0, 400).tolist())
        est = quantile_estimate(xs, 0.9, 0.95)
        hits += est.low <= truth <= est.high
    assert hits / trials >= 0.93


def test_small_samples_cannot_bound_the_tail() -> None:
    _lo, hi = order_statistic_bounds(50, 0.99, 0.95)
    assert hi is None  # 50 samples cannot put an upper bound on p99
    est = quantile_estimate(sorted(range(50)), 0.99)
    assert est.high == math.inf and not est.bounded


def test_mlperf_early_stopping_counts() -> None:
    # MLPerf LoadGen: p99 at 99% confidence with no over-latency query needs 459 samples.
    assert samples_to_settle(0.99, 0, confidence=0.98) == 459
    # ...and every extra exceedance asks for more.
    assert samples_to_settle(0.99, 1, 0.98) > 459
    assert samples_to_settle(0.9, 0, 0.98) == math.ceil(math.log(0.01) / math.log(0.9))


def test_settle_count_agrees_with_interval() -> None:
    n = samples_to_settle(0.95, 3, 0.95)
    xs = sorted([0.001] * (n - 3) + [1.0] * 3)
    assert quantile_estimate(xs, 0.95, 0.95).high == 0.001
    xs = sorted([0.001] * (n - 4) + [1.0] * 3)
    assert quantile_estimate(xs, 0.95, 0.95).high == 1.0


def test_mean_and_ratio_intervals() -> None:
    xs = np.random.default_rng(4).normal(10, 2, 1000).tolist()
    t_half = 1.96 * 2 / math.sqrt(1000)
    # Without a bound on the values, nothing bounds the mean from above (an unseen tail).
    unbounded = mean_estimate(xs, 0.95)
    assert unbounded.low == pytest.approx(unbounded.value - t_half, rel=0.1)
    assert unbounded.high == math.inf
    # With one (the timeout), the upper end is the t interval's plus the unseen tail's share.
    est = mean_estimate(xs, 0.95, upper_bound=20.0)
    assert est.low < 10 < est.high
    share = unseen_tail_share(1000, 0.95)
    assert share == pytest.approx(1 - 0.025 ** (1 / 1000))
    t_high = est.value + (est.value - est.low)
    assert est.high == pytest.approx(t_high + share * (20.0 - t_high))
    assert est.value - est.low == pytest.approx(t_half, rel=0.1)
    r = binomial_ratio_estimate(1000, 1000, 0.95)
    assert r.value == 1.0 and r.high == 1.0
    assert r.low == pytest.approx(0.025 ** (1 / 1000))
