from __future__ import annotations

import numpy as np
import pytest

from pytest_servebench.histogram import LatencyHistogram


def test_quantiles_within_relative_accuracy() -> None:
    rng = np.random.default_rng(1)
    xs = rng.lognormal(mean=-5, sigma=1.2, size=50_000)
    h = LatencyHistogram()
    h.record_many(xs.tolist())
    for q in (0.5, 0.9, 0.99, 0.999):
        exact = np.quantile(xs, q, method="inverted_cdf")
        assert h.quantile(q) == pytest.approx(exact, rel=0.0101)


def test_merge_equals_recording_everything_in_one() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.exponential(0.01, 5000), rng.exponential(0.05, 3000)
    ha, hb, hall = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    ha.record_many(a.tolist())
    hb.record_many(b.tolist())
    hall.record_many(np.concatenate([a, b]).tolist())
    merged = ha + hb
    assert merged.bins == hall.bins
    assert merged.count == 8000
    for q in (0.5, 0.99):
        assert merged.quantile(q) == hall.quantile(q)


def test_round_trip_and_validation() -> None:
    h = LatencyHistogram()
    h.record_many([0.0, 0.001, 0.002, 5.0])
    again = LatencyHistogram.from_dict(h.to_dict())
    assert again.bins == h.bins and again.zero_count == 1
    with pytest.raises(ValueError):
        h.record(-1.0)
    with pytest.raises(ValueError, match="accuracy"):
        h.merge(LatencyHistogram(relative_accuracy=0.02))
