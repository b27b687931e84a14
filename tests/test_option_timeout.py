"""--servebench-timeout and --servebench-time-limit."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .loopback import LoopbackServer


def test_timeout_turns_slow_replies_into_errors(
        pytester: pytest.Pytester, loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback(delay_s=5)
    pytester.makepyfile("""
from pytest_servebench import OpenLoop

def test_slow(servebench):
    r = servebench.run(OpenLoop(rate=10, duration=0.5, arrival="constant"), payload=b"x")
    assert r.errors == {"timeout": 5}
""")
    result = pytester.runpytest("--target=http", f"--servebench-url={server.url}",
                                "--servebench-timeout=0.2")
    result.assert_outcomes(passed=1)
    assert result.duration < 4


def test_time_limit_bounds_each_run(pytester: pytest.Pytester,
                                    loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback(delay_s=0.001)
    pytester.makepyfile("""
from pytest_servebench import ClosedLoop

def test_long(servebench):
    r = servebench.run(ClosedLoop(concurrency=1, duration=120), payload=b"x")
    assert r.count > 0 and r.duration_s < 3
""")
    result = pytester.runpytest("--target=http", f"--servebench-url={server.url}",
                                "--servebench-time-limit=0.5")
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize("option", ["--servebench-timeout=0", "--servebench-time-limit=-1"])
def test_invalid_bounds_are_usage_errors(pytester: pytest.Pytester, option: str) -> None:
    pytester.makepyfile("def test_x(servebench): pass")
    result = pytester.runpytest(option)
    # A usage error at start-up, before anything is deployed or run.
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*servebench: *must be > 0*"])
