from __future__ import annotations

import doctest
import importlib.util
import itertools
import math
import statistics
from pathlib import Path
from typing import Any

import pytest

from pytest_servebench.stats import Estimate
from pytest_servebench.workloads import MMPP, ClosedLoop, OpenLoop, parse_duration_s


@pytest.mark.parametrize(("text", "seconds"), [
    ("500ms", 0.5), ("2s", 2.0), ("1m", 60.0), (3, 3.0), (0.25, 0.25), ("250us", 250e-6),
])
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration_s(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["fast", "-1s", "1 parsec", float("inf")])
def test_parse_duration_rejects(bad: str | float) -> None:
    with pytest.raises(ValueError):
        parse_duration_s(bad)


def test_closed_loop_needs_a_bound() -> None:
    with pytest.raises(ValueError, match="bounded"):
        ClosedLoop(concurrency=2)
    with pytest.raises(ValueError, match="concurrency"):
        ClosedLoop(concurrency=0, requests=1)


def test_constant_schedule_is_exact() -> None:
    s = OpenLoop(rate=250, duration=2, arrival="constant").schedule()
    assert len(s) == 500
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(s)}
    assert gaps == {0.004}


def test_poisson_schedule_is_seeded_and_poisson() -> None:
    a = OpenLoop(rate=200, duration=30, seed=7).schedule()
    assert a == OpenLoop(rate=200, duration=30, seed=7).schedule()
    assert a != OpenLoop(rate=200, duration=30, seed=8).schedule()
    # 6,000 expected arrivals: the count is within 4 standard deviations.
    assert abs(len(a) - 6000) < 4 * math.sqrt(6000)
    gaps = [b - x for x, b in itertools.pairwise(a)]
    assert statistics.mean(gaps) == pytest.approx(1 / 200, rel=0.05)
    # Exponential gaps: standard deviation equals the mean.
    assert statistics.stdev(gaps) == pytest.approx(1 / 200, rel=0.08)
    assert all(0 <= t < 30 for t in a)


def test_open_loop_warmup_is_prepended() -> None:
    w = OpenLoop(rate=100, duration=1, warmup=0.5, arrival="constant")
    s = w.schedule()
    assert len(s) == 150
    assert sum(1 for t in s if t < w.warmup_s) == 50


def test_mmpp_rates_follow_states() -> None:
    w = MMPP(rates=(20, 200), mean_dwell_s=(2, 1), duration=120, seed=5)
    segments = w.states()
    arrivals = w.schedule()
    assert arrivals == w.schedule()  # seeded
    for rate, state in ((20, 0), (200, 1)):
        time_in = sum(e - s for s, e, k in segments if k == state)
        count = sum(1 for t in arrivals for s, e, k in segments if k == state and s <= t < e)
        assert count / time_in == pytest.approx(rate, rel=0.15)
    # Long-run mean rate: (20*2 + 200*1) / 3 = 80/s.
    assert w.mean_rate == pytest.approx(80)
    assert len(arrivals) / 120 == pytest.approx(80, rel=0.25)


def _study_004() -> Any:
    """``suites/study_004.py``: the study's workloads live with its suite, not in the library."""
    spec = importlib.util.spec_from_file_location(
        "study_004_under_test", Path(__file__).resolve().parents[1] / "suites" / "study_004.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("peak", "requests", "length_s"),
                         [(40, 15000, 870), (120, 15000, 250), (200, 18000, 190)])
def test_study_004_workloads_match_the_paper(peak: int, requests: int, length_s: float) -> None:
    study = _study_004()
    w = study.workload(peak=peak)
    assert max(w.rates) == peak
    assert w.duration_s == length_s
    assert w.mean_rate * length_s == pytest.approx(requests, rel=1e-9)
    quick = study.workload(peak=peak, time_scale=0.1, rate_scale=0.5)
    assert quick.duration_s == pytest.approx(length_s * 0.1)
    assert max(quick.rates) == peak * 0.5
    # Scaling keeps the share of time spent bursting.
    assert quick.mean_rate / max(quick.rates) == pytest.approx(w.mean_rate / max(w.rates))
    with pytest.raises(ValueError, match="peaks"):
        study.workload(peak=41)
    assert doctest.testmod(study).failed == 0


def test_the_library_knows_no_study() -> None:
    import pytest_servebench.workloads as workloads

    assert not hasattr(MMPP, "study_004")
    assert not [name for name in vars(workloads) if "STUDY" in name.upper()]


def test_mmpp_validates() -> None:
    with pytest.raises(ValueError, match="dwell"):
        MMPP(rates=(1, 2), mean_dwell_s=(1,), duration=1)
    with pytest.raises(ValueError, match="transitions"):
        MMPP(rates=(1, 2), mean_dwell_s=(1, 1), duration=1, transitions=[[0.5, 0.5], [1, 0]])


def _p90(ms: float, half_width_ms: float) -> Estimate:
    return Estimate(ms / 1e3, (ms - half_width_ms) / 1e3, (ms + half_width_ms) / 1e3, 400)


@pytest.mark.parametrize(("server_low", "server_high", "function_high", "verdict"), [
    ((50, 5), (900, 100), (80, 10), "holds"),             # queued, the function flat
    ((50, 5), (60, 8), (80, 10), "contradicted"),         # the server did not queue
    ((50, 5), (900, 100), (2000, 200), "contradicted"),   # the function queued worse
    ((50, 5), (120, 40), (80, 10), "inconclusive"),       # 2x of 55 ms lies inside [80, 160]
    ((50, 5), (900, 100), (850, 100), "inconclusive"),    # server and function overlap
])
def test_study_004_servers_queue_decides_on_the_intervals(
        server_low: tuple[float, float], server_high: tuple[float, float],
        function_high: tuple[float, float], verdict: str) -> None:
    got, why = _study_004().servers_queue(_p90(*server_low), _p90(*server_high),
                                          _p90(*function_high), 2.0)
    assert got == verdict
    assert "x2 needed" in why and "(n=400)" in why
