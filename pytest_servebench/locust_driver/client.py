"""The driver's HTTP client: keep-alive HTTP/1.1 on the standard library's sockets, a request
serialised once per payload, replies parsed by httptools (the C parser the in-process engine's
``http_client`` uses). In a Locust worker the sockets are gevent's (Locust monkey-patches them),
so every request of a worker shares one thread; elsewhere it is an ordinary blocking client,
which is how the tests exercise it without gevent.

Why not geventhttpclient's ``HTTPClient`` (Locust's ``FastHttpUser``): a load generator's own
cost per request is the floor of what it can measure. Measured on a 2-core machine, one request
after another to a loopback server in a process of its own (p50 of 3,900, three runs, gevent
patched): geventhttpclient 56-114 us, this client 38-72 us; spaced 3.3 ms apart, as an open
loop at 300/s sends them, this client 132-159 us and the in-process engine's asyncio client
162-242 us. ``benchmarks/bench_locust_driver.py`` compares whole runs.

It never raises for a failed request: failures come back as a ``Reply`` with the same error
kinds as the in-process engine's (``timeout``, ``connect``, ``connect_timeout``,
``connection``, ``http_<status>``).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Mapping
from typing import Any, Protocol

import httptools

from ..functions.client import event_for, invoke_route, reply_from_invoke
from ..functions.sigv4 import Credentials, payload_sha256
from ..http_client import ResponseParts, request_head
from ..target import Payload, Reply, Target

_MAX_DETAIL = 512
_RECV = 65536


class _Connection(ResponseParts):
    """One keep-alive connection and its parser; at most one request in flight."""

    def __init__(self, sock: socket.socket, *, capture_body: bool,
                 capture_headers: bool) -> None:
        self.sock = sock
        self.complete = False
        self.status = 0
        self.keep_alive = False
        self.parser = self._parts(capture_body, capture_headers)

    # httptools callbacks (the others: ResponseParts)
    def on_message_begin(self) -> None:
        self.complete = False
        super().on_message_begin()

    def on_message_complete(self) -> None:
        # read here: the parser has moved on to the next message once this returns
        self.status = int(self.parser.get_status_code())
        self.keep_alive = bool(self.parser.should_keep_alive())
        self.complete = True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class KeepAliveClient:
    """Sends ``method`` requests to one URL over a pool of keep-alive connections, which grows
    to as many as are in flight at once.

    >>> client = KeepAliveClient("http://127.0.0.1:8080/predict")  # doctest: +SKIP
    >>> client.send(Payload(b"x"), timeout_s=5).ok  # doctest: +SKIP
    True
    """

    def __init__(self, url: str, *, method: str = "POST", headers: dict[str, str] | None = None,
                 capture_body: bool = False, capture_headers: bool = False,
                 connect_timeout_s: float = 5.0) -> None:
        self.url = url
        self.host, self.port, self._ssl, self._head = request_head(
            url, method=method, headers=headers, what="the Locust driver")
        self._capture_body = capture_body
        self._capture_headers = capture_headers
        self._connect_timeout_s = connect_timeout_s
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()
        self._wire: dict[Payload, tuple[str, bytes]] = {}

    def request_bytes(self, payload: Payload, extra_head: str = "") -> bytes:
        """The request on the wire; ``extra_head``: more header lines (CRLF-separated, e.g. a
        signature). The same ``extra_head`` object as last time reuses the cached bytes."""
        cached = self._wire.get(payload)
        if cached is not None and cached[0] is extra_head:
            return cached[1]
        head = f"{self._head}\r\n{extra_head}\r\n" if extra_head else f"{self._head}\r\n"
        head += (f"Content-Type: {payload.content_type}\r\n"
                 f"Content-Length: {len(payload.body)}\r\n\r\n")
        wire = head.encode("latin-1") + payload.body
        if cached is not None or len(self._wire) < 1024:
            self._wire[payload] = (extra_head, wire)
        return wire

    def _connect(self, timeout_s: float) -> _Connection:
        sock = socket.create_connection((self.host, self.port), timeout=timeout_s)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl is not None:
                sock = self._ssl.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        conn = _Connection(sock, capture_body=self._capture_body,
                           capture_headers=self._capture_headers)
        self._all.add(conn)
        return conn

    def _discard(self, conn: _Connection) -> None:
        conn.close()
        self._all.discard(conn)

    def send(self, payload: Payload, *, timeout_s: float, extra_head: str = "") -> Reply:
        """Send one request and wait at most ``timeout_s`` (connecting included) for the
        whole reply. A kept-alive connection the server had closed is retried once on a new
        one when nothing at all came back on it (the request was never read)."""
        deadline = time.monotonic() + timeout_s
        wire = self.request_bytes(payload, extra_head)
        for attempt in (0, 1):
            reused = bool(self._idle)
            if reused:
                conn = self._idle.pop()
            else:
                left = deadline - time.monotonic()
                try:
                    conn = self._connect(min(self._connect_timeout_s, max(left, 1e-3)))
                except TimeoutError:
                    return Reply.failure("connect_timeout", f"no connection to {self.url}")
                except OSError as exc:
                    return Reply.failure("connect", f"{self.url}: {exc.strerror or exc}")
            got = 0
            try:
                conn.sock.settimeout(max(deadline - time.monotonic(), 1e-3))
                conn.sock.sendall(wire)
                while not conn.complete:
                    data = conn.sock.recv(_RECV)
                    if not data:
                        raise ConnectionError("connection closed by server")
                    got += len(data)
                    conn.parser.feed_data(data)
                    if not conn.complete:
                        conn.sock.settimeout(max(deadline - time.monotonic(), 1e-3))
            except TimeoutError:
                self._discard(conn)
                return Reply.failure("timeout", f"no reply within {timeout_s:g}s")
            except httptools.HttpParserError as exc:
                self._discard(conn)
                return Reply.failure("connection", f"bad HTTP response: {exc}")
            except OSError as exc:
                self._discard(conn)
                if reused and got == 0 and attempt == 0:
                    continue
                return Reply.failure("connection", str(exc) or type(exc).__name__)
            return self._reply(conn)
        raise AssertionError("unreachable")  # pragma: no cover

    def _reply(self, conn: _Connection) -> Reply:
        status = conn.status
        body = bytes(conn.body)
        headers = conn.headers
        conn.complete = False
        if conn.keep_alive:
            self._idle.append(conn)
        else:
            self._discard(conn)
        extra: dict[str, Any] = {"body": body} if self._capture_body else {}
        if self._capture_headers:
            extra["headers"] = headers
        if 200 <= status < 400:
            return Reply(ok=True, status=status, extra=extra)
        return Reply(ok=False, error=f"http_{status}", status=status,
                     detail=body[:_MAX_DETAIL].decode("utf-8", "replace"), extra=extra)

    @property
    def open_connections(self) -> int:
        return len(self._all)

    def close(self) -> None:
        for conn in list(self._all):
            conn.close()
        self._all.clear()
        self._idle.clear()




class Sender(Protocol):
    """What a worker sends each request through: one target, one run."""

    def send(self, payload: Payload, *, timeout_s: float) -> Reply: ...

    def close(self) -> None: ...


class InvokeSender:
    """A function behind Lambda's Invoke API, as the in-process engine's ``InvokeClient`` sends
    to it (``functions.client``): the payload's event, SigV4-signed when there are credentials,
    ``LogType=Tail``, and the reply's REPORT line read into the ``Reply``."""

    def __init__(self, endpoint_url: str, function: str, *,
                 credentials: Credentials | None = None, region: str = "us-east-1") -> None:
        url, headers, self._signer = invoke_route(endpoint_url, function,
                                                  credentials=credentials, region=region)
        self._http = KeepAliveClient(url, headers=headers, capture_body=True,
                                     capture_headers=True)
        self._events: dict[Payload, tuple[Payload, bool, str]] = {}

    def send(self, payload: Payload, *, timeout_s: float) -> Reply:
        hit = self._events.get(payload)
        if hit is None:
            event = event_for(payload)
            hit = (event, not payload.content_type.startswith("application/json"),
                   payload_sha256(event.body))
            if len(self._events) < 1024:
                self._events[payload] = hit
        event, proxied, digest = hit
        head = self._signer.header_lines(digest) if self._signer is not None else ""
        reply = self._http.send(event, timeout_s=timeout_s, extra_head=head)
        return reply_from_invoke(reply, proxied=proxied)

    def close(self) -> None:
        self._http.close()


