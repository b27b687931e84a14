"""A small HTTP/1.1 server on loopback with known behaviour, for engine and plugin tests.

Runs its own event loop in a thread. Knobs: a fixed delay per request, a stall window (every
request that arrives inside it is held until the window ends: a GC pause or a stuck worker),
repeated with a period if asked,
an HTTP status to answer with, and closing the connection after each reply. It counts requests
and the highest number handled at once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass


@dataclass
class Behaviour:
    delay_s: float = 0.0
    status: int = 200
    stall_from_s: float | None = None  # seconds after start_clock()
    stall_for_s: float = 0.0
    stall_every_s: float | None = None  # the stall window comes back with this period
    close_after_reply: bool = False
    body: bytes = b"ok"


class LoopbackServer:
    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or Behaviour()
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.bodies: list[bytes] = []
        self._t0 = time.perf_counter()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self.port = 0
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/predict"

    def start_clock(self) -> None:
        self._t0 = time.perf_counter()

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("loopback server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length) if length else b""
                await self._respond(writer, body)
                if self.behaviour.close_after_reply:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:  # the server stopping with a request held: no traceback
            pass
        finally:
            writer.close()

    async def _respond(self, writer: asyncio.StreamWriter, body: bytes) -> None:
        b = self.behaviour
        self.requests += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.bodies.append(body)
        try:
            now = time.perf_counter() - self._t0
            stall = b.stall_from_s
            if stall is not None and b.stall_every_s and now >= stall:
                stall += (now - stall) // b.stall_every_s * b.stall_every_s
            if stall is not None and stall <= now < stall + b.stall_for_s:
                await asyncio.sleep(stall + b.stall_for_s - now)
            if b.delay_s:
                await asyncio.sleep(b.delay_s)
        finally:
            self.in_flight -= 1
        conn = b"close" if b.close_after_reply else b"keep-alive"
        writer.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n%s"
                     % (b.status, len(b.body), conn, b.body))
        await writer.drain()


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.loopback '{"delay_s": 0.001}'``: serve in a process of its own (a
    benchmark's client then has this interpreter's lock to itself), print the URL, and stop
    when standard input closes."""
    import json
    import sys
    from dataclasses import fields

    args = sys.argv[1:] if argv is None else argv
    knobs = json.loads(args[0]) if args else {}
    allowed = {f.name for f in fields(Behaviour)}
    if "body" in knobs:
        knobs["body"] = knobs["body"].encode()
    with LoopbackServer(Behaviour(**{k: v for k, v in knobs.items() if k in allowed})) as srv:
        print(srv.url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
