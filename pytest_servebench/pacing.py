"""Waiting for a scheduled send time: precisely, and without sharing a core with the server.

An open loop sends each request at its intended time. The event loops' own timers cannot: epoll
takes whole milliseconds, so asyncio's and gevent's sleeps wake up to a millisecond late. Two
ways around it, and which is better depends on the rate (measured on 2 shared cores, open loop
to a no-op loopback server in a process of its own, the in-process engine; ``python3
benchmarks/bench_pacing.py``):

- ``spin``: sleep on the loop's timer to ``SPIN_S`` (1.2 ms) short of the time, then spin. The
  sender is busy for ``1 - exp(-rate * SPIN_S)`` of the run, and a sender busy part of the
  time is what a co-located server's wake-ups trip over: p99 read 1.2-3.1 ms at 300 and 1,000
  req/s. At 1,500 req/s and more it is busy nearly all the time anyway, and spinning is best:
  p99 0.17-0.25 ms.
- ``timer``: wait on a ``timerfd`` (CLOCK_MONOTONIC, the clock of ``time.perf_counter``) armed
  ``EARLY_S`` (0.2 ms) before the time, so the loop wakes from its poll when the kernel timer
  fires (tens of microseconds late, not a millisecond), and spin only that last 0.2 ms: p99
  0.41-0.70 ms at 300 and 1,000 req/s, at a quarter to a third of the spin's CPU; but 0.63-1.0
  ms at 1,500-3,000 req/s, where the sender sleeps and wakes thousands of times a second.
- ``auto`` (the default): ``timer`` below ``BUSY_RATE_HZ`` (1,250 req/s per sending process),
  ``spin`` at and above it.

``SERVEBENCH_PACING=auto|timer|spin`` chooses. Without a kernel timer (not Linux, or a clock
other than ``time.perf_counter``) it spins. ``AsyncPacer`` is for asyncio (the in-process
engine), ``GeventPacer`` for gevent (a Locust worker); both take times as seconds from their own
origin, and the rate of the schedule they pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

EARLY_S = 0.0002
SPIN_S = 0.0012
BUSY_RATE_HZ = 1250.0
MODES = ("auto", "timer", "spin")
ENV = "SERVEBENCH_PACING"

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = 0o2000000
_TFD_TIMER_ABSTIME = 1


def schedule_rate(times: Sequence[float]) -> float | None:
    """A schedule's mean rate (sends per second), None for fewer than two sends."""
    if len(times) < 2 or times[-1] <= times[0]:
        return None
    return (len(times) - 1) / (times[-1] - times[0])


class PacingError(ValueError):
    """A bad ``SERVEBENCH_PACING``."""


def mode() -> str:
    """``auto`` (the default), ``timer`` or ``spin``: see the module's doc."""
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in MODES:
        raise PacingError(f"{ENV}={value!r}: expected one of {', '.join(MODES)}")
    return value


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


_libc: Any = None


def _load_libc() -> Any:
    global _libc
    if _libc is None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.timerfd_create.restype = ctypes.c_int
        libc.timerfd_settime.argtypes = [ctypes.c_int, ctypes.c_int,
                                         ctypes.POINTER(_Itimerspec), ctypes.c_void_p]
        libc.timerfd_settime.restype = ctypes.c_int
        _libc = libc
    return _libc


