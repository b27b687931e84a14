"""@pytest.mark.slo, result.check and the session summary, with and without xdist."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .loopback import LoopbackServer


def test_slo_marker_passes_and_fails(pytester: pytest.Pytester, plugin_args: list[str],
                                     loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback(delay_s=0.01)
    pytester.makepyfile("""
import pytest
from pytest_servebench import ClosedLoop

W = ClosedLoop(concurrency=4, requests=400)

@pytest.mark.slo("p50 < 1s", "success_ratio >= 0.99")
def test_meets(servebench):
    servebench.run(W, payload=b"x")

@pytest.mark.slo("p50 < 1ms")
def test_breaches(servebench):
    servebench.run(W, payload=b"x")

def test_check_inside(servebench):
    servebench.run(W, payload=b"x").check("mean < 2ms")

def test_check_passes(servebench):
    servebench.run(W, payload=b"x").check("p50 < 1s")

def test_no_slo(servebench):
    servebench.run(W, payload=b"x")
""")
    result = pytester.runpytest_subprocess("--target=http", f"--servebench-url={server.url}",
                                           *plugin_args)
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines_random([
        "*p50 < 1ms: FAIL: measured 1?.*ms (95% CI *), bound < 1ms, n=400*",
        "*mean < 2ms: FAIL: measured 1?.*ms*",
        "*servebench summary*",
        "test_slo_marker_passes_and_fails.py",
        "  test_meets *http*closed(c=4, 400 req)*400*pass",
        "  test_breaches *fail",
        "  test_check_inside *fail",
        "  test_check_passes *pass",  # a passing result.check() reaches the summary
        "  test_no_slo *400* -",
    ])


def test_slo_syntax_error_is_a_collection_error(
        pytester: pytest.Pytester, loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback()
    pytester.makepyfile("""
import pytest
from pytest_servebench import ClosedLoop

@pytest.mark.slo("p99 under 3ms")
def test_bad(servebench):
    servebench.run(ClosedLoop(concurrency=1, requests=5), payload=b"x")
""")
    result = pytester.runpytest("--target=http", f"--servebench-url={server.url}")
    # Reported once, at collection, before the benchmark runs (more in test_option_validation).
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*test_bad: @pytest.mark.slo: cannot read SLO 'p99 under 3ms'*"])
    assert server.requests == 0


def test_help_shows_the_servebench_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines([
        "*model-serving benchmarks (pytest-servebench)*",
        "*--target=NAME*",
        "*--servebench-url=URL*",
        "*--servebench-slo-estimate*",
    ])


def test_markers_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["*@pytest.mark.slo(*bounds)*", "*@pytest.mark.docker*",
                                 "*@pytest.mark.aws*"])
