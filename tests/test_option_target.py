"""--target and --servebench-url."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .loopback import LoopbackServer

TEST = """
from pytest_servebench import ClosedLoop

def test_run(servebench):
    r = servebench.run(ClosedLoop(concurrency=2, requests=40), payload=b"hello")
    assert r.count == 40 and r.success_ratio == 1.0
    assert r.target == "http"
"""


def test_http_target_runs_against_url(pytester: pytest.Pytester, plugin_args: list[str],
                                      loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback()
    pytester.makepyfile(TEST)
    result = pytester.runpytest_subprocess("--target=http", f"--servebench-url={server.url}",
                                           *plugin_args)
    result.assert_outcomes(passed=1)
    assert server.requests == 40
    assert set(server.bodies) == {b"hello"}
    result.stdout.fnmatch_lines(["*servebench summary*", "*test_run*http*closed(c=2, 40 req)*"])


def test_http_target_needs_url(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TEST)
    result = pytester.runpytest("--target=http")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # at start-up, before any test runs
    result.stderr.fnmatch_lines(["*--target=http needs --servebench-url=URL*"])


def test_unknown_target_is_named(pytester: pytest.Pytester, plugin_args: list[str]) -> None:
    pytester.makepyfile(TEST)
    result = pytester.runpytest_subprocess("--target=mainframe", *plugin_args)
    # At the end of collection, once, before any test runs: with xdist too, where the workers
    # collect and the controller reports the stop.
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    out = result.stdout.str() + result.stderr.str()
    assert out.count("--target=mainframe: no backend provides this target") == 1, out
    assert "INTERNALERROR" not in out and "passed" not in out and "errors" not in out, out


def test_no_target_explains_how_to_choose_one(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TEST)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no serving target: pass target=*--target*"])


def test_conftest_hook_provides_a_target(pytester: pytest.Pytester,
                                         loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback()
    pytester.makeconftest(f"""
import contextlib
from pytest_servebench import HttpTarget

def pytest_servebench_make_target(config, name):
    if name == "staging":
        return contextlib.nullcontext(HttpTarget("{server.url}", name="staging"))
""")
    pytester.makepyfile(TEST.replace('r.target == "http"', 'r.target == "staging"'))
    result = pytester.runpytest("--target=staging")
    result.assert_outcomes(passed=1)
