"""--servebench-records."""

from __future__ import annotations

import csv
from collections.abc import Callable

import pytest

from .loopback import LoopbackServer


def test_records_are_written_as_csv(pytester: pytest.Pytester,
                                    loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback()
    pytester.makepyfile("""
from pytest_servebench import ClosedLoop, OpenLoop

def test_two_runs(servebench):
    servebench.run(ClosedLoop(concurrency=1, requests=7, warmup_requests=2), payload=b"x")
    servebench.run(OpenLoop(rate=50, duration=0.2, arrival="constant"), payload=b"x")
""")
    out = pytester.path / "records"
    result = pytester.runpytest("--target=http", f"--servebench-url={server.url}",
                                f"--servebench-records={out}")
    result.assert_outcomes(passed=1)
    files = sorted(p.name for p in out.iterdir())
    assert files == ["test_records_are_written_as_csv.py__test_two_runs.0.csv",
                     "test_records_are_written_as_csv.py__test_two_runs.1.csv"]
    rows = list(csv.DictReader((out / files[0]).open()))
    assert len(rows) == 9 and sum(int(r["warmup"]) for r in rows) == 2
    assert all(r["ok"] == "1" and float(r["latency_s"]) > 0 for r in rows)
    open_rows = list(csv.DictReader((out / files[1]).open()))
    assert [round(float(r["intended_s"]), 3) for r in open_rows] == [0, .02, .04, .06, .08,
                                                                     .1, .12, .14, .16, .18]
