from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from pytest_servebench import ClosedLoop, HttpTarget, Servebench
from pytest_servebench.compare import Change, compare_run, parse_thresholds
from pytest_servebench.history import Entry, make_entry, new_run
from pytest_servebench.records import Record, Recording
from pytest_servebench.result import summarize
from pytest_servebench.target import Reply

from .loopback import LoopbackServer
from .synthetic import result

SPEC = parse_thresholds("p99:10%,p50:10%,throughput:-5%,success_ratio:-0.01")


def test_parse_thresholds() -> None:
    t = parse_thresholds("p99:10%,throughput:-5%,success_ratio:-0.1")
    assert [(x.metric, x.limit, x.relative) for x in t] == [
        ("p99", 0.10, True), ("throughput", -0.05, True), ("success_ratio", -0.1, False)]
    for bad in ("p99", "p99:fast", "latency:5%", "p99:0%", "p99:5", "success_ratio:-1%"):
        with pytest.raises(ValueError):
            parse_thresholds(bad)


def _measure(server: LoopbackServer, nodeid: str = "t.py::test_x") -> Entry:
    sb = Servebench(target=HttpTarget(server.url))
    r = sb.run(ClosedLoop(concurrency=2, requests=400), payload=b"x")
    return make_entry(nodeid, r, [], "local")


def _simulated(rng: np.random.Generator, *, median_s: float, n: int = 400) -> Entry:
    """A run of ``n`` requests from a skewed (log-normal) service time, with the run-to-run
    drift of a shared machine (each run's level moves by a few percent)."""
    level = median_s * float(rng.lognormal(0.0, 0.03))
    lat = level * rng.lognormal(0.0, 0.35, size=n)
    return make_entry("t.py::test_x", result(lat.tolist()), [], "local")


def test_20_percent_slower_is_flagged_and_a_rerun_is_not() -> None:
    """Known truth by simulation (a real server on a busy machine made this flaky), over 30
    seeded trials: three baseline runs give the run-to-run noise; a re-run of the same service
    is rarely flagged (a 3-run noise floor is itself uncertain), and the same service 20%
    slower is never called unchanged or faster at p50: a regression, or inconclusive when the
    noise floor is too wide to decide."""
    trials, false_alarms, flagged = 30, 0, 0
    for seed in range(trials):
        rng = np.random.default_rng(seed)
        history = [new_run([_simulated(rng, median_s=0.005)], backend="local")
                   for _ in range(3)]
        rerun = compare_run([_simulated(rng, median_s=0.005)], history, thresholds=SPEC)
        assert rerun.changes
        assert all(c.noise is not None for c in rerun.changes if c.metric == "p50")
        false_alarms += bool(rerun.regressions)
        slower = compare_run([_simulated(rng, median_s=0.006)], history, thresholds=SPEC)
        p50 = next(c for c in slower.changes if c.metric == "p50")
        assert p50.verdict in ("regression", "inconclusive"), (seed, p50)
        if p50.verdict == "regression":
            assert p50.p_value is not None and p50.p_value < 0.001
            flagged += 1
    assert false_alarms <= 2, false_alarms  # 2 of 100 in a longer simulation
    assert flagged >= 0.4 * trials, flagged  # 56 of 100 in a longer simulation


def test_threshold_without_significance_is_not_a_regression() -> None:
    base = make_entry("t::x", result([0.010] * 20 + [0.011]), [], "local")
    cur = make_entry("t::x", result([0.010] * 20 + [0.030]), [], "local")
    cmp = compare_run([cur], [new_run([base], backend="local")],
                      thresholds=parse_thresholds("max:10%"))
    (change,) = cmp.changes
    # The maximum is one request: reported, never tested, so never an all-clear either.
    assert change.change > 1 and not change.significant and change.verdict == "inconclusive"
    assert change.reason is not None and "one request" in change.reason


def test_baseline_references() -> None:
    runs = [new_run([make_entry("t::x", result([lat] * 200), [], "local")], backend="local",
                    name=f"n{i}") for i, lat in enumerate((0.010, 0.012, 0.020))]
    cur = make_entry("t::x", result([0.012] * 200), [], "local")
    th = parse_thresholds("p50:5%")
    def baseline(ref: str) -> float:
        return compare_run([cur], runs, ref=ref, thresholds=th).changes[0].baseline

    # Baselines are read from the stored histograms (1% relative accuracy).
    assert baseline("last") == pytest.approx(0.020, rel=0.01)
    assert baseline("n0") == pytest.approx(0.010, rel=0.01)
    assert baseline(runs[1].run_id) == pytest.approx(0.012, rel=0.01)
    assert baseline("median:3") == pytest.approx(0.012, rel=0.01)  # the pooled median
    with pytest.raises(LookupError):
        compare_run([cur], runs, ref="nope", thresholds=th)
    other = make_entry("t::y", result([0.01] * 10), [], "local")
    assert compare_run([other], runs, thresholds=th).no_baseline == ("t::y",)
    # A different backend is never a baseline.
    docker = make_entry("t::x", result([0.012] * 200), [], "docker")
    assert compare_run([docker], runs, thresholds=th).no_baseline == ("t::x",)


def test_a_slower_tail_is_flagged_on_p99_alone() -> None:
    rng = __import__("random").Random(7)
    body = [rng.uniform(0.009, 0.011) for _ in range(2000)]
    base = make_entry("t::x", result(body), [], "local")
    tail = sorted(body)
    tail[-100:] = [x * 2 for x in tail[-100:]]  # the slowest 5% doubled, the median untouched
    cur = make_entry("t::x", result(tail), [], "local")
    cmp = compare_run([cur], [new_run([base], backend="local")], thresholds=SPEC)
    flagged = {c.metric for c in cmp.regressions}
    assert "p99" in flagged and "p50" not in flagged


