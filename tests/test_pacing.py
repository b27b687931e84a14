"""``pacing``: a send time waited for on a kernel timer (Linux) or by the loop's timer and a spin
(``auto``: by the schedule's rate); never early, in any mode; a bad ``SERVEBENCH_PACING`` is a
usage error that says what it takes, before anything runs."""

from __future__ import annotations

import asyncio
import os
import select
import sys
import time

import pytest

from pytest_servebench import pacing
from pytest_servebench.pacing import AsyncPacer, KernelTimer, PacingError, kernel_timer

linux = pytest.mark.skipif(not sys.platform.startswith("linux"),
                           reason="timerfd is Linux's; elsewhere the pacer spins")


def test_the_mode_is_auto_unless_told_and_a_bad_one_says_what_it_takes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(pacing.ENV, raising=False)
    assert pacing.mode() == "auto"
    monkeypatch.setenv(pacing.ENV, "SPIN")
    assert pacing.mode() == "spin"
    monkeypatch.setenv(pacing.ENV, "busy")
    with pytest.raises(PacingError, match=r"SERVEBENCH_PACING='busy'.*auto, timer, spin"):
        pacing.mode()


def test_a_bad_pacing_is_a_usage_error_before_any_test_runs(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile("def test_x():\n    raise AssertionError('ran')\n")
    monkeypatch.setenv(pacing.ENV, "busy")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*SERVEBENCH_PACING='busy'*auto, timer, spin*"])
    result.stdout.no_fnmatch_line("*ran*")


def test_a_schedules_rate_is_its_sends_over_its_span() -> None:
    assert pacing.schedule_rate([]) is None
    assert pacing.schedule_rate([1.0]) is None
    assert pacing.schedule_rate([0.0, 0.5, 1.0]) == pytest.approx(2.0)


@linux
def test_a_kernel_timer_serves_perf_counter_below_the_busy_rate_unless_told(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(pacing.ENV, raising=False)
    busy = pacing.BUSY_RATE_HZ
    for rate in (None, 300.0, busy * 0.99):
        timer = kernel_timer(time.perf_counter, rate)
        assert timer is not None, rate
        timer.close()
    assert kernel_timer(time.perf_counter, busy) is None  # dense: the sender spins
    assert kernel_timer(lambda: 0.0, 300.0) is None  # another clock: no timer matches it
    monkeypatch.setenv(pacing.ENV, "timer")
    timer = kernel_timer(time.perf_counter, busy * 4)
    assert timer is not None
    timer.close()
    monkeypatch.setenv(pacing.ENV, "spin")
    assert kernel_timer(time.perf_counter, 300.0) is None


@linux
def test_the_kernel_timer_fires_at_its_time_not_before() -> None:
    timer = KernelTimer()
    try:
        at = time.perf_counter() + 0.05
        timer.arm(at)
        assert select.select([timer.fd], [], [], 0)[0] == []
        readable = select.select([timer.fd], [], [], 5)[0]
        fired = time.perf_counter()
        assert readable == [timer.fd]
        assert fired >= at
        timer.clear()
        assert select.select([timer.fd], [], [], 0)[0] == []  # one-shot, and read
    finally:
        timer.close()
    assert timer.fd == -1


async def _waits(pacer: AsyncPacer, gaps: list[float]) -> list[float]:
    """How late each wait returned (negative: early)."""
    lates = []
    t = pacer.now()
    for gap in gaps:
        t += gap
        await pacer.wait_until(t)
        lates.append(pacer.now() - t)
    return lates


@pytest.mark.parametrize(("mode", "rate", "timed"), [
    ("auto", 300.0, True), ("auto", 5000.0, False), ("timer", 5000.0, True),
    ("spin", 300.0, False)])
def test_the_async_pacer_never_returns_early(mode: str, rate: float, timed: bool,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pacing.ENV, mode)
    gaps = [0.0, 0.00005, 0.0001, 0.0003, 0.001, 0.003, 0.0002, 0.01] * 6

    async def main() -> tuple[list[float], bool]:
        pacer = AsyncPacer(time.perf_counter, time.perf_counter(), rate)
        try:
            return await _waits(pacer, gaps), pacer.timer is not None
        finally:
            pacer.close()

    lates, used_timer = asyncio.run(main())
    assert min(lates) >= 0
    assert used_timer == (timed and sys.platform.startswith("linux"))
    # late by far less than the loop's millisecond timers most of the time (the bound is loose:
    # the machine is shared; benchmarks/bench_engine.py --only pacing has the figures)
    assert sorted(lates)[len(lates) // 2] < 0.005


def test_the_async_pacer_with_another_clock_waits_by_that_clock(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(pacing.ENV, raising=False)
    ticks = [0.0]

    def clock() -> float:  # a clock that moves only when read: 1 ms a reading
        ticks[0] += 0.001
        return ticks[0]

    async def main() -> tuple[list[float], bool]:
        pacer = AsyncPacer(clock, clock())
        try:
            return await _waits(pacer, [0.01, 0.02]), pacer.timer is not None
        finally:
            pacer.close()

    lates, timed = asyncio.run(main())
    assert not timed
    assert min(lates) >= 0


@linux
def test_closing_the_pacer_gives_its_descriptor_back() -> None:
    async def main() -> None:
        pacer = AsyncPacer(time.perf_counter, time.perf_counter())
        assert pacer.timer is not None
        fd = pacer.timer.fd
        await pacer.wait_until(pacer.now() + 0.002)
        pacer.close()
        with pytest.raises(OSError):
            os.fstat(fd)

    asyncio.run(main())