def sender_for(spec: Mapping[str, Any]) -> Sender:
    """The sender a worker builds from the target's description (``target_spec``)."""
    if spec["kind"] == "function":
        creds = spec.get("credentials")
        return InvokeSender(str(spec["endpoint_url"]), str(spec["function"]),
                            credentials=Credentials(**creds) if creds else None,
                            region=str(spec.get("region") or "us-east-1"))
    return KeepAliveClient(str(spec["url"]), method=str(spec.get("method") or "POST"),
                           headers=dict(spec.get("headers") or {}))


def target_spec(target: Target) -> dict[str, Any]:
    """What the workers need to reach ``target``: a function behind the Invoke API
    (``endpoint_url`` and ``function``), or anything with an HTTP ``url``. Credentials travel
    with it to the workers: on loopback, or to workers elsewhere over the master's link."""
    endpoint, function = getattr(target, "endpoint_url", None), getattr(target, "function", None)
    if isinstance(endpoint, str) and isinstance(function, str):
        creds: Credentials | None = getattr(target, "credentials", None)
        return {"kind": "function", "endpoint_url": endpoint, "function": function,
                "region": str(getattr(target, "region", None) or "us-east-1"),
                "credentials": None if creds is None else {
                    "access_key_id": creds.access_key_id,
                    "secret_access_key": creds.secret_access_key,
                    "session_token": creds.session_token}}
    url = getattr(target, "url", None)
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"the locust driver sends to an HTTP URL or Lambda's Invoke API; "
                         f"{target.name} has neither")
    return {"kind": "http", "url": url, "method": str(getattr(target, "method", "POST")).upper(),
            "headers": dict(getattr(target, "headers", None) or {})}


__all__ = ["InvokeSender", "KeepAliveClient", "Sender", "sender_for", "target_spec"]
