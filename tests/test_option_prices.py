"""--servebench-prices, cost SLOs and the price hook."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from .loopback import LoopbackServer

CONFTEST = """
import contextlib
from pytest_servebench import HttpTarget

def pytest_servebench_make_target(config, name):
    if name == "c5":
        return contextlib.nullcontext(HttpTarget(
            "{url}", name="c5", profile={{"platform": "ec2", "instance_type": "c5.large"}}))
"""

TEST = """
import pytest
from pytest_servebench import ClosedLoop

@pytest.mark.slo("usd_per_million < {bound}")
def test_cost(servebench):
    r = servebench.run(ClosedLoop(concurrency=2, requests=300), payload=b"x")
    assert r.cost is not None and r.cost.platform == "ec2"
    expected = {hourly} / 3600 / r.throughput * 1e6
    assert abs(r.metric("usd_per_million").value - expected) < 1e-9 * expected
"""


def test_cost_slo_with_bundled_prices(pytester: pytest.Pytester,
                                      loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback()
    pytester.makeconftest(CONFTEST.format(url=server.url))
    # At hundreds of requests/s a $0.085/h server costs cents per million.
    pytester.makepyfile(TEST.format(bound=1, hourly=0.085))
    pytester.runpytest("--target=c5").assert_outcomes(passed=1)
    pytester.makepyfile(TEST.format(bound="0.000001", hourly=0.085))
    result = pytester.runpytest("--target=c5")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*usd_per_million < 0.000001: FAIL: measured $*"])


def test_own_price_book(pytester: pytest.Pytester,
                        loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback()
    book = pytester.path / "book.json"
    book.write_text(json.dumps({
        "schema_version": 1, "as_of": "2026-11-01", "sources": {"ec2": "our contract"},
        "ec2": {"c5.large": {"usd_per_hour": 8.5, "vcpu": 2, "memory_gib": 4}}}))
    pytester.makeconftest(CONFTEST.format(url=server.url))
    pytester.makepyfile(TEST.format(bound=1000, hourly=8.5))
    pytester.runpytest("--target=c5", f"--servebench-prices={book}").assert_outcomes(passed=1)


def test_corrupt_price_book_is_a_usage_error(pytester: pytest.Pytester,
                                             loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback()
    book = pytester.path / "book.json"
    book.write_text("{oops")
    pytester.makeconftest(CONFTEST.format(url=server.url))
    pytester.makepyfile(TEST.format(bound=1, hourly=0.085))
    result = pytester.runpytest("--target=c5", f"--servebench-prices={book}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # at start-up, before any test runs
    result.stderr.fnmatch_lines(["*--servebench-prices: price book*book.json is not valid JSON*"])
    assert server.requests == 0
    assert book.read_text() == "{oops"


def test_price_hook_replaces_the_model(pytester: pytest.Pytester,
                                       loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback()
    pytester.makeconftest(CONFTEST.format(url=server.url) + """
from pytest_servebench.cost import CostEstimate

def pytest_servebench_price(config, result):
    return CostEstimate(2e-6, "ec2", "flat contract price", "2026-11-01")
""")
    pytester.makepyfile("""
from pytest_servebench import ClosedLoop

def test_flat(servebench):
    r = servebench.run(ClosedLoop(concurrency=1, requests=20), payload=b"x")
    assert r.metric("usd_per_million").value == 2.0
    assert r.cost.basis == "flat contract price"
""")
    pytester.runpytest("--target=c5").assert_outcomes(passed=1)
