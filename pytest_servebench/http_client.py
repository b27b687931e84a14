"""A lean asyncio HTTP/1.1 client for the load engine.

Why not aiohttp or httpx: a load generator's own cost per request is the floor of what it can
measure, and both spend tens of microseconds per request on features a benchmark does not use.
This client keeps persistent connections, writes a pre-serialised request and parses replies with
httptools (the C parser uvicorn uses). It never raises for a failed request: every failure comes
back as a ``Reply`` with an error kind.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httptools

from .target import Payload, Reply

_MAX_DETAIL = 512


def request_head(url: str, *, method: str, headers: Mapping[str, str] | None,
                 what: str) -> tuple[str, int, ssl.SSLContext | None, str]:
    """``url``'s host, port, TLS context (https) and the request head every request to it
    starts with (request line, Host, User-Agent, ``headers``; no final CRLF), for this client
    and the Locust driver's. ``what`` names the caller in the error for a bad URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{what} needs an http:// or https:// URL, got {url!r}")
    if not parts.hostname:
        raise ValueError(f"no host in URL {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    context = ssl.create_default_context() if parts.scheme == "https" else None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    head = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc.rsplit('@', 1)[-1]}",
            "User-Agent: servebench"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return parts.hostname, port, context, "\r\n".join(head)


class ResponseParts:
    """httptools' callbacks that gather one reply's headers (when asked) and body (its first
    ``_MAX_DETAIL`` bytes unless the whole is asked): shared by this client and the Locust
    driver's; each adds its own ``on_message_complete``."""

    def _parts(self, capture_body: bool, capture_headers: bool) -> httptools.HttpResponseParser:
        """Set up the gathering and return the parser that calls it."""
        self.capture_body = capture_body
        self.body = bytearray()
        self.headers: dict[str, str] = {}
        if capture_headers:  # httptools looks for on_header once, when the parser is made
            self.on_header = self._on_header
        return httptools.HttpResponseParser(self)

    def on_message_begin(self) -> None:
        self.body.clear()
        self.headers = {}

    def _on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        if self.capture_body or len(self.body) < _MAX_DETAIL:
            self.body += body


class _Connection(ResponseParts, asyncio.Protocol):
    """One keep-alive connection; at most one request in flight."""

    def __init__(self, capture_body: bool, capture_headers: bool = False) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bool, bytes]] | None = None
        self.closed = False
        self.parser = self._parts(capture_body, capture_headers)

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionError("connection closed by server" if exc is None else str(exc)))

    # httptools callbacks (the others: ResponseParts)
    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(
                (self.parser.get_status_code(), self.parser.should_keep_alive(), bytes(self.body))
            )

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class HttpClient:
    """Sends ``POST`` (or ``method``) requests to one URL over a pool of keep-alive connections.

    The pool grows on demand: a closed loop of N clients holds N connections; an open loop holds
    as many as it has requests in flight.
    """

    def __init__(
        self,
        url: str,
        *,
        method: str = "POST",
        headers: dict[str, str] | None = None,
        capture_body: bool = False,
        capture_headers: bool = False,
        connect_timeout_s: float = 5.0,
        sign: Callable[[Payload], str] | None = None,
    ) -> None:
        """``sign``: header lines (CRLF-separated, e.g. a signature) for each request's
        payload, called per request; returning the same string object as last time for a
        payload reuses the request's cached bytes."""
        self.url = url
        self.host, self.port, self.ssl, self._head = request_head(
            url, method=method, headers=headers, what="the http target")
        self._capture_body = capture_body
        self._capture_headers = capture_headers
        self._connect_timeout_s = connect_timeout_s
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()
        self._sign = sign
        self._wire: dict[Payload, tuple[str, bytes]] = {}
        self._loop = asyncio.get_running_loop()

    def _request_bytes(self, payload: Payload) -> bytes:
        extra = self._sign(payload) if self._sign is not None else ""
        cached = self._wire.get(payload)
        if cached is not None and cached[0] is extra:
            return cached[1]
        head = f"{self._head}\r\n{extra}\r\n" if extra else f"{self._head}\r\n"
        head += (
            f"Content-Type: {payload.content_type}\r\n"
            f"Content-Length: {len(payload.body)}\r\n\r\n"
        )
        wire = head.encode("latin-1") + payload.body
        if cached is not None or len(self._wire) < 1024:
            self._wire[payload] = (extra, wire)
        return wire

    async def _connect(self) -> _Connection:
        _, conn = await asyncio.wait_for(
            self._loop.create_connection(
                lambda: _Connection(self._capture_body, self._capture_headers),
                self.host, self.port, ssl=self.ssl
            ),
            self._connect_timeout_s,
        )
        self._all.add(conn)
        return conn

    async def send(self, payload: Payload, *, timeout_s: float) -> Reply:
        conn = None
        while self._idle:
            candidate = self._idle.pop()
            if not candidate.closed:
                conn = candidate
                break
            self._all.discard(candidate)
        if conn is None:
            try:
                conn = await self._connect()
            except TimeoutError:
                return Reply.failure("connect_timeout", f"no connection to {self.url}")
            except OSError as exc:
                return Reply.failure("connect", f"{self.url}: {exc.strerror or exc}")
        assert conn.transport is not None
        waiter: asyncio.Future[tuple[int, bool, bytes]] = self._loop.create_future()
        conn.waiter = waiter
        conn.transport.write(self._request_bytes(payload))
        timer = self._loop.call_later(timeout_s, _expire, waiter)
        try:
            status, keep_alive, body = await waiter
        except TimeoutError:
            self._discard(conn)
            return Reply.failure("timeout", f"no reply within {timeout_s:g}s")
        except ConnectionError as exc:
            self._discard(conn)
            return Reply.failure("connection", str(exc))
        finally:
            timer.cancel()
        if keep_alive and not conn.closed:
            self._idle.append(conn)
        else:
            self._discard(conn)
        extra: dict[str, Any] = {"body": body} if self._capture_body else {}
        if self._capture_headers:
            extra["headers"] = conn.headers
        if 200 <= status < 400:
            return Reply(ok=True, status=status, extra=extra)
        detail = body[:_MAX_DETAIL].decode("utf-8", "replace")
        return Reply(ok=False, error=f"http_{status}", status=status, detail=detail, extra=extra)

    def _discard(self, conn: _Connection) -> None:
        conn.close()
        self._all.discard(conn)

    @property
    def open_connections(self) -> int:
        return sum(1 for c in self._all if not c.closed)

    async def aclose(self) -> None:
        for conn in list(self._all):
            conn.close()
        self._all.clear()
        self._idle.clear()
        # Let transports run their close callbacks before the loop goes away.
        await asyncio.sleep(0)


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
