"""Functions through the Locust driver: Lambda's Invoke API on the local platform (real
emulator sandboxes), SigV4-signed, LogType=Tail, each REPORT line read into its reply by the
workers' gevent client as the in-process engine's InvokeClient does."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_servebench.fixture import Servebench
from pytest_servebench.functions.client import FunctionTarget
from pytest_servebench.locust_driver import run_locust_result
from pytest_servebench.settings import Settings
from pytest_servebench.target import Payload
from pytest_servebench.workloads import ClosedLoop, OpenLoop

from ..functions.conftest import config

# find_spec, not importorskip: importing locust monkey-patches this whole process with gevent.
pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("locust") is None,
                       reason="the Locust driver needs locust (the [locust] extra)"),
    pytest.mark.skipif(importlib.util.find_spec("awslambdaric") is None,
                       reason="the local Lambda platform needs [functions]"),
]

EVENT = Payload(json.dumps({"n": 1}).encode(), "application/json")


@pytest.fixture(scope="module")
def platform() -> Iterator[Any]:
    from pytest_servebench.backends.local.functions import ProcessLauncher
    from pytest_servebench.backends.local.processes import new_owner
    from pytest_servebench.backends.local.shaping import Shaper
    from pytest_servebench.functions.api import PlatformServer

    owner, shaper = new_owner(), Shaper()
    with PlatformServer(lambda: ProcessLauncher(owner=owner, shaper=shaper),
                        reap_interval_s=0.1) as srv:
        yield srv


def _target(platform: Any, name: str, *, signed: bool = True) -> FunctionTarget:
    return FunctionTarget(platform.endpoint_url, name, name=f"lambda:{name}",
                          profile={"platform": "lambda", "memory_mb": 256},
                          credentials=platform.credentials if signed else None)


def test_a_function_runs_on_the_workers_with_its_cold_starts_and_billing(
        platform: Any) -> None:
    platform.deploy(config("drv-echo", memory_mb=256))
    target = _target(platform, "drv-echo")
    bench = Servebench(target=target, settings=Settings(driver="locust", workers=2,
                                                        timeout_s=60))
    result = bench.run(ClosedLoop(concurrency=2, requests=40), payload=EVENT)
    assert result.count == 40 and result.success_ratio == 1.0, result.errors_text()
    assert result.records is not None and len(result.records) == 40
    replies = [r.reply for r in result.records]
    # two users on two workers: two sandboxes, each cold once, warm after
    assert result.cold_starts is not None and result.cold_starts.count == 2
    assert result.cold_starts.warm_count == 38
    assert len({r.sandbox_id for r in replies}) == 2
    assert all(r.billed_duration_s is not None and r.duration_s is not None for r in replies)
    assert result.cold_starts.init_duration is not None
    assert result.cold_starts.init_duration.p50.value > 0
    assert len(result.billed_durations_s) == 40
    assert result.target_profile["function"] == "drv-echo"


def test_a_function_read_from_tallies_keeps_its_cold_starts_and_billing(
        platform: Any) -> None:
    platform.deploy(config("drv-echo-open", memory_mb=256))
    target = _target(platform, "drv-echo-open")
    workload = OpenLoop(rate=20, duration=2, seed=1)
    n = len(workload.schedule())
    result = run_locust_result(target, workload, [EVENT], workers=2, timeout_s=60,
                               time_limit_s=120)
    assert result.records == () and result.count == n, result.errors_text()
    assert result.success_ratio == 1.0, result.errors_text()
    cold = result.cold_starts
    assert cold is not None and cold.count + cold.warm_count == n
    # arrivals during the first cold start find no idle sandbox and start their own
    assert cold.count >= 1 and cold.warm_count >= n // 2
    assert cold.init_duration is not None and cold.init_duration.n == cold.count
    assert len(result.billed_durations_s) == n
    assert all(b > 0 for b in result.billed_durations_s)


def test_an_unsigned_invoke_is_refused_by_the_platform(platform: Any) -> None:
    platform.deploy(config("drv-unsigned", memory_mb=128))
    result = run_locust_result(_target(platform, "drv-unsigned", signed=False),
                               ClosedLoop(concurrency=1, requests=3), [EVENT], workers=1,
                               timeout_s=30, time_limit_s=60)
    assert result.success_ratio == 0.0 and set(result.errors) == {"http_403"}
