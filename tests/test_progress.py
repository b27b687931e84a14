"""Live progress: the engine samples its counters a few times a second (not per request), the
line shows only runs longer than a couple of seconds, rewrites itself on a terminal and prints
plain lines otherwise, and pytest shows it except under -q and xdist."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from pytest_servebench import HttpTarget
from pytest_servebench.engine import drive, run_sync
from pytest_servebench.progress import ProgressLine, Snapshot
from pytest_servebench.target import Payload
from pytest_servebench.workloads import ClosedLoop

from .loopback import LoopbackServer


def _snap(t: float, *, final: bool = False) -> Snapshot:
    return Snapshot(elapsed_s=t, sent=int(t * 10), done=int(t * 10), errors=0, p50_s=0.01,
                    final=final)


def test_the_engine_samples_a_few_times_a_second(
        loopback: Callable[..., LoopbackServer]) -> None:
    server = loopback(delay_s=0.001)
    seen: list[Snapshot] = []
    run_sync(lambda: drive(HttpTarget(server.url), ClosedLoop(concurrency=2, duration=1.0),
                           [Payload(b"x")], timeout_s=5, time_limit_s=10,
                           progress=seen.append, progress_interval_s=0.1))
    *ticks, last = seen
    assert last.final and not any(s.final for s in ticks)
    assert 6 <= len(ticks) <= 12  # ~10 over a second: sampled, not one per request
    assert last.done == server.requests > 5 * len(ticks) and last.errors == 0
    assert last.sent == last.done  # nothing in flight at the end
    assert [s.done for s in ticks] == sorted(s.done for s in ticks)
    assert 0 < last.p50_s < 0.05 and all(s.sent >= s.done for s in seen)


def test_errors_are_counted_and_p50_waits_for_a_success() -> None:
    seen: list[Snapshot] = []
    run_sync(lambda: drive(HttpTarget("http://127.0.0.1:9/"), ClosedLoop(concurrency=1,
                                                                          requests=20),
                           [Payload(b"x")], timeout_s=1, time_limit_s=5,
                           progress=seen.append, progress_interval_s=0.05))
    assert seen[-1].errors == seen[-1].done == 20 and math.isnan(seen[-1].p50_s)
    assert "p50 -" in seen[-1].text()


def test_a_terminal_line_is_rewritten_and_cleared() -> None:
    writes: list[str] = []
    cleared: list[bool] = []
    line = ProgressLine(writes.append, tty=True, label="t", clear=lambda: cleared.append(True))
    for t in (0.5, 1.9, 2.1, 2.4, 2.6):
        line(_snap(t))
    line(_snap(2.7, final=True))
    assert [w.split()[1] for w in writes] == ["2.1s", "2.4s", "2.6s"] and cleared == [True]


def test_a_short_run_shows_nothing_and_clears_nothing() -> None:
    writes: list[str] = []
    cleared: list[bool] = []
    line = ProgressLine(writes.append, tty=True, clear=lambda: cleared.append(True))
    line(_snap(1.0))
    line(_snap(1.5, final=True))
    assert writes == [] and cleared == []


def test_without_a_terminal_plain_lines_come_every_few_seconds() -> None:
    writes: list[str] = []
    line = ProgressLine(writes.append, tty=False, every_s=5)
    for t in range(0, 13):
        line(_snap(float(t)))
    assert [w.split()[0] for w in writes] == ["2.0s", "7.0s", "12.0s"]


PROGRESS_TEST = """
from pytest_servebench import ClosedLoop

def test_long(servebench):
    servebench.run(ClosedLoop(concurrency=1, duration="2.6s"), payload=b"x")
"""


@pytest.mark.parametrize(("args", "shown"), [([], True), (["-q"], False),
                                             (["-n", "2"], False)],
                         ids=["default", "quiet", "xdist"])
def test_pytest_shows_progress_of_long_runs(
        pytester: pytest.Pytester, loopback: Callable[..., LoopbackServer],
        args: list[str], shown: bool) -> None:
    server = loopback(delay_s=0.002)
    pytester.makepyfile(PROGRESS_TEST)
    result = pytester.runpytest_subprocess("--target=http", f"--servebench-url={server.url}",
                                           "-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=1)
    lines = [line for line in result.outlines if "closed(c=1, 2.6s)  2." in line]
    if shown:  # not a terminal here: a plain line, with everything it promises
        assert len(lines) == 1, result.outlines
        assert " sent " in lines[0] and " done " in lines[0] and "errors 0" in lines[0]
        assert "test_long" in lines[0] and " p50 " in lines[0]
    else:
        assert lines == []
