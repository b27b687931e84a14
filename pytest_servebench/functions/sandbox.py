"""One execution environment: the Runtime Interface Emulator with the function's runtime inside,
one invocation at a time, as on Lambda.

The emulator prints its own ``REPORT`` line, but its ``Init Duration`` and ``Max Memory Used``
are placeholders; the platform reads the emulator's phase records (``INIT REPORT``, ``INVOKE
RTDONE``) and the sandbox's memory peak and writes a REPORT line with AWS's semantics itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..http_client import HttpClient
from ..target import Payload
from .report import InvocationReport, billed_ms

RIE_INVOKE_PATH = "/2015-03-31/functions/function/invocations"
_RAPID = re.compile(r"^\d{2} \w{3} \d{4} [\d:,]+ \[(\w+)\] \(rapid\) (.*)$")
_INIT_REPORT = re.compile(r"INIT REPORT\(durationMs: ([0-9.]+)\)")
_RTDONE = re.compile(r"INVOKE RTDONE\(status: (\w+).*duration: ([0-9.]+)ms\)")
_ERROR_POST = re.compile(r"API request - POST /2018-06-01/runtime/invocation/[^/]+/error")
_INIT_ERROR = re.compile(r"API request - POST /2018-06-01/runtime/init/error")
_RESET = re.compile(r"Reset initiated: (\w+)")
_REPORT_WAIT_S = 2.0
ERROR_MARK = "SERVEBENCH-FUNCTION-ERROR"  # printed by targets.bootstrap
INIT_LIMIT_S = 10.0


@dataclass(frozen=True, slots=True)
class SandboxSpec:
    """What a launcher needs to start one sandbox."""

    sandbox_id: str
    function: str
    handler: str
    memory_mb: int
    timeout_s: float
    environment: dict[str, str]
    # An uploaded package's folder: the sandbox's task root and working directory, first on
    # its module path. None: the installed repo's code (``targets``) runs.
    task_root: str | None = None


class LaunchedSandbox(Protocol):
    """A started emulator, wherever it runs (process, container)."""

    @property
    def invoke_url(self) -> str: ...

    def attach_log(self, on_line: Callable[[str], None]) -> None:
        """Feed each line the emulator and the runtime print to ``on_line`` (in the loop)."""
        ...

    async def wait_ready(self, timeout_s: float) -> None:
        """Return when the emulator accepts invocations; raise with its log otherwise."""
        ...

    def alive(self) -> bool: ...

    def peak_memory_mb(self) -> float | None: ...

    def oom_killed(self) -> bool: ...

    def stop(self) -> None:
        """Stop everything the sandbox started (blocking; run in an executor)."""
        ...

    def describe(self) -> dict[str, Any]: ...


def keep_recent(recent: list[str], on_line: Callable[[str], None],
                limit: int = 200) -> Callable[[str], None]:
    """``on_line``, also keeping the last lines in ``recent`` (for a failed start's message)."""

    def keep(line: str) -> None:
        recent.append(line)
        if len(recent) > limit:
            del recent[:limit // 2]
        on_line(line)

    return keep


class Launcher(Protocol):
    """Starts sandboxes; the local backend runs processes, the container backend containers.

    A launcher that can run an uploaded package (a spec with a ``task_root``) says so with a
    true ``runs_uploaded_code`` attribute; the control plane refuses CreateFunction on a
    platform whose launcher does not."""

    def launch(self, spec: SandboxSpec) -> LaunchedSandbox: ...

    def describe(self, memory_mb: int) -> dict[str, Any]:
        """What a function of this memory size really gets here (CPU, memory cap, shaping)."""
        ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """One invocation as the platform saw it."""

    body: bytes
    report: InvocationReport
    log: str
    function_error: str | None
    sandbox_id: str
    init_phases: dict[str, float] | None = None


@dataclass
class _Record:
    lines: list[str] = field(default_factory=list)
    init_ms: float | None = None
    duration_ms: float | None = None
    errored: bool = False
    reset: str | None = None  # the emulator reset the sandbox (a timeout, a crashed runtime)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Sandbox:
    """Platform-side state of one launched sandbox."""

    def __init__(self, spec: SandboxSpec, launched: LaunchedSandbox, *, revision: int,
                 provisioned: bool = False) -> None:
        self.spec, self.launched = spec, launched
        self.id = spec.sandbox_id
        self.revision, self.provisioned = revision, provisioned
        self.created = time.monotonic()
        self.last_used = self.created
        self.initialized = False
        self.broken = False  # timed out or crashed: never handed another invocation
        self.start_s = 0.0
        self._record: _Record | None = None
        self._client: HttpClient | None = None
        launched.attach_log(self._on_line)

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex[:16]

    async def start(self, timeout_s: float) -> None:
        t = time.perf_counter()
        await self.launched.wait_ready(timeout_s)
        self.start_s = time.perf_counter() - t
        self._client = HttpClient(self.launched.invoke_url + RIE_INVOKE_PATH, capture_body=True)

    def _on_line(self, line: str) -> None:
        rec = self._record
        m = _RAPID.match(line)
        if m is None:
            if line.startswith("REPORT RequestId:"):  # the emulator's own, placeholder figures
                if rec is not None:
                    rec.done.set()
                return
            if line.startswith(("START RequestId:", "END RequestId:")):
                return  # the platform writes these with its own request id
            if line.startswith(ERROR_MARK):  # targets.bootstrap: the runtime posted an error
                if rec is not None:
                    rec.errored = True
                return
            if rec is not None and len(rec.lines) < 2000:
                rec.lines.append(line)
            return
        if rec is None:
            return
        text = m.group(2)
        if (r := _INIT_REPORT.search(text)) is not None:
            rec.init_ms = float(r.group(1))
        elif (r := _RTDONE.search(text)) is not None:
            rec.duration_ms = float(r.group(2))
            if r.group(1) != "success":
                rec.errored = True
        elif _ERROR_POST.search(text) or _INIT_ERROR.search(text):
            rec.errored = True
        elif (r := _RESET.search(text)) is not None:
            rec.reset, rec.errored = r.group(1), True

    async def invoke(self, event: bytes, *, request_id: str) -> Outcome:
        """Run one invocation; the caller holds this sandbox for its duration."""
        assert self._client is not None, "start() the sandbox first"
        rec = self._record = _Record()
        cold = not self.initialized
        sent_unix = time.time()
        t0 = time.perf_counter()
        # The function's timeout covers the handler; a cold call first runs the init phase,
        # which Lambda bounds separately (10 s for on-demand functions).
        # The emulator enforces the function's timeout itself; this is the backstop.
        limit_s = self.spec.timeout_s + (INIT_LIMIT_S if cold else 0.0) + 5.0
        reply = await self._client.send(Payload(event, "application/json"), timeout_s=limit_s)
        wall_ms = (time.perf_counter() - t0) * 1000
        if reply.ok:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(rec.done.wait(), _REPORT_WAIT_S)
        self._record = None
        self.last_used = time.monotonic()
        # After a reset the emulator runs the init phase again on the next call, as Lambda does.
        self.initialized = rec.reset is None
        body = reply.extra.get("body", b"") if reply.ok else b""
        function_error: str | None = None
        status = error_type = None
        if reply.ok and rec.reset == "Timeout":
            function_error, status, error_type = "Unhandled", "timeout", "Sandbox.Timedout"
            message = (f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime())}Z {request_id} "
                       f"Task timed out after {self.spec.timeout_s:.2f} seconds")
            body = json.dumps({"errorType": error_type, "errorMessage": message}).encode()
            rec.lines.append(message)
        elif not reply.ok:
            self.broken = True
            function_error, status = "Unhandled", "error"
            if reply.error == "timeout":
                status, error_type = "timeout", "Sandbox.Timedout"
                message = f"Task timed out after {self.spec.timeout_s:.2f} seconds"
            elif self.launched.oom_killed():
                error_type = "Runtime.OutOfMemory"
                message = (f"RequestId: {request_id} Error: Runtime exited with error: signal: "
                           f"killed (the sandbox passed its {self.spec.memory_mb} MB)")
            else:
                error_type = "Runtime.ExitError"
                message = (f"RequestId: {request_id} Error: Runtime exited: "
                           f"{reply.detail or reply.error}")
            body = json.dumps({"errorType": error_type, "errorMessage": message}).encode()
            rec.lines.append(f"{request_id} {error_type}: {message}")
        elif rec.errored:
            function_error = "Unhandled"
        duration_ms = rec.duration_ms if rec.duration_ms is not None else wall_ms
        init_ms = rec.init_ms if cold else None
        peak = self.launched.peak_memory_mb()
        report = InvocationReport(
            request_id=request_id, duration_ms=duration_ms,
            billed_duration_ms=billed_ms(duration_ms, init_ms),
            memory_size_mb=self.spec.memory_mb,
            max_memory_used_mb=round(peak) if peak is not None else 0,
            init_duration_ms=init_ms, status=status, error_type=error_type,
        )
        log = "\n".join([f"START RequestId: {request_id} Version: $LATEST", *rec.lines,
                         f"END RequestId: {request_id}", report.line(), ""])
        phases = self._phases(body, sent_unix) if cold and init_ms is not None else None
        return Outcome(body=body, report=report, log=log, function_error=function_error,
                       sandbox_id=self.id, init_phases=phases)

    def _phases(self, body: bytes, sent_unix: float) -> dict[str, float]:
        """Study 004's cold-start decomposition: sandbox start, runtime start, runtime client,
        library import, model load, first inference (seconds)."""
        phases: dict[str, float] = {"sandbox_start_s": self.start_s}
        timings = _init_timings(body)
        if timings is None:
            return phases
        started = timings.get("runtime_started_unix")
        if started is not None:
            phases["runtime_start_s"] = max(0.0, started - sent_unix)
        for key in ("runtime_client_s", "locate_s", "storage_import_s", "import_s",
                    "download_s", "download_wait_s", "model_load_s", "first_inference_s",
                    "handler_init_s", "parallel"):
            if key in timings:
                phases[key] = timings[key]
        return phases

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        await asyncio.get_running_loop().run_in_executor(None, self.launched.stop)


def _init_timings(body: bytes) -> dict[str, float] | None:
    """``init_timings_s`` from a handler answer, direct or inside a proxy response."""
    if b"init_timings_s" not in body:
        return None
    try:
        doc = json.loads(body)
        if isinstance(doc, dict) and "init_timings_s" not in doc and isinstance(
                doc.get("body"), str):
            doc = json.loads(doc["body"])
        timings = doc.get("init_timings_s") if isinstance(doc, dict) else None
    except (ValueError, TypeError):
        return None
    return timings if isinstance(timings, dict) else None
