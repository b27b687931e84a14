"""The one readiness wait: a timeout, a poll interval, retryable errors, an early way out for
something that died, and its logs on failure; blocking and in an event loop."""

from __future__ import annotations

import asyncio
import doctest
import itertools

import pytest

from pytest_servebench import waiting
from pytest_servebench.waiting import NotReady, ReadinessTimeout, wait_for, wait_for_async


def test_docstring_examples() -> None:
    failures, attempted = doctest.testmod(waiting)
    assert attempted > 0 and failures == 0


def test_ready_after_retryable_errors() -> None:
    polls = itertools.count()

    def check() -> bool:
        n = next(polls)
        if n < 2:
            raise ConnectionRefusedError("not listening yet")
        return n >= 3

    assert wait_for(check, timeout_s=10, interval_s=0, what="x", retry_on=(OSError,)) >= 0
    assert next(polls) == 4


def test_an_error_not_listed_as_retryable_goes_to_the_caller() -> None:
    def check() -> bool:
        raise KeyError("a bug, not a slow start")

    with pytest.raises(KeyError):
        wait_for(check, timeout_s=10, interval_s=0, what="x", retry_on=(OSError,))


def test_a_timeout_carries_the_logs() -> None:
    with pytest.raises(ReadinessTimeout, match=r"server: not ready after 0\.05s\nbooting") as got:
        wait_for(lambda: False, timeout_s=0.05, interval_s=0.01, what="server",
                 logs=lambda: "booting")
    assert got.value.logs == "booting" and got.value.timeout_s == 0.05
    assert isinstance(got.value, NotReady)


def test_something_dead_fails_at_once_not_at_the_timeout() -> None:
    polls = itertools.count()
    with pytest.raises(NotReady, match=r"server: exited with 3\nbad config") as got:
        wait_for(lambda: next(polls) > 100, timeout_s=3600, interval_s=0, what="server",
                 dead=lambda: "exited with 3", logs=lambda: "bad config")
    assert not isinstance(got.value, ReadinessTimeout)
    assert next(polls) == 1  # one poll, then the death was seen


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        wait_for(lambda: True, timeout_s=-1, what="x")
    with pytest.raises(ValueError, match="interval_s"):
        wait_for(lambda: True, timeout_s=1, interval_s=float("nan"), what="x")


def test_the_async_wait_awaits_checks_and_logs() -> None:
    async def main() -> None:
        polls = itertools.count()

        async def check() -> bool:
            if next(polls) == 0:
                raise OSError("refused")
            return True

        await wait_for_async(check, timeout_s=5, interval_s=0, what="sandbox",
                             retry_on=(OSError,))

        async def drained() -> str:
            await asyncio.sleep(0)
            return "last words"

        with pytest.raises(NotReady, match=r"sandbox: the emulator exited\nlast words"):
            await wait_for_async(lambda: False, timeout_s=5, interval_s=0, what="sandbox",
                                 dead=lambda: "the emulator exited", logs=drained)
        with pytest.raises(ReadinessTimeout, match="not ready after 0s"):
            await wait_for_async(lambda: False, timeout_s=0, what="sandbox")

    asyncio.run(main())
