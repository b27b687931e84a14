"""The HTTP front door: an ASGI app (Starlette) for uvicorn.

``POST /predict`` takes raw image bytes, JSON (``image_b64`` or ``text``) or ``text/plain`` and
answers the same JSON as the Lambda handler; bad input is a 4xx with ``{"error", "status",
"message"}``. ``GET /health`` answers 200 once the model is loaded (the app loads it at startup).

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
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .core import BadInput, Core, from_http, load_core
from .core.heap import return_large_frees_to_os
from .core.inputs import Limits, check_size

log = logging.getLogger("servebench.target")

DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_BODY_TIMEOUT_S = 30.0


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


def _json(status: int, payload: dict[str, Any], *,
          headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload), status_code=status, media_type="application/json",
                    headers=headers)


async def _read_body(request: Request, limits: Limits, timeout_s: float) -> bytes:
    """The body, refused early (413) when its length or its stream passes the limit, and 408
    when it takes longer than ``timeout_s`` to arrive."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            n = int(declared)
        except ValueError:
            raise BadInput(400, f"bad Content-Length {declared[:40]!r}") from None
        check_size(n, limits)
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                check_size(size, limits)  # a chunked body stops here, not at its end
                chunks.append(chunk)
    except TimeoutError:
        raise BadInput(408, f"request body not received within {timeout_s:g} s") from None
    return b"".join(chunks)


def _answer(core: Core, body: bytes, content_type: str | None) -> dict[str, Any]:
    """Parse and predict in one trip to the thread pool: a JSON body's parsing stays off the
    event loop, and a request crosses threads once each way."""
    return core.predict(from_http(body, content_type, core.limits))


def create_app(target: str | None = None, *, threads: int | None = None,
               body_timeout: float | None = None) -> Starlette:
    name = target or os.environ.get("SERVEBENCH_TARGET")
    if not name:
        raise RuntimeError("set SERVEBENCH_TARGET (or pass target=) to the target to serve")
    timeout_s = body_timeout if body_timeout is not None else body_timeout_s()
    state: dict[str, Core] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        return_large_frees_to_os()
        state["core"] = await run_in_threadpool(load_core, name, threads=threads)
        yield

    async def predict(request: Request) -> Response:
        core = state["core"]
        try:
            body = await _read_body(request, core.limits, timeout_s)
            answer = await run_in_threadpool(_answer, core, body,
                                             request.headers.get("content-type"))
        except BadInput as exc:
            # A slow client is told once, then let go: its body may still be arriving.
            close = {"connection": "close"} if exc.status == 408 else None
            return _json(exc.status, exc.to_dict(), headers=close)
        except ClientDisconnect:  # nobody to answer; uvicorn drops the response
            return Response(status_code=499)
        except Exception:  # a bug: log it here, keep serving, tell the client no internals
            log.exception("predict failed")
            return _json(500, {"error": "InternalError", "status": 500,
                               "message": "the target failed on this request (see its log)"})
        return _json(200, answer)

    async def health(request: Request) -> Response:
        core = state.get("core")
        if core is None:
            return _json(503, {"status": "loading", "target": name})
        return _json(200, {"status": "ok", **core.describe(), "init_timings_s": core.init_timings})

    return Starlette(routes=[Route("/predict", predict, methods=["POST"]),
                             Route("/health", health, methods=["GET"])], lifespan=lifespan)
