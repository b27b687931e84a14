from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_servebench import ClosedLoop, HttpTarget, Servebench
from pytest_servebench.compare import compare_run, parse_thresholds
from pytest_servebench.history import make_entry, new_run

from .loopback import LoopbackServer
from .synthetic import result

SPEC = parse_thresholds("p99:10%,p50:10%,throughput:-5%,success_ratio:-0.01")


def test_parse_thresholds() -> None:
    t = parse_thresholds("p99:10%,throughput:-5%,success_ratio:-0.1")
    assert [(x.metric, x.limit, x.relative) for x in t] == [
        ("p99", 0.10, True), ("throughput", -0.05, True), ("success_ratio", -0.1, False)]
    for bad in ("p99", "p99:fast", "latency:5%", "p99:0%"):
        with pytest.raises(ValueError):
            parse_thresholds(bad)


def _measure(server: LoopbackServer, nodeid: str = "t.py::test_x") -> dict[str, object]:
    sb = Servebench(target=HttpTarget(server.url))
    r = sb.run(ClosedLoop(concurrency=2, requests=400), payload=b"x")
    return make_entry(nodeid, r, [], "local")


def test_20_percent_slower_is_flagged_and_a_rerun_is_not(
        loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback(delay_s=0.005)
    history = [new_run([_measure(server)], backend="local")]
    rerun = compare_run([_measure(server)], history, thresholds=SPEC)
    assert rerun.changes and not rerun.regressions
    server.behaviour.delay_s = 0.006  # the target got 20% slower
    slower = compare_run([_measure(server)], history, thresholds=SPEC)
    flagged = {c.metric for c in slower.regressions}
    # The median shift is what a 1 ms slowdown guarantees; p99 of 400 loopback requests is
    # dominated by the machine's scheduling noise (CI once saw a baseline spike hide it).
    assert "p50" in flagged
    p50 = next(c for c in slower.changes if c.metric == "p50")
    assert p50.change > 0.1 and p50.p_value is not None and p50.p_value < 0.001


def test_threshold_without_significance_is_not_a_regression() -> None:
    base = make_entry("t::x", result([0.010] * 20 + [0.011]), [], "local")
    cur = make_entry("t::x", result([0.010] * 20 + [0.030]), [], "local")
    cmp = compare_run([cur], [new_run([base], backend="local")],
                      thresholds=parse_thresholds("max:10%"))
    (change,) = cmp.changes
    assert change.change > 1 and not change.significant and change.verdict == "unchanged"


def test_baseline_references() -> None:
    runs = [new_run([make_entry("t::x", result([lat] * 200), [], "local")], backend="local",
                    name=f"n{i}") for i, lat in enumerate((0.010, 0.012, 0.020))]
    cur = make_entry("t::x", result([0.012] * 200), [], "local")
    th = parse_thresholds("p50:5%")
    def baseline(ref: str) -> float:
        return compare_run([cur], runs, ref=ref, thresholds=th).changes[0].baseline

    assert baseline("last") == pytest.approx(0.020)
    assert baseline("n0") == pytest.approx(0.010)
    assert baseline(runs[1]["run_id"]) == pytest.approx(0.012)
    assert baseline("median:3") == pytest.approx(0.012)
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
