"""--servebench-late-threshold and --servebench-max-late-share: schedule lag is shown in the
summary and saved in the history, and a run whose load generator fell behind is INVALID (its
latency verdicts inconclusive), as MLPerf marks a run whose load generator could not keep up."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from .loopback import LoopbackServer

TESTS = """
import pytest
from pytest_servebench import OpenLoop

@pytest.mark.slo("p50 < 1s")
def test_open(servebench):
    servebench.run(OpenLoop(rate=200, duration=1, arrival="constant"), payload=b"x")
"""


def test_lag_is_reported_and_saved(pytester: pytest.Pytester,
                                   loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback(delay_s=0.001)
    pytester.makepyfile(TESTS)
    result = pytester.runpytest("--target=http", f"--servebench-url={server.url}",
                                "--servebench-max-late-share=0.5")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test*lag p99*SLO*", "*test_open*open(200/s*pass*"])
    entry = json.loads((pytester.path / ".servebench" / "history.json").read_text()
                       )["runs"][0]["entries"][0]
    lag = entry["schedule_lag"]
    assert lag["count"] == 200 and lag["late_threshold_s"] == 0.005 and entry["valid"] is True
    assert entry["offered_rate"] == pytest.approx(200, rel=0.01)


def test_a_generator_that_fell_behind_invalidates_the_run(
        pytester: pytest.Pytester, loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback(delay_s=0.001)
    pytester.makepyfile(TESTS)
    # Every request is "late" by more than a nanosecond: the run cannot be trusted.
    result = pytester.runpytest("--target=http", f"--servebench-url={server.url}",
                                "--servebench-late-threshold=0.000000001",
                                "--servebench-max-late-share=0")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*p50 < 1s: INCONCLUSIVE*run INVALID (the load generator fell behind its schedule*"
        "it would have been pass*",
        "*test_open*INVALID",
        "*test_open: INVALID: the load generator fell behind*"])
    entry = json.loads((pytester.path / ".servebench" / "history.json").read_text()
                       )["runs"][0]["entries"][0]
    assert entry["valid"] is False and "fell behind" in entry["invalid_reason"]


def test_bad_values_are_usage_errors(pytester: pytest.Pytester,
                                     loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback()
    pytester.makepyfile(TESTS)
    for bad in ("--servebench-late-threshold=soon", "--servebench-max-late-share=1.5"):
        result = pytester.runpytest("--target=http", f"--servebench-url={server.url}", bad)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(["*servebench:*"])
