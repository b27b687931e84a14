"""Waiting for something to become ready, one way everywhere (testcontainers' wait strategies):
a timeout, a poll interval, the exceptions that only mean "not yet", a way out as soon as the
thing has died, and its logs attached when the wait gives up.

``wait_for`` blocks; ``wait_for_async`` is the same wait for an event loop (a sandbox's start).

>>> import itertools
>>> polls = itertools.count()
>>> waited_s = wait_for(lambda: next(polls) == 2, timeout_s=5, interval_s=0, what="the counter")
>>> try:
...     wait_for(lambda: False, timeout_s=0, what="the moon", logs=lambda: "(no answer)")
... except ReadinessTimeout as exc:
...     print(exc)
the moon: not ready after 0s
(no answer)
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable

__all__ = ["NotReady", "ReadinessTimeout", "wait_for", "wait_for_async"]

Retryable = tuple[type[BaseException], ...]


class NotReady(RuntimeError):
    """``what`` did not become ready: it died first (this class) or the time ran out
    (``ReadinessTimeout``). ``logs`` is what it printed, also at the end of the message."""

    def __init__(self, what: str, why: str, *, logs: str | None = None) -> None:
        super().__init__(f"{what}: {why}" + (f"\n{logs}" if logs is not None else ""))
        self.what, self.why, self.logs = what, why, logs


class ReadinessTimeout(NotReady):
    """Not ready after ``timeout_s`` seconds."""

    def __init__(self, what: str, timeout_s: float, *, logs: str | None = None) -> None:
        super().__init__(what, f"not ready after {timeout_s:g}s", logs=logs)
        self.timeout_s = timeout_s


def _check_arguments(timeout_s: float, interval_s: float) -> None:
    if not timeout_s >= 0:
        raise ValueError(f"timeout_s must be >= 0, not {timeout_s!r}")
    if not interval_s >= 0:
        raise ValueError(f"interval_s must be >= 0, not {interval_s!r}")


def wait_for(check: Callable[[], bool], *, timeout_s: float, what: str,
             interval_s: float = 0.05, retry_on: Retryable = (),
             dead: Callable[[], str | None] | None = None,
             logs: Callable[[], str] | None = None) -> float:
    """Call ``check`` every ``interval_s`` until it returns true; return the seconds waited.

    An exception of a ``retry_on`` type counts as "not yet" (a refused connection while a
    server starts); any other goes to the caller. ``dead`` says why waiting is pointless (a
    process that exited: "the process exited with status 3") or None: a reason raises
    ``NotReady`` at once instead of waiting out the timeout. Either failure carries
    ``logs()``."""
    _check_arguments(timeout_s, interval_s)
    started = time.perf_counter()
    deadline = started + timeout_s
    while True:
        try:
            if check():
                return time.perf_counter() - started
        except retry_on:
            pass
        why = dead() if dead is not None else None
        if why is not None:
            raise NotReady(what, why, logs=logs() if logs is not None else None)
        if time.perf_counter() >= deadline:
            raise ReadinessTimeout(what, timeout_s, logs=logs() if logs is not None else None)
        time.sleep(interval_s)


async def wait_for_async(check: Callable[[], bool | Awaitable[bool]], *, timeout_s: float,
                         what: str, interval_s: float = 0.05, retry_on: Retryable = (),
                         dead: Callable[[], str | None] | None = None,
                         logs: Callable[[], str | Awaitable[str]] | None = None) -> float:
    """``wait_for`` in an event loop: ``check`` and ``logs`` may be coroutines (a connection
    attempt; a log pipe drained to its end so that a dead sandbox's last words are in)."""
    import asyncio  # not at module level: blocking callers need no event loop

    _check_arguments(timeout_s, interval_s)

    async def collected() -> str | None:
        if logs is None:
            return None
        text = logs()
        return await text if inspect.isawaitable(text) else text

    started = time.perf_counter()
    deadline = started + timeout_s
    while True:
        try:
            ready = check()
            if inspect.isawaitable(ready):
                ready = await ready
            if ready:
                return time.perf_counter() - started
        except retry_on:
            pass
        why = dead() if dead is not None else None
        if why is not None:
            raise NotReady(what, why, logs=await collected())
        if time.perf_counter() >= deadline:
            raise ReadinessTimeout(what, timeout_s, logs=await collected())
        await asyncio.sleep(interval_s)
