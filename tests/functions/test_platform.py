"""The local Lambda platform's rules, on real emulator sandboxes running small handlers."""

from __future__ import annotations

import base64
import contextlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from pytest_servebench.backends.local.processes import servebench_processes
from pytest_servebench.functions.report import find_report

from .conftest import config, signed_headers


def invoke(lam: Any, name: str, event: Any = None) -> tuple[dict[str, Any], Any]:
    r = lam.invoke(FunctionName=name, Payload=json.dumps(event or {}), LogType="Tail")
    body = json.loads(r["Payload"].read())
    return r, body


def report_of(r: dict[str, Any]) -> Any:
    rep = find_report(base64.b64decode(r["LogResult"]).decode())
    assert rep is not None, "no REPORT line in the log tail"
    return rep


def test_first_call_is_cold_then_warm_on_the_same_sandbox(platform: Any, lam: Any) -> None:
    platform.deploy(config("coldwarm", memory_mb=512))
    r1, b1 = invoke(lam, "coldwarm", {"n": 1})
    r2, b2 = invoke(lam, "coldwarm", {"n": 2})
    cold, warm = report_of(r1), report_of(r2)
    assert r1["StatusCode"] == 200 and b1["event"] == {"n": 1}
    assert cold.cold_start and cold.init_duration_ms > 0
    assert not warm.cold_start and warm.init_duration_ms is None
    assert b1["sandbox"] == b2["sandbox"] != ""
    assert b1["memory_mb"] == "512" and cold.memory_size_mb == 512
    # Billed: the duration rounded up to 1 ms, plus the init phase on a cold start.
    assert warm.billed_duration_ms >= warm.duration_ms
    assert cold.billed_duration_ms >= cold.duration_ms + cold.init_duration_ms
    assert cold.max_memory_used_mb > 0
    log = base64.b64decode(r1["LogResult"]).decode()
    assert "echo {'n': 1}" in log and "(rapid)" not in log  # the handler's log, not the emulator's
    assert r1["ResponseMetadata"]["HTTPHeaders"]["x-servebench-sandbox-id"] == b1["sandbox"]


def test_sixteen_concurrent_calls_on_a_cold_function_start_sixteen_sandboxes(
        platform: Any, lam: Any) -> None:
    platform.deploy(config("burst", "sleep", memory_mb=128, keep_alive_s=1.0))
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda _: invoke(lam, "burst", {"seconds": 1.0}), range(16)))
    assert all("sandbox" in b for _, b in results), [b for _, b in results if "sandbox" not in b]
    sandboxes = {b["sandbox"] for _, b in results}
    assert len(sandboxes) == 16
    assert all(report_of(r).cold_start for r, _ in results)
    assert all(r["StatusCode"] == 200 and "FunctionError" not in r for r, _ in results)
    state = platform.state("burst")
    assert state["starts"] == 16 and state["sandboxes"] == 16
    # Past the keep-alive the reaper stops them all, processes included.
    assert platform.wait_idle("burst", timeout_s=15)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _processes_of(platform, "burst"):
        time.sleep(0.1)
    assert _processes_of(platform, "burst") == []


def _processes_of(platform: Any, function: str) -> list[int]:
    """Live emulator and runtime processes of one function."""
    return [pid for pid, env in servebench_processes().items()
            if env.get("SERVEBENCH_OWNER") == platform.owner
            and env.get("AWS_LAMBDA_FUNCTION_NAME") == function]


def test_reserved_concurrency_caps_sandboxes_and_throttles_the_rest(
        platform: Any, lam: Any) -> None:
    platform.deploy(config("capped", "sleep", memory_mb=128, reserved_concurrency=4))
    outcomes: list[str] = []

    def call(_: int) -> str:
        try:
            invoke(lam, "capped", {"seconds": 1.5})
            return "ok"
        except lam.exceptions.TooManyRequestsException as exc:
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 429
            assert exc.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
            return "throttled"

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(call, range(16)))
    assert outcomes.count("ok") == 4 and outcomes.count("throttled") == 12
    assert platform.state("capped")["starts"] == 4


def test_a_configuration_change_forces_cold_starts(platform: Any, lam: Any) -> None:
    platform.deploy(config("forced", memory_mb=256))
    invoke(lam, "forced")
    assert not report_of(invoke(lam, "forced")[0]).cold_start
    updated = lam.update_function_configuration(FunctionName="forced", MemorySize=512)
    assert updated["MemorySize"] == 512
    r, body = invoke(lam, "forced")
    assert report_of(r).cold_start and body["memory_mb"] == "512"
    platform.force_cold("forced")
    assert report_of(invoke(lam, "forced")[0]).cold_start


def test_provisioned_sandboxes_are_ready_ahead_and_outlive_keep_alive(
        platform: Any, lam: Any) -> None:
    platform.deploy(config("prov", memory_mb=128, provisioned_concurrency=2, keep_alive_s=0.2))
    assert platform.state("prov")["sandboxes"] == 2  # before any call
    r, _ = invoke(lam, "prov")
    assert not report_of(r).cold_start  # init ran ahead: no Init Duration
    time.sleep(1.0)
    assert platform.state("prov")["sandboxes"] == 2  # not reaped


