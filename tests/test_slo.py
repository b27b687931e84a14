from __future__ import annotations

import pytest

from pytest_servebench.slo import SLOFailure, SLOSyntaxError, evaluate, parse_slo

from .synthetic import result


@pytest.mark.parametrize(("text", "metric", "op", "bound"), [
    ("p99 < 200ms", "p99", "<", 0.2),
    ("p50<=1.5s", "p50", "<=", 1.5),
    ("p999 < 800us", "p999", "<", 0.0008),
    ("p99.9 < 1", "p99.9", "<", 1.0),
    ("mean < 30ms", "mean", "<", 0.03),
    ("success_ratio >= 0.999", "success_ratio", ">=", 0.999),
    ("success_ratio >= 99.5%", "success_ratio", ">=", 0.995),
    ("throughput > 50/s", "throughput", ">", 50.0),
    ("throughput >= 1e3 rps", "throughput", ">=", 1000.0),
    ("cold_start_p50 < 2s", "cold_start_p50", "<", 2.0),
    ("usd_per_million < 1.5 usd", "usd_per_million", "<", 1.5),
])
def test_parse(text: str, metric: str, op: str, bound: float) -> None:
    slo = parse_slo(text)
    assert (slo.metric, slo.op) == (metric, op)
    assert slo.bound == pytest.approx(bound)


@pytest.mark.parametrize("bad", ["p99", "p99 << 2ms", "p99 < 2 parsecs", "success_ratio > 2",
                                 "throughput > 5ms", "p99 = 3ms"])
def test_parse_rejects_with_a_clear_message(bad: str) -> None:
    with pytest.raises(SLOSyntaxError, match=r"p99|ratio|throughput|expected|unit"):
        parse_slo(bad)


def test_pass_fail_inconclusive_on_intervals() -> None:
    lat = [0.010] * 990 + [0.050] * 10  # p99 sits between the two groups
    r = result(lat)
    ok = evaluate(parse_slo("p99 < 100ms"), r)
    assert ok.outcome == "pass"
    bad = evaluate(parse_slo("p99 < 5ms"), r)
    assert bad.outcome == "fail"
    # The 95% interval of p99 spans both groups: a bound of 30ms cannot be decided.
    unsure = evaluate(parse_slo("p99 < 30ms"), r)
    assert unsure.outcome == "inconclusive"
    assert unsure.samples_needed is not None and unsure.samples_needed > 1000
    assert "about" in unsure.line() and "samples would settle it" in unsure.line()
    # A point estimate decides it (interpolated p99 = 10.4ms).
    assert evaluate(parse_slo("p99 < 30ms"), r, point=True).outcome == "pass"


def test_small_sample_p99_is_inconclusive_with_mlperf_count() -> None:
    r = result([0.001] * 100)
    v = evaluate(parse_slo("p99 < 1s"), r)
    assert v.outcome == "inconclusive"
    assert v.samples_needed == 368  # ln(0.025)/ln(0.99), two-sided 95%
    assert evaluate(parse_slo("p99 < 1s"), result([0.001] * 368)).outcome == "pass"


def test_check_raises_one_line_per_breach() -> None:
    r = result([0.020] * 500, errors=5)
    with pytest.raises(SLOFailure) as info:
        r.check("p50 < 10ms", "success_ratio >= 0.999", "max < 1s")
    text = str(info.value)
    assert len(info.value.failed) == 2
    assert "p50 < 10ms: FAIL: measured 20ms (95% CI 20ms .. 20ms), bound < 10ms, n=500" in text
    assert "success_ratio >= 0.999: FAIL: measured 0.990099" in text
    assert "max < 1s" not in text
    verdicts = r.check("p50 < 30ms", "throughput > 1/s")
    assert all(v.passed for v in verdicts)


def test_cold_start_metrics() -> None:
    lat = [1.0, 1.2, 1.1] + [0.01] * 50
    r = result(lat, cold=[True] * 3 + [False] * 50, init_s=0.8)
    assert r.cold_starts is not None and r.cold_starts.count == 3
    assert r.metric("cold_start_max").value == pytest.approx(1.2)
    assert r.metric("init_duration_mean").value == pytest.approx(0.8)
    assert evaluate(parse_slo("cold_start_max < 2s"), r).passed
    assert evaluate(parse_slo("cold_start_max < 1.1s"), r).outcome == "fail"
    plain = result([0.01] * 10)
    v = evaluate(parse_slo("cold_start_p50 < 1s"), plain)
    assert v.outcome == "fail" and "no cold starts" in v.line()


def test_unknown_metric_fails_clearly() -> None:
    v = evaluate(parse_slo("p99_latency < 1s"), result([0.1] * 10))
    assert v.outcome == "fail" and "unknown metric" in v.line()
