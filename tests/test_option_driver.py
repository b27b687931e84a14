"""The Locust driver options: --servebench-driver, --servebench-workers,
--servebench-locust-master, --servebench-locust-csv."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_servebench import OpenLoop

from .loopback import LoopbackServer

# find_spec, not importorskip: importing locust monkey-patches this whole process with gevent.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("locust") is None,
                                reason="the Locust driver needs locust (the [locust] extra)")


def test_a_suite_runs_on_locust_workers_and_is_judged_the_same(
        pytester: pytest.Pytester, loopback: Callable[..., LoopbackServer],
        tmp_path: Path) -> None:
    server = loopback(delay_s=0.002)
    pytester.makepyfile("""
import pytest
from pytest_servebench import OpenLoop

@pytest.mark.slo("p50 < 200ms", "success_ratio >= 0.99")
def test_open(servebench):
    r = servebench.run(OpenLoop(rate=80, duration=1, seed=4), payload=b"x")
    assert r.count == len(OpenLoop(rate=80, duration=1, seed=4).schedule())
""")
    csv = tmp_path / "locust"
    result = pytester.runpytest("--target=http", f"--servebench-url={server.url}",
                                "--servebench-driver=locust", "--servebench-workers=2",
                                f"--servebench-locust-csv={csv}",
                                f"--servebench-history={tmp_path / 'h.json'}")
    result.assert_outcomes(passed=1)
    assert server.requests == len(OpenLoop(rate=80, duration=1, seed=4).schedule())
    stats = (tmp_path / "locust_stats.csv").read_text().splitlines()
    assert stats[0].startswith("Type,Name,Request Count") and len(stats) >= 2
    assert ",Aggregated," in stats[-1]


@pytest.mark.parametrize(("option", "message"), [
    ("--servebench-driver=k6", "invalid choice: 'k6'"),
    ("--servebench-workers=0", "servebench: the driver needs at least 1 worker"),
    ("--servebench-locust-master=nohost", "servebench: the Locust master is HOST:PORT"),
])
def test_bad_driver_options_are_usage_errors(pytester: pytest.Pytester, option: str,
                                             message: str) -> None:
    pytester.makepyfile("def test_x(servebench): pass")
    result = pytester.runpytest(option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])