class KernelTimer:
    """A one-shot ``timerfd`` on CLOCK_MONOTONIC: ``arm(at)`` with ``at`` a
    ``time.perf_counter()`` reading; the descriptor turns readable when it fires."""

    def __init__(self) -> None:
        libc = _load_libc()
        fd = libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_create: {os.strerror(err)}")
        self.fd: int = fd

    def fileno(self) -> int:
        return self.fd

    def arm(self, at: float) -> None:
        sec = int(at)
        spec = _Itimerspec(_Timespec(0, 0), _Timespec(sec, int((at - sec) * 1e9)))
        if _load_libc().timerfd_settime(self.fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec),
                                        None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_settime: {os.strerror(err)}")

    def clear(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self.fd, 8)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def kernel_timer(clock: Callable[[], float], rate_hz: float | None = None) -> KernelTimer | None:
    """A kernel timer for pacing a schedule of ``rate_hz`` by ``clock``, or None to spin:
    ``SERVEBENCH_PACING=spin``; ``auto`` at ``BUSY_RATE_HZ`` and above; no timer that serves
    ``clock`` (not Linux, a clock other than ``time.perf_counter`` on CLOCK_MONOTONIC)."""
    chosen = mode()
    if chosen == "spin" or (chosen == "auto" and rate_hz is not None
                            and rate_hz >= BUSY_RATE_HZ):
        return None
    if clock is not time.perf_counter or not sys.platform.startswith("linux"):
        return None
    if "CLOCK_MONOTONIC" not in time.get_clock_info("perf_counter").implementation:
        return None
    try:
        return KernelTimer()
    except (OSError, AttributeError):
        return None


class AsyncPacer:
    """``await pacer.wait_until(t)``: return at ``t`` seconds after ``origin`` (a reading of
    ``clock``), in the running asyncio loop, for a schedule of ``rate_hz`` on average. One
    waiter at a time (the engine's dispatcher)."""

    def __init__(self, clock: Callable[[], float], origin: float,
                 rate_hz: float | None = None) -> None:
        self.clock = clock
        self.origin = origin
        self.loop = asyncio.get_running_loop()
        self.timer = kernel_timer(clock, rate_hz)
        self._waiter: asyncio.Future[None] | None = None
        if self.timer is not None:
            self.loop.add_reader(self.timer.fd, self._fired)

    def now(self) -> float:
        return self.clock() - self.origin

    def _fired(self) -> None:
        assert self.timer is not None
        self.timer.clear()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_until(self, t: float) -> None:
        delay = t - self.now()
        if self.timer is not None:
            if delay > EARLY_S:
                self._waiter = self.loop.create_future()
                self.timer.arm(self.origin + t - EARLY_S)
                await self._waiter
        elif delay > SPIN_S:
            await asyncio.sleep(delay - SPIN_S)
        while self.now() < t:
            await asyncio.sleep(0)  # asyncio polls its sockets on every pass

    def close(self) -> None:
        if self.timer is not None:
            self.loop.remove_reader(self.timer.fd)
            self.timer.close()
            self.timer = None


class GeventPacer:
    """``pacer.wait_until(t)`` in a gevent greenlet: return at ``t`` seconds after ``origin``
    (a ``time.perf_counter()`` reading), for a schedule of ``rate_hz`` on average. One waiter
    at a time (the worker's relay). Imports gevent: only Locust's worker processes use it."""

    def __init__(self, origin: float, rate_hz: float | None = None) -> None:
        self.origin = origin
        self.timer = kernel_timer(time.perf_counter, rate_hz)

    def now(self) -> float:
        return time.perf_counter() - self.origin

    def wait_until(self, t: float) -> None:
        import gevent
        import gevent.socket

        delay = t - self.now()
        if self.timer is not None:
            if delay > EARLY_S:
                self.timer.arm(self.origin + t - EARLY_S)
                gevent.socket.wait_read(self.timer.fd)
                self.timer.clear()
        elif delay > SPIN_S:
            gevent.sleep(delay - SPIN_S)
        # gevent.idle(), not sleep(0): the hub runs callbacks queued by sleep(0) back to back
        # for up to the switch interval (5 ms) before it polls the sockets, so a reply that
        # came in during the spin waited for its end; an idle watcher runs after the poll.
        while self.now() < t:
            gevent.idle()

    def close(self) -> None:
        if self.timer is not None:
            self.timer.close()
            self.timer = None


__all__ = ["BUSY_RATE_HZ", "EARLY_S", "ENV", "MODES", "SPIN_S", "AsyncPacer", "GeventPacer",
           "KernelTimer", "PacingError", "kernel_timer", "mode", "schedule_rate"]