# --- verdicts on skewed data, small samples and noisy runs, against known truth ---------------


def _entry(xs: Sequence[float], **kwargs: Any) -> Entry:
    return make_entry("t::x", result(list(xs), **kwargs), [], "local")


def _lognormal(rng: np.random.Generator, n: int, scale: float = 1.0) -> list[float]:
    out: list[float] = (rng.lognormal(math.log(0.010), 0.5, n) * scale).tolist()
    return out


def _verdict(cur: Entry, base: Sequence[Entry], spec: str,
             ref: str = "last") -> Change:
    runs = [new_run([b], backend="local") for b in base]
    (change,) = compare_run([cur], runs, ref=ref, thresholds=parse_thresholds(spec)).changes
    return change


@pytest.mark.parametrize("n", [40, 200])
def test_a_2x_p99_slowdown_at_small_sizes_is_never_called_unchanged(n: int) -> None:
    rng = np.random.default_rng(n)
    seen = set()
    for _ in range(25):
        base = _entry(_lognormal(rng, n))
        everything = _entry(_lognormal(rng, n, 2.0))
        body = sorted(_lognormal(rng, n))
        tail_only = _entry(body[: -max(1, n // 50)] + [x * 2 for x in body[-max(1, n // 50):]])
        for cur in (everything, tail_only):
            c = _verdict(cur, [base], "p99:10%")
            assert c.verdict in ("regression", "inconclusive"), c
            seen.add(c.verdict)
            if c.verdict == "inconclusive":
                assert c.reason  # says why, and what would settle it
    assert "inconclusive" in seen


def test_a_2x_p99_slowdown_is_flagged_when_the_samples_allow() -> None:
    rng = np.random.default_rng(3)
    flagged = sum(_verdict(_entry(_lognormal(rng, 1000, 2.0)), [_entry(_lognormal(rng, 1000))],
                           "p99:10%").verdict == "regression" for _ in range(10))
    assert flagged == 10
    pooled = [_entry(_lognormal(rng, 200)) for _ in range(5)]
    c = _verdict(_entry(_lognormal(rng, 1000, 2.0)), pooled, "p99:10%", ref="median:5")
    assert c.verdict == "regression" and c.baseline_runs == 5


def test_a_rerun_of_the_same_target_is_not_a_regression() -> None:
    rng = np.random.default_rng(5)
    verdicts = [_verdict(_entry(_lognormal(rng, n)), [_entry(_lognormal(rng, n))],
                         spec).verdict
                for n in (40, 200, 1000) for _ in range(10)
                for spec in ("p50:10%", "p99:10%", "mean:10%")]
    assert verdicts.count("regression") <= 2  # alpha = 5% per metric, 90 comparisons
    assert "unchanged" in verdicts  # large samples decide "no change beyond 10%"


def test_run_to_run_noise_sets_the_floor() -> None:
    """Five earlier runs that differ by 5% from each other: an unchanged re-run (also 5% off)
    is not flagged although its 2,000 samples make a 7% shift significant on their own."""
    rng = np.random.default_rng(11)

    def run(scale: float = 1.0) -> Entry:
        return _entry(_lognormal(rng, 2000, scale * float(rng.normal(1, 0.05))))

    history = [run() for _ in range(5)]
    flagged = 0
    for _ in range(20):
        c = _verdict(run(), history, "p50:5%")
        assert c.noise is not None and c.noise.runs == 5
        flagged += c.verdict == "regression"
    assert flagged <= 1
    slower = _verdict(run(1.4), history, "p50:5%")
    assert slower.verdict == "regression" and slower.noise is not None


def _closed_entry(rate: float, seconds: float = 5.0) -> Entry:
    gap = 1 / rate
    rows = [Record(i, False, i * gap, i * gap, i * gap + 0.005, Reply(ok=True))
            for i in range(int(rate * seconds))]
    rec = Recording(tuple(rows), 0.0, 0.0, seconds, seconds, 1, False)
    r = summarize(rec, target="t", target_profile={}, workload={"kind": "closed"})
    return make_entry("t::x", r, [], "local")


def test_throughput_is_tested_on_the_window_intervals() -> None:
    base = _closed_entry(100)
    assert _verdict(_closed_entry(100), [base], "throughput:-5%").verdict == "unchanged"
    slower = _verdict(_closed_entry(80), [base], "throughput:-5%")
    assert slower.verdict == "regression" and slower.change == pytest.approx(-0.2, abs=0.01)
    old = replace(base, throughput_window=None)  # saved before schema 2
    c = _verdict(_closed_entry(80), [old], "throughput:-5%")
    assert c.verdict == "inconclusive" and c.reason and "intervals" in c.reason


def test_success_ratio_needs_enough_requests_to_rule_out_a_drop() -> None:
    assert _verdict(_entry([0.01] * 40), [_entry([0.01] * 40)],
                    "success_ratio:-0.01").verdict == "inconclusive"
    assert _verdict(_entry([0.01] * 5000), [_entry([0.01] * 5000)],
                    "success_ratio:-0.01").verdict == "unchanged"
    dropped = _verdict(_entry([0.01] * 900, errors=100), [_entry([0.01] * 1000)],
                       "success_ratio:-0.01")
    assert dropped.verdict == "regression" and dropped.change == pytest.approx(-0.1)


def test_an_invalid_run_is_not_judged_on_latency() -> None:
    base = _entry([0.01] * 1000)
    cur = replace(_entry([0.03] * 1000), valid=False,
                  invalid_reason="the load generator fell behind its schedule")
    c = _verdict(cur, [base], "p50:10%")
    assert c.verdict == "inconclusive" and c.reason and "INVALID" in c.reason
