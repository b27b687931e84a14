"""--servebench-history, --servebench-save, --servebench-no-save, --servebench-compare,
--servebench-compare-fail, --servebench-no-baseline; with and without xdist."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from pytest_servebench.history import SCHEMA_VERSION

from .loopback import LoopbackServer

TESTS = """
import pytest
from pytest_servebench import ClosedLoop

@pytest.mark.parametrize("c", [1, 2])
def test_load(servebench, c):
    servebench.run(ClosedLoop(concurrency=c, requests=300), payload=b"x")
"""


def test_runs_are_saved_as_one_run(pytester: pytest.Pytester, plugin_args: list[str],
                                   loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback(delay_s=0.002)
    pytester.makepyfile(TESTS)
    args = ["--target=http", f"--servebench-url={server.url}", *plugin_args]
    result = pytester.runpytest_subprocess(*args, "--servebench-save=first")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*saved run * (first) with 2 result(s) to *history.json"])
    data = json.loads((pytester.path / ".servebench" / "history.json").read_text())
    assert data["schema_version"] == SCHEMA_VERSION and len(data["runs"]) == 1
    assert len(data["runs"][0]["entries"]) == 2
    pytester.runpytest_subprocess(*args, "--servebench-no-save").assert_outcomes(passed=2)
    own = pytester.path / "elsewhere.json"
    pytester.runpytest_subprocess(*args, f"--servebench-history={own}")
    assert len(json.loads(own.read_text())["runs"]) == 1
    data = json.loads((pytester.path / ".servebench" / "history.json").read_text())
    assert len(data["runs"]) == 1


def test_compare_gates_a_slower_target(pytester: pytest.Pytester,
                                       loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback(delay_s=0.005)
    pytester.makepyfile(TESTS)
    args = ["--target=http", f"--servebench-url={server.url}", "--servebench-compare",
            "--servebench-compare-fail=p50:10%"]
    first = pytester.runpytest(*args)
    assert first.ret == 0  # no baseline yet: warn and pass
    first.stdout.fnmatch_lines(["*MOST RESULTS WERE NOT COMPARED: 2 of 2 have no baseline (last)*"])
    same = pytester.runpytest(*args)
    assert same.ret == 0
    same.stdout.fnmatch_lines(["*no regression*"])
    server.behaviour.delay_s = 0.006
    slower = pytester.runpytest(*args)
    assert slower.ret == 1
    slower.stdout.fnmatch_lines(["*servebench compare (baseline: last)*",
                                 "*test_load?1?*p50*+*%*REGRESSION*", "*2 regression(s)*"])


def test_no_baseline_policy_fail(pytester: pytest.Pytester,
                                 loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback()
    pytester.makepyfile(TESTS)
    result = pytester.runpytest("--target=http", f"--servebench-url={server.url}",
                                "--servebench-compare", "--servebench-no-baseline=fail")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*servebench error: MOST RESULTS WERE NOT COMPARED: 2 of 2*"])


SMALL = """
from pytest_servebench import ClosedLoop

def test_small(servebench):
    servebench.run(ClosedLoop(concurrency=1, requests=20), payload=b"x")
"""


@pytest.mark.parametrize("policy", ["warn", "fail", "pass"])
def test_inconclusive_policy(pytester: pytest.Pytester, policy: str,
                             loopback: Callable[..., LoopbackServer]) -> None:
    """20 requests cannot bound a p99: the comparison says inconclusive, never "unchanged",
    and --servebench-compare-inconclusive decides what that does to the exit code."""
    server = loopback(delay_s=0.002)
    pytester.makepyfile(SMALL)
    args = ["--target=http", f"--servebench-url={server.url}", "--servebench-compare",
            "--servebench-compare-fail=p99:10%", f"--servebench-compare-inconclusive={policy}"]
    assert pytester.runpytest(*args).ret == 0
    second = pytester.runpytest(*args)
    second.stdout.fnmatch_lines([
        "*test_small*p99*inconclusive*",
        "*inconclusive (neither a regression nor its absence could be shown):*",
        "*test_small p99: the interval is unbounded at this sample size: at least * requests*",
        "*1 result(s) compared, 0 without a baseline; metrics: 0 regression, 0 improvement, "
        "0 unchanged, 1 inconclusive*",
        "*no regression shown (1 inconclusive)*"])
    if policy == "fail":
        assert second.ret == 1
        second.stdout.fnmatch_lines(["*servebench error: 1 comparison(s) inconclusive*"])
    else:
        assert second.ret == 0
        assert ("servebench warning: 1 comparison(s) inconclusive" in second.stdout.str()) \
            == (policy == "warn")


def test_corrupt_history_is_reported_and_kept(pytester: pytest.Pytester,
                                              loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback()
    pytester.makepyfile(TESTS)
    history = pytester.path / ".servebench" / "history.json"
    history.parent.mkdir()
    history.write_text("{corrupt")
    result = pytester.runpytest("--target=http", f"--servebench-url={server.url}")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*servebench error: history: *is not valid JSON*left as it is*"])
    assert history.read_text() == "{corrupt"
