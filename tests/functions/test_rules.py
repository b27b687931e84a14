"""Lambda's scaling rules on the platform, with fake sandboxes (``functions.fake``): no emulator
and no process, scripted durations, and a gate that holds invocations in flight, so each rule is
checked by what the platform did rather than by timing."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from pytest_servebench.functions.fake import FakeLauncher, Scripted
from pytest_servebench.functions.platform import (
    FunctionConfig,
    FunctionPlatform,
    Throttled,
)
from pytest_servebench.functions.report import billed_ms
from pytest_servebench.waiting import wait_for_async

SCRIPT = Scripted(duration_ms=120.0, init_ms=800.0)
FAR = 10_000.0  # seconds: past any keep-alive used here


def on_platform(test: Callable[[FunctionPlatform, FakeLauncher], Awaitable[None]], *,
                answer: Any = SCRIPT, **options: Any) -> FakeLauncher:
    """Run ``test`` against a platform of fake sandboxes; its reaper never runs on its own
    (``reap`` is called with a chosen clock instead)."""
    launcher = FakeLauncher(answer)

    async def main() -> None:
        platform = FunctionPlatform(launcher, reap_interval_s=3600, **options)
        try:
            await test(platform, launcher)
        finally:
            await platform.aclose()

    asyncio.run(main())
    return launcher


async def stopped(launcher: FakeLauncher, *ids: str) -> None:
    """Wait (bounded) until the platform has stopped these sandboxes (in an executor)."""
    await wait_for_async(lambda: set(ids) <= set(launcher.stopped), timeout_s=10,
                         interval_s=0.001, what=f"sandboxes {ids} stopped",
                         logs=lambda: f"stopped: {launcher.stopped}")


def test_a_first_call_is_cold_and_the_next_warm_on_the_same_sandbox() -> None:
    async def test(platform: FunctionPlatform, launcher: FakeLauncher) -> None:
        fn = await platform.deploy(FunctionConfig("f", memory_mb=1024))
        assert launcher.launched == []  # nothing starts before the first call
        first, second = await fn.invoke(b"{}"), await fn.invoke(b"{}")
        assert first.cold_start and not second.cold_start
        assert first.outcome.sandbox_id == second.outcome.sandbox_id
        cold, warm = first.outcome.report, second.outcome.report
        assert (cold.duration_ms, cold.init_duration_ms) == (120.0, 800.0)
        assert cold.billed_duration_ms == billed_ms(120.0, 800.0) == 920
        assert (warm.init_duration_ms, warm.billed_duration_ms) == (None, 120)
        assert warm.memory_size_mb == 1024 and warm.max_memory_used_mb == 64
        assert "REPORT RequestId:" in second.outcome.log
        assert second.outcome.body == b'{"ok": true}' and second.outcome.function_error is None

    launcher = on_platform(test)
    assert len(launcher.launched) == 1 and [i.cold for i in launcher.invoked] == [True, False]


def test_an_invocation_is_answered_as_scripted() -> None:
    def answer(spec: Any, event: bytes) -> Scripted:
        return Scripted(duration_ms=len(event), error=event == b'"boom"', body=event)

    async def test(platform: FunctionPlatform, launcher: FakeLauncher) -> None:
        fn = await platform.deploy(FunctionConfig("f"))
        ok = await fn.invoke(b'"fine, thanks"')
        assert ok.outcome.report.duration_ms == 14 and ok.outcome.body == b'"fine, thanks"'
        failed = await fn.invoke(b'"boom"')
        assert failed.outcome.function_error == "Unhandled"
        # A handler's error leaves the sandbox usable, as on Lambda.
        assert failed.outcome.sandbox_id == ok.outcome.sandbox_id

    on_platform(test, answer=answer)


def test_a_sandbox_runs_one_invocation_at_a_time() -> None:
    async def test(platform: FunctionPlatform, launcher: FakeLauncher) -> None:
        fn = await platform.deploy(FunctionConfig("f"))
        for round_ in range(2):
            launcher.hold()
            calls = [asyncio.create_task(fn.invoke(b"{}")) for _ in range(6)]
            await launcher.wait_in_flight(6)
            assert len(launcher.launched) == 6  # six at once: six sandboxes, none shared
            launcher.release()
            done = await asyncio.gather(*calls)
            assert [c.cold_start for c in done] == [round_ == 0] * 6
        launcher.hold()
        calls = [asyncio.create_task(fn.invoke(b"{}")) for _ in range(7)]
        await launcher.wait_in_flight(7)
        launcher.release()
        assert sum(c.cold_start for c in await asyncio.gather(*calls)) == 1  # one more
        assert fn.starts == 7

    launcher = on_platform(test)
    assert [s.most_in_flight for s in launcher.launched] == [1] * 7


def test_reserved_concurrency_throttles_past_it_and_never_queues() -> None:
    async def test(platform: FunctionPlatform, launcher: FakeLauncher) -> None:
        fn = await platform.deploy(FunctionConfig("f", reserved_concurrency=2))
        launcher.hold()
        calls = [asyncio.create_task(fn.invoke(b"{}")) for _ in range(2)]
        await launcher.wait_in_flight(2)
        with pytest.raises(Throttled) as throttled:
            await fn.invoke(b"{}")
        assert throttled.value.reason == "ReservedFunctionConcurrentInvocationLimitExceeded"
        assert fn.throttles == 1 and len(launcher.launched) == 2
        launcher.release()
        await asyncio.gather(*calls)
        assert not (await fn.invoke(b"{}")).cold_start  # room again: a warm sandbox
        none = await platform.deploy(FunctionConfig("off", reserved_concurrency=0))
        with pytest.raises(Throttled):
            await none.invoke(b"{}")

    on_platform(test)


def test_the_accounts_concurrency_caps_every_function_together() -> None:
    async def test(platform: FunctionPlatform, launcher: FakeLauncher) -> None:
        f = await platform.deploy(FunctionConfig("f"))
        g = await platform.deploy(FunctionConfig("g"))
        launcher.hold()
        calls = [asyncio.create_task(f.invoke(b"{}")), asyncio.create_task(g.invoke(b"{}"))]
        await launcher.wait_in_flight(2)
        with pytest.raises(Throttled, match="ConcurrentInvocationLimitExceeded"):
            await g.invoke(b"{}")
        launcher.release()
        await asyncio.gather(*calls)

    on_platform(test, account_concurrency=2)


def test_a_throttled_call_is_a_429_too_many_requests_through_the_api() -> None:
    boto3 = pytest.importorskip("boto3")
    from botocore.config import Config

    from pytest_servebench.functions.api import PlatformServer

    launcher = FakeLauncher(SCRIPT)
    with PlatformServer(lambda: launcher, reap_interval_s=3600) as srv:
        assert srv.loop is not None
        srv.deploy(FunctionConfig("capped", reserved_concurrency=1))
        creds = srv.credentials
        lam = boto3.client("lambda", endpoint_url=srv.endpoint_url, region_name="us-east-1",
                           aws_access_key_id=creds.access_key_id,
                           aws_secret_access_key=creds.secret_access_key,
                           config=Config(retries={"max_attempts": 0}, read_timeout=60))
        srv.loop.call_soon_threadsafe(launcher.hold)
        answers: list[Any] = []
        first = threading.Thread(target=lambda: answers.append(
            lam.invoke(FunctionName="capped", Payload=b"{}")))
        first.start()
        try:
            srv.call(launcher.wait_in_flight(1))
            with pytest.raises(lam.exceptions.TooManyRequestsException) as throttled:
                lam.invoke(FunctionName="capped", Payload=b"{}")
            error = throttled.value.response
            assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
            assert error["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
        finally:
            srv.loop.call_soon_threadsafe(launcher.release)
            first.join(30)
        assert answers and answers[0]["StatusCode"] == 200


def test_idle_sandboxes_are_reaped_after_keep_alive_and_the_next_call_is_cold() -> None:
    async def test(platform: FunctionPlatform, launcher: FakeLauncher) -> None:
        fn = await platform.deploy(FunctionConfig("f", keep_alive_s=600))
        first = await fn.invoke(b"{}")
        assert fn.reap(time.monotonic() + 300) == 0  # within keep-alive: kept
        assert fn.reap(time.monotonic() + 601) == 1
        await stopped(launcher, first.outcome.sandbox_id)
        assert fn.sandboxes == {}
        again = await fn.invoke(b"{}")
        assert again.cold_start and again.outcome.sandbox_id != first.outcome.sandbox_id

    on_platform(test)


def test_provisioned_sandboxes_are_initialised_ahead_serve_first_and_outlive_keep_alive(
) -> None:
    async def test(platform: FunctionPlatform, launcher: FakeLauncher) -> None:
        fn = await platform.deploy(FunctionConfig("f", provisioned_concurrency=2,
                                                  keep_alive_s=60))
        provisioned = {s.spec.sandbox_id for s in launcher.launched}
        assert len(provisioned) == 2 and launcher.events() == [{"servebench": "warmup"}] * 2
        first = await fn.invoke(b"{}")
        assert not first.cold_start and first.outcome.sandbox_id in provisioned
        launcher.hold()  # three at once: two provisioned, then one on demand (cold)
        calls = [asyncio.create_task(fn.invoke(b"{}")) for _ in range(3)]
        await launcher.wait_in_flight(3)
        spilled = set(launcher.busy()) - provisioned
        assert len(spilled) == 1
        launcher.release(*provisioned)
        await wait_for_async(lambda: sum(c.done() for c in calls) == 2, timeout_s=10,
                             interval_s=0.001, what="the provisioned calls")
        launcher.release()  # the on-demand sandbox comes back last: the most recently used
        done = await asyncio.gather(*calls)
        on_demand = [c for c in done if c.outcome.sandbox_id in spilled]
        assert len(on_demand) == 1 and on_demand[0].cold_start
        assert all(not c.cold_start for c in done if c not in on_demand)
        for _ in range(3):  # yet an idle provisioned sandbox is taken before it
            assert (await fn.invoke(b"{}")).outcome.sandbox_id in provisioned
        assert fn.reap(time.monotonic() + FAR) == 1  # only the on-demand one goes
        await stopped(launcher, on_demand[0].outcome.sandbox_id)
        assert set(fn.sandboxes) == provisioned

    on_platform(test)


def test_a_configuration_change_retires_every_sandbox_and_the_next_call_is_cold() -> None:
    async def test(platform: FunctionPlatform, launcher: FakeLauncher) -> None:
        fn = await platform.deploy(FunctionConfig("f", memory_mb=1024))
        launcher.hold()
        calls = [asyncio.create_task(fn.invoke(b"{}")) for _ in range(2)]
        await launcher.wait_in_flight(2)
        launcher.release()
        old = {c.outcome.sandbox_id for c in await asyncio.gather(*calls)}
        launcher.hold()
        busy = asyncio.create_task(fn.invoke(b"{}"))  # one sandbox busy, one idle
        await launcher.wait_in_flight(1)
        busy_id = next(s.spec.sandbox_id for s in launcher.launched if s.in_flight)
        await fn.update(memory_mb=2048)
        await stopped(launcher, *(old - {busy_id}))  # the idle one goes at once...
        assert busy_id not in launcher.stopped
        launcher.release()
        await busy  # ...the busy one finishes on the old configuration, then goes
        await stopped(launcher, busy_id)
        after = await fn.invoke(b"{}")
        assert after.cold_start and after.outcome.sandbox_id not in old
        assert launcher.sandbox(after.outcome.sandbox_id).spec.memory_mb == 2048

    on_platform(test)


def test_a_version_is_a_snapshot_with_sandboxes_of_its_own() -> None:
    async def test(platform: FunctionPlatform, launcher: FakeLauncher) -> None:
        fn = await platform.deploy(FunctionConfig("f", memory_mb=512, reserved_concurrency=2))
        assert (await fn.invoke(b"{}")).cold_start  # $LATEST has a warm sandbox from here on
        v1 = fn.publish()
        assert v1.version == "1" and fn.publish() is v1  # nothing changed: the same version
        assert platform.resolve("f:1") is v1 is platform.resolve("f", "1")
        on_v1 = await platform.invoke("f:1", b"{}")
        assert on_v1.cold_start  # its own sandboxes, not $LATEST's warm one
        spec = launcher.sandbox(on_v1.outcome.sandbox_id).spec
        assert spec.environment["AWS_LAMBDA_FUNCTION_VERSION"] == "1"
        await fn.update(memory_mb=1024)  # $LATEST changes; the version keeps its snapshot
        assert v1.config.memory_mb == 512 and fn.config.memory_mb == 1024
        assert not (await platform.invoke("f:1", b"{}")).cold_start
        assert (await fn.invoke(b"{}")).cold_start
        v2 = fn.publish()
        assert v2.version == "2" and v2.config.memory_mb == 1024
        # Reserved concurrency is the function's, across $LATEST and its versions.
        launcher.hold()
        calls = [asyncio.create_task(platform.invoke(name, b"{}")) for name in ("f", "f:1")]
        await launcher.wait_in_flight(2)
        with pytest.raises(Throttled):
            await platform.invoke("f:2", b"{}")
        launcher.release()
        await asyncio.gather(*calls)

    on_platform(test)