def test_errors_have_lambdas_shape(platform: Any, lam: Any) -> None:
    platform.deploy(config("failing", "fail", memory_mb=128))
    r, body = invoke(lam, "failing", {"why": "test"})
    assert r["StatusCode"] == 200 and r["FunctionError"] == "Unhandled"
    assert body["errorType"] == "ValueError" and "asked to fail" in body["errorMessage"]
    assert report_of(r).duration_ms > 0
    # The sandbox survives a handled exception and serves the next call warm.
    assert not report_of(invoke(lam, "failing")[0]).cold_start
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke(FunctionName="no-such-function", Payload=b"{}")
    with pytest.raises(lam.exceptions.InvalidRequestContentException):
        lam.invoke(FunctionName="failing", Payload=b"{not json")
    with pytest.raises(lam.exceptions.RequestTooLargeException):
        lam.invoke(FunctionName="failing", Payload=b'"' + b"x" * (6 * 2**20 + 10) + b'"')
    # boto3 checks the memory range itself; a raw client meets the platform's own check.
    import requests

    url = f"{platform.endpoint_url}/2015-03-31/functions/failing/configuration"
    body = json.dumps({"MemorySize": 64}).encode()
    resp = requests.put(url, data=body, timeout=10,
                        headers=signed_headers(platform.credentials, "PUT", url, body))
    assert resp.status_code == 400
    assert resp.headers["x-amzn-ErrorType"] == "InvalidParameterValueException"
    assert "128..10240" in resp.json()["message"]


def test_a_timeout_kills_the_sandbox_and_says_so(platform: Any, lam: Any) -> None:
    platform.deploy(config("slow", "sleep", memory_mb=1769, timeout_s=1))
    r, body = invoke(lam, "slow", {"seconds": 5})
    assert r["FunctionError"] == "Unhandled" and body["errorType"] == "Sandbox.Timedout"
    rep = report_of(r)
    assert rep.status == "timeout"
    r2, _body2 = invoke(lam, "slow", {"seconds": 0.01})
    assert "FunctionError" not in r2 and report_of(r2).cold_start  # a fresh sandbox


def test_passing_the_memory_size_is_an_out_of_memory_error(platform: Any, lam: Any) -> None:
    if not platform.shaper.can_shape:
        pytest.skip(f"memory caps need writable cgroups: {platform.shaper.reason}")
    platform.deploy(config("hog", "hog", memory_mb=128, timeout_s=20))
    started = time.monotonic()
    r, body = invoke(lam, "hog", {"mb": 400})
    assert time.monotonic() - started < 20, "an out-of-memory kill must not hang"
    assert r["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.OutOfMemory", body
    assert report_of(r).error_type == "Runtime.OutOfMemory"
    ok, small = invoke(lam, "hog", {"mb": 8})
    assert "FunctionError" not in ok and small == {"held_mb": 8}


def test_async_and_dry_run_invocations(platform: Any, lam: Any) -> None:
    platform.deploy(config("async", memory_mb=128))
    assert lam.invoke(FunctionName="async", InvocationType="DryRun")["StatusCode"] == 204
    assert lam.invoke(FunctionName="async", InvocationType="Event",
                      Payload=b"{}")["StatusCode"] == 202


def test_get_configuration_and_concurrency_apis(platform: Any, lam: Any) -> None:
    platform.deploy(config("apis", memory_mb=640, timeout_s=7))
    conf = lam.get_function_configuration(FunctionName="apis")
    assert (conf["MemorySize"], conf["Timeout"], conf["FunctionName"]) == (640, 7, "apis")
    assert lam.put_function_concurrency(FunctionName="apis", ReservedConcurrentExecutions=0)[
        "ReservedConcurrentExecutions"] == 0
    with pytest.raises(lam.exceptions.TooManyRequestsException):
        lam.invoke(FunctionName="apis", Payload=b"{}")


class _SlowLaunched:
    invoke_url = "http://127.0.0.1:9"

    def __init__(self, stopped: list[str]) -> None:
        self.stopped = stopped

    def attach_log(self, on_line: Any) -> None:
        pass

    async def wait_ready(self, timeout_s: float) -> None:
        pass

    def alive(self) -> bool:
        return True

    def peak_memory_mb(self) -> float | None:
        return None

    def oom_killed(self) -> bool:
        return False

    def stop(self) -> None:
        self.stopped.append("stopped")

    def describe(self) -> dict[str, Any]:
        return {}


class _SlowLauncher:
    """A blocking launcher (as a container engine's is) that takes its time."""

    runs_uploaded_code = False

    def __init__(self) -> None:
        self.stopped: list[str] = []

    def launch(self, spec: Any) -> _SlowLaunched:
        import time

        time.sleep(0.5)
        return _SlowLaunched(self.stopped)

    def describe(self, memory_mb: int) -> dict[str, Any]:
        return {}


def test_a_launch_cancelled_midway_is_stopped_when_it_lands() -> None:
    """An invoke cancelled while its blocking launch runs in the executor must not drop the
    sandbox that launch then returns (a container nobody would stop until the run ends)."""
    import asyncio

    from pytest_servebench.functions.platform import FunctionConfig, FunctionPlatform

    launcher = _SlowLauncher()

    async def main() -> None:
        platform = FunctionPlatform(launcher, launch_in_executor=True)
        fn = await platform.deploy(FunctionConfig("slow"))
        task = asyncio.create_task(fn.invoke(b"{}"))
        await asyncio.sleep(0.1)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for _ in range(50):
            if launcher.stopped:
                break
            await asyncio.sleep(0.05)
        await platform.aclose()

    asyncio.run(main())
    assert launcher.stopped == ["stopped"]
