"""The terminal summary's server bills: each server target's hourly price, its bill from launch
(to termination, or to its last run while it still runs) and its cost per million requests at
the measured throughputs; serial and under xdist (the entries travel from the workers)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from .loopback import LoopbackServer

CONFTEST = """
import contextlib
import time
from pytest_servebench import HttpTarget

LAUNCHED = time.time() - 120.0  # a server launched two minutes before the session

def pytest_servebench_make_target(config, name):
    profile = {{"platform": "ec2", "instance_type": "c5.large"}}
    if name == "c5":
        profile["launched_unix"] = LAUNCHED
    return contextlib.nullcontext(HttpTarget("{url}", name=f"ec2:c5.large:{{name}}",
                                             profile=profile))
"""

TEST = """
from pytest_servebench import ClosedLoop

def test_sweep(servebench):
    for c in (1, 2):
        r = servebench.run(ClosedLoop(concurrency=c, requests=100), payload=b"x")
        bill = r.cost.server_bill
        assert r.cost.usd_per_hour == 0.085 and bill is not None and not bill.terminated
        assert 120 <= bill.billed_s < 600 and bill.usd == 0.085 * bill.billed_s / 3600
"""


def test_the_summary_shows_each_servers_bill_and_cost_per_million(
        pytester: pytest.Pytester, loopback: Callable[..., LoopbackServer],
        plugin_args: list[str]) -> None:
    server = loopback()
    pytester.makeconftest(CONFTEST.format(url=server.url))
    pytester.makepyfile(TEST)
    result = pytester.runpytest("--target=c5", "--servebench-no-save", *plugin_args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "*servebench server bills*",
        "server *$/h*billed*until*bill*$/M req",
        "ec2:c5.large:c5 *0.085 * s*its last run*$0.00*$*..$*",
        "its last run: the server was still running when its last result was priced; it is "
        "billed on until terminated",
    ])
    row = next(line for line in result.outlines if line.startswith("ec2:c5.large:c5 "))
    billed_s = int(re.search(r"(\d+) s", row).group(1))  # type: ignore[union-attr]
    assert 120 <= billed_s < 600, row
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if "servebench server bills" in line)
    bills = lines[start:next(i for i, line in enumerate(lines) if line.startswith("its last"))]
    assert max(len(line) for line in bills) <= 120, bills


def test_a_server_without_a_launch_time_shows_its_hourly_price_only(
        pytester: pytest.Pytester, loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback()
    pytester.makeconftest(CONFTEST.format(url=server.url))
    pytester.makepyfile(TEST.replace("bill = r.cost.server_bill", "assert r.cost.server_bill "
                                     "is None\n        break"))
    result = pytester.runpytest("--target=unlaunched", "--servebench-no-save")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "*servebench server bills*",
        "ec2:c5.large:unlaunched *0.085 *- *- *- *$*",
        "-: the http backend records no launch time: the hourly price and per million only",
    ])


def test_no_bills_without_a_priced_server(pytester: pytest.Pytester,
                                          loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback()
    pytester.makepyfile(f"""
from pytest_servebench import ClosedLoop, HttpTarget

def test_plain(servebench):
    servebench.run(ClosedLoop(concurrency=1, requests=20), payload=b"x",
                   target=HttpTarget("{server.url}"))
""")
    result = pytester.runpytest("--servebench-no-save")
    result.assert_outcomes(passed=1)
    assert "server bills" not in result.stdout.str()
