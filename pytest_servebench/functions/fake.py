"""A launcher whose sandboxes are objects in the platform's own event loop: no emulator, no
process, no container. Each answers invocations as scripted (a duration, an init duration, a
body, an error) and prints the emulator's phase records for them, so the platform bills and
reports them as it would real ones; ``hold`` keeps invocations in flight until the test
releases them, all at once or sandbox by sandbox. The platform's rules (``functions.platform``)
get fast, deterministic tests this way.

Each fake sandbox still listens on a loopback port of the platform's loop, since the platform
speaks the emulator's HTTP invoke API to every sandbox.

    launcher = FakeLauncher(Scripted(duration_ms=120, init_ms=800))
    platform = FunctionPlatform(launcher)
    fn = await platform.deploy(FunctionConfig("f", reserved_concurrency=2))
    launcher.hold()
    calls = [asyncio.create_task(fn.invoke(b"{}")) for _ in range(2)]
    await launcher.wait_in_flight(2)      # both sandboxes busy: a third call is throttled
    launcher.release()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..waiting import wait_for_async
from .sandbox import ERROR_MARK, SandboxSpec

__all__ = ["FakeLauncher", "FakeSandbox", "Scripted"]


@dataclass(frozen=True, slots=True)
class Scripted:
    """What a fake sandbox does with one invocation."""

    duration_ms: float = 10.0  # the handler's duration, as the emulator reports it
    init_ms: float = 100.0  # the init phase, reported on a sandbox's first invocation only
    body: bytes = b'{"ok": true}'
    error: bool = False  # the handler raised: an Unhandled function error
    memory_used_mb: float = 64.0


Script = Callable[[SandboxSpec, bytes], Scripted]


def _rapid(text: str) -> str:
    """A line as the emulator's runtime API (rapid) prints it."""
    return time.strftime("%d %b %Y %H:%M:%S,000 [INFO] (rapid) ", time.gmtime()) + text


@dataclass
class Invoked:
    """One invocation a fake sandbox answered."""

    sandbox_id: str
    function: str
    event: bytes
    cold: bool


class FakeSandbox:
    """One sandbox: answers the emulator's invoke path on a loopback port of the loop."""

    def __init__(self, spec: SandboxSpec, launcher: FakeLauncher) -> None:
        self.spec, self.launcher = spec, launcher
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = int(self._sock.getsockname()[1])
        self._on_line: Callable[[str], None] = lambda line: None
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.invocations = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.stopped = False
        self._memory_mb: float | None = None
        self.gate = asyncio.Event()  # open unless the launcher holds invocations
        if not launcher.holding:
            self.gate.set()

    @property
    def invoke_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def attach_log(self, on_line: Callable[[str], None]) -> None:
        self._on_line = on_line

    async def wait_ready(self, timeout_s: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._serve, sock=self._sock)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await self._answer(await reader.readexactly(length))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                await writer.drain()
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(self, event: bytes) -> bytes:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.launcher.in_flight += 1
        try:
            await self.gate.wait()
            scripted = self.launcher.script(self.spec, event)
            cold = self.invocations == 0
            self.invocations += 1
            self.launcher.invoked.append(Invoked(self.spec.sandbox_id, self.spec.function,
                                                 event, cold))
            if cold:
                self._on_line(_rapid(f"INIT REPORT(durationMs: {scripted.init_ms:.3f})"))
            if scripted.error:
                self._on_line(ERROR_MARK)
            status = "error" if scripted.error else "success"
            self._on_line(_rapid(f"INVOKE RTDONE(status: {status}, produced bytes: "
                                 f"{len(scripted.body)}, duration: {scripted.duration_ms:f}ms)"))
            self._memory_mb = scripted.memory_used_mb
            self._on_line(f"REPORT RequestId: {self.spec.sandbox_id}")  # the record is complete
            return scripted.body
        finally:
            self.in_flight -= 1
            self.launcher.in_flight -= 1

    def alive(self) -> bool:
        return not self.stopped

    def peak_memory_mb(self) -> float | None:
        return self._memory_mb

    def oom_killed(self) -> bool:
        return False

    def stop(self) -> None:
        """Close the listener and its connections in the loop (the platform calls this from
        an executor thread); safe to call twice."""
        with self.launcher.lock:
            if self.stopped:
                return
            self.stopped = True
            self.launcher.stopped.append(self.spec.sandbox_id)

        def close() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.close()

        if self._loop is None:
            self._sock.close()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed first: so did the socket
                self._loop.call_soon_threadsafe(close)

    def describe(self) -> dict[str, Any]:
        return {"fake": self.spec.sandbox_id, "port": self.port}


class FakeLauncher:
    """Launches ``FakeSandbox``es that answer as ``answer`` says (one ``Scripted`` for every
    invocation, or a function of the sandbox's spec and the event). ``hold()`` keeps every
    invocation in flight until ``release()``; ``launched``, ``stopped`` and ``invoked`` say
    what the platform did."""

    runs_uploaded_code = False

    def __init__(self, answer: Script | Scripted = Scripted()) -> None:
        self.answer = answer
        self.launched: list[FakeSandbox] = []
        self.stopped: list[str] = []  # sandbox ids, in the order they were stopped
        self.invoked: list[Invoked] = []
        self.in_flight = 0
        self.holding = False
        self.lock = threading.Lock()

    def script(self, spec: SandboxSpec, event: bytes) -> Scripted:
        answer = self.answer
        return answer if isinstance(answer, Scripted) else answer(spec, event)

    def launch(self, spec: SandboxSpec) -> FakeSandbox:
        sandbox = FakeSandbox(spec, self)
        self.launched.append(sandbox)
        return sandbox

    def describe(self, memory_mb: int) -> dict[str, Any]:
        return {"launcher": "fake", "memory_mb": memory_mb}

    def hold(self) -> None:
        """Invocations from now on wait in their sandboxes until released (call ``hold`` and
        ``release`` in the platform's loop)."""
        self.holding = True
        for sandbox in self.launched:
            sandbox.gate.clear()

    def release(self, *sandbox_ids: str) -> None:
        """Let every held invocation finish, or only those in the sandboxes named (to choose
        the order in which sandboxes come back idle)."""
        if not sandbox_ids:
            self.holding = False
        for sandbox in self.launched:
            if not sandbox_ids or sandbox.spec.sandbox_id in sandbox_ids:
                sandbox.gate.set()

    def busy(self) -> list[str]:
        """The sandboxes with an invocation in them."""
        return [s.spec.sandbox_id for s in self.launched if s.in_flight]

    async def wait_in_flight(self, count: int, *, timeout_s: float = 10.0) -> None:
        """Return once ``count`` invocations are inside sandboxes."""
        await wait_for_async(lambda: self.in_flight >= count, timeout_s=timeout_s,
                             interval_s=0.001, what=f"{count} invocations in flight",
                             logs=lambda: f"{self.in_flight} in flight")

    def sandbox(self, sandbox_id: str) -> FakeSandbox:
        return next(s for s in self.launched if s.spec.sandbox_id == sandbox_id)

    def events(self) -> list[Any]:
        """The events the fake sandboxes answered, decoded (provisioned sandboxes' warm-ups
        included)."""
        return [json.loads(i.event or b"null") for i in self.invoked]
