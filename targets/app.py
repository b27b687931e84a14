"""The HTTP front door: an ASGI app for uvicorn.

``POST /predict`` takes raw image bytes, JSON (``image_b64`` or ``text``) or ``text/plain`` and
answers the same JSON as the Lambda handler; bad input is a 4xx with ``{"error", "status",
"message"}``. ``GET /health`` answers 200 once the model is loaded (the app loads it at startup).

SageMaker's container contract is the same two doors under its names: an endpoint's host asks
``GET /ping`` (``/health``) and sends ``InvokeEndpoint``'s body to ``POST /invocations``
(``/predict``: the same answers, errors and limits). The image's ``serve`` program starts the app
as SageMaker runs it (``docker run IMAGE serve``: port 8080 on every interface of the
container); ``targets/images/Dockerfile`` says how.

Time per connection is bounded: a request's body must arrive within ``SERVEBENCH_BODY_TIMEOUT_S``
(30 s; else 408 and the connection closes), and under ``servebench serve`` its request line and
headers within ``SERVEBENCH_HEADER_TIMEOUT_S`` (10 s) of the connection opening or the previous
response (:class:`BoundedHttpProtocol`; uvicorn alone has no such deadline).

Run it with ``servebench serve TARGET --port P`` or
``SERVEBENCH_TARGET=mobilenet_v2 uvicorn --factory targets.app:create_app
--http targets.app:BoundedHttpProtocol``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .core import BadInput, Core, from_http, load_core
from .core.heap import return_large_frees_to_os
from .core.inputs import Limits, check_size
from .core.runtime import default_decode_slots

log = logging.getLogger("servebench.target")

DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_BODY_TIMEOUT_S = 30.0
# Each door under its own name and SageMaker's (its hosts ping and invoke these).
PREDICT_PATHS = frozenset({"/predict", "/invocations"})
HEALTH_PATHS = frozenset({"/health", "/ping"})


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    value = float(raw) if raw else default
    if not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {raw!r}")
    return value


def header_timeout_s() -> float:
    return _env_seconds("SERVEBENCH_HEADER_TIMEOUT_S", DEFAULT_HEADER_TIMEOUT_S)


def body_timeout_s() -> float:
    return _env_seconds("SERVEBENCH_BODY_TIMEOUT_S", DEFAULT_BODY_TIMEOUT_S)


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for each request's head.

    uvicorn arms no timer on a new connection and restarts its keep-alive timer on every byte
    received, so a client that sends one header byte a second holds a connection, and its
    buffers, for ever (slowloris). Here the request line and headers must be complete within
    ``SERVEBENCH_HEADER_TIMEOUT_S`` of the connection opening or of the previous response;
    otherwise the connection is closed (with a 408 if a request had begun). The body has its
    own deadline in the app."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timeout_s = header_timeout_s()
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_begun = False

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_begun = False
        self._head_timer = self.loop.call_later(self._head_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        log.debug("closing a connection whose request head took over %.1f s",
                  self._head_timeout_s)
        if self._head_begun:
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n"
                                 b"connection: close\r\n\r\n")
        self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_begun = True

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next request's head starts its clock now, unless a pipelined one already runs.
        if not self.transport.is_closing() and (self.cycle is None
                                                or self.cycle.response_complete):
            self._arm_head_timer()


Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _Disconnected(Exception):
    """The client went away before its request was read: nobody to answer."""


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _read_body(scope: Scope, receive: Receive, limits: Limits, timeout_s: float) -> bytes:
    """The body, refused early (413) when its length or its stream passes the limit, and 408
    when it takes longer than ``timeout_s`` to arrive."""
    declared = _header(scope, b"content-length")
    if declared is not None:
        try:
            n = int(declared)
        except ValueError:
            raise BadInput(400, f"bad Content-Length {declared[:40]!r}") from None
        check_size(n, limits)
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _Disconnected
                chunk = message.get("body", b"")
                if chunk:
                    size += len(chunk)
                    check_size(size, limits)  # a chunked body stops here, not at its end
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        raise BadInput(408, f"request body not received within {timeout_s:g} s") from None
    return b"".join(chunks)  # one chunk comes back as it is, not copied


def _answer(core: Core, body: bytes, content_type: str | None) -> dict[str, Any]:
    """Parse and predict in one trip to the thread pool: a JSON body's parsing stays off the
    event loop, and a request crosses threads once each way."""
    return core.predict(from_http(body, content_type, core.limits))


async def _respond(send: Send, status: int, payload: dict[str, Any], *,
                   close: bool = False, allow: bytes | None = None) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    if allow:
        headers.append((b"allow", allow))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _error(status: int, error: str, message: str) -> dict[str, Any]:
    return {"error": error, "status": status, "message": message}


class TargetApp:
    """The front door as a plain ASGI app: ``POST /predict``, ``GET /health`` (and SageMaker's
    names for them, ``POST /invocations`` and ``GET /ping``), and a lifespan that loads the
    core.

    No framework in between: routing four paths needs none, and the event loop shares two cores
    with decoding and inference, so each request's Python on the loop is kept to its parsing
    by uvicorn, one body read and one response (benchmarks/README.md measures it). Requests run
    in a pool of ``slots`` + decode slots threads: enough for every inference slot to be busy
    while the next requests decode, and no more (anyio's pool would start up to 40)."""

    def __init__(self, name: str, *, threads: int | None, body_timeout_s: float) -> None:
        self.name, self.threads, self.body_timeout_s = name, threads, body_timeout_s
        self.core: Core | None = None
        self._pool: ThreadPoolExecutor | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("loading %s failed", self.name)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._pool is not None:
                    self._pool.shutdown(wait=False, cancel_futures=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        return_large_frees_to_os()
        loader = ThreadPoolExecutor(1, thread_name_prefix="servebench-load")
        try:
            core = await asyncio.get_running_loop().run_in_executor(
                loader, functools.partial(load_core, self.name, threads=self.threads))
        finally:
            loader.shutdown(wait=False)
        self._pool = ThreadPoolExecutor(core.slots + default_decode_slots(),
                                        thread_name_prefix="servebench-predict")
        self.core = core

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        if path in PREDICT_PATHS:
            if method != "POST":
                await _respond(send, 405, _error(405, "MethodNotAllowed", f"POST {path}"),
                               allow=b"POST")
                return
            await self._predict(scope, receive, send)
        elif path in HEALTH_PATHS:
            if method not in ("GET", "HEAD"):
                await _respond(send, 405, _error(405, "MethodNotAllowed", f"GET {path}"),
                               allow=b"GET, HEAD")
            elif self.core is None:
                await _respond(send, 503, {"status": "loading", "target": self.name})
            else:
                await _respond(send, 200, {"status": "ok", **self.core.describe(),
                                           "init_timings_s": self.core.init_timings})
        else:
            await _respond(send, 404, _error(
                404, "NotFound", "POST /predict or GET /health (SageMaker: POST /invocations "
                                 "or GET /ping)"))

    async def _predict(self, scope: Scope, receive: Receive, send: Send) -> None:
        core, pool = self.core, self._pool
        if core is None or pool is None:
            await _respond(send, 503, _error(503, "Loading", f"{self.name} is loading"))
            return
        try:
            body = await _read_body(scope, receive, core.limits, self.body_timeout_s)
            answer = await asyncio.get_running_loop().run_in_executor(
                pool, _answer, core, body, _header(scope, b"content-type"))
        except BadInput as exc:
            # A slow client is told once, then let go: its body may still be arriving.
            await _respond(send, exc.status, exc.to_dict(), close=exc.status == 408)
            return
        except _Disconnected:  # nobody to answer
            return
        except Exception:  # a bug: log it here, keep serving, tell the client no internals
            log.exception("predict failed")
            await _respond(send, 500, _error(500, "InternalError",
                                             "the target failed on this request (see its log)"))
            return
        await _respond(send, 200, answer)


def create_app(target: str | None = None, *, threads: int | None = None,
               body_timeout: float | None = None) -> TargetApp:
    name = target or os.environ.get("SERVEBENCH_TARGET")
    if not name:
        raise RuntimeError("set SERVEBENCH_TARGET (or pass target=) to the target to serve")
    return TargetApp(name, threads=threads,
                     body_timeout_s=body_timeout if body_timeout is not None
                     else body_timeout_s())
