"""A loopback HTTP/1.1 server with a fixed service time and a fixed number of slots.

``FixedServer(service_s=S, slots=K)`` serves at most K requests at once, each for S seconds;
requests beyond K wait in one FIFO queue, so its capacity is exactly K/S requests per second and a
closed loop of c users gets min(c, K)/S. It is a raw ``asyncio.Protocol`` driven by timer
callbacks (no task per request), on its own event loop in a thread, so its own overhead stays in
the microseconds. Timers fire late (epoll waits whole milliseconds) and a busy machine can stall
the thread, so it records (in ``time.perf_counter`` seconds) when each request really held its
slot and when each connection's requests arrived: ``service_s_within`` gives the S that actually
held in a span of time, ``cycle_s_within`` the period at which each connection's user came back.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque


class _Conn(asyncio.Protocol):
    def __init__(self, server: FixedServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.busy = False  # one request at a time per connection, as HTTP/1.1 answers in order
        self.last_arrival: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self.next_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def next_request(self) -> None:
        if self.busy:
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        length = 0
        for line in bytes(self.buf[:end]).split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(self.buf) < end + 4 + length:
            return
        del self.buf[:end + 4 + length]
        self.busy = True
        now = time.perf_counter()
        if self.last_arrival is not None:
            self.server.cycles.append((self.last_arrival, now))
        self.last_arrival = now
        self.server._arrive(self)

    def reply(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(self.server._response)
        self.busy = False
        self.next_request()


class FixedServer:
    def __init__(self, service_s: float, slots: int, body: bytes = b"ok") -> None:
        self.service_s = service_s
        self.slots = slots
        self._response = (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: keep-alive"
                          b"\r\n\r\n%s" % (len(body), body))
        self._free = slots
        self._queue: deque[_Conn] = deque()
        self.services: list[tuple[float, float]] = []  # (start, end) of each slot holding
        self.cycles: list[tuple[float, float]] = []  # arrival to next arrival, per connection
        self.max_busy = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="fixed-server")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/predict"

    def service_s_within(self, start: float, end: float) -> float:
        """The service time that held in [start, end] (``perf_counter`` seconds), whatever
        stalls or late timers stretched some requests: K over it is the rate a saturated server
        gave in that span."""
        return _mean_within(self.services, start, end, self.service_s)

    def cycle_s_within(self, start: float, end: float) -> float:
        """The time from one request to the next on a connection, in [start, end]: service plus
        the client's turnaround. A closed loop pins a connection to a user, so below saturation
        each of the c users cycles at this period and the loop gets c over it."""
        return _mean_within(self.cycles, start, end, self.service_s)

    def reset(self) -> None:
        """Forget what was served (call between runs, while idle)."""
        self.services = []
        self.cycles = []
        self.max_busy = 0

    # --- inside the server's loop
    def _arrive(self, conn: _Conn) -> None:
        if self._free > 0:
            self._free -= 1
            self.max_busy = max(self.max_busy, self.slots - self._free)
            self._start(conn)
        else:
            self._queue.append(conn)

    def _start(self, conn: _Conn) -> None:
        self._loop.call_later(self.service_s, self._finish, conn, time.perf_counter())

    def _finish(self, conn: _Conn, started: float) -> None:
        self.services.append((started, time.perf_counter()))  # before a stall in the write
        conn.reply()
        if self._queue:  # the slot passes straight to the next in line
            self._start(self._queue.popleft())
        else:
            self._free += 1

    # --- lifecycle
    def __enter__(self) -> FixedServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fixed-service-time server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            self._loop.create_server(lambda: _Conn(self), "127.0.0.1", 0, backlog=1024))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._loop.close()


def _mean_within(spans: list[tuple[float, float]], start: float, end: float,
                 default: float) -> float:
    """Mean length of the spans in [start, end], each weighted by the fraction of it inside:
    time covered there over the number of spans that covered it."""
    covered = count = 0.0
    for s, e in list(spans):
        inside = min(e, end) - max(s, start)
        if inside > 0 and e > s:
            covered += inside
            count += inside / (e - s)
    return covered / count if count else default
