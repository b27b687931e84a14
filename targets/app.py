"""The HTTP front door: an ASGI app (Starlette) for uvicorn.

``POST /predict`` takes raw image bytes, JSON (``image_b64`` or ``text``) or ``text/plain`` and
answers the same JSON as the Lambda handler; bad input is a 4xx with ``{"error", "status",
"message"}``. ``GET /health`` answers 200 once the model is loaded (the app loads it at startup).

Run it with ``servebench serve TARGET --port P`` or
``SERVEBENCH_TARGET=mobilenet_v2 uvicorn --factory targets.app:create_app``.
"""

from __future__ import annotations

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

from .core import BadInput, Core, from_http, load_core
from .core.inputs import Limits, check_size

log = logging.getLogger("servebench.target")


def _json(status: int, payload: dict[str, Any]) -> Response:
    return Response(json.dumps(payload), status_code=status, media_type="application/json")


async def _read_body(request: Request, limits: Limits) -> bytes:
    """The body, refused early (413) when its length or its stream passes the limit."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            n = int(declared)
        except ValueError:
            raise BadInput(400, f"bad Content-Length {declared!r}") from None
        check_size(n, limits)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        check_size(size, limits)
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(target: str | None = None, *, threads: int | None = None) -> Starlette:
    name = target or os.environ.get("SERVEBENCH_TARGET")
    if not name:
        raise RuntimeError("set SERVEBENCH_TARGET (or pass target=) to the target to serve")
    state: dict[str, Core] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state["core"] = await run_in_threadpool(load_core, name, threads=threads)
        yield

    async def predict(request: Request) -> Response:
        core = state["core"]
        try:
            body = await _read_body(request, core.limits)
            parsed = from_http(body, request.headers.get("content-type"), core.limits)
            answer = await run_in_threadpool(core.predict, parsed)
        except BadInput as exc:
            return _json(exc.status, exc.to_dict())
        except ClientDisconnect:
            return Response(status_code=499)
        except Exception as exc:  # a bug: say so, keep serving
            log.exception("predict failed")
            return _json(500, {"error": type(exc).__name__, "status": 500, "message": str(exc)})
        return _json(200, answer)

    async def health(request: Request) -> Response:
        core = state.get("core")
        if core is None:
            return _json(503, {"status": "loading", "target": name})
        return _json(200, {"status": "ok", **core.describe(), "init_timings_s": core.init_timings})

    return Starlette(routes=[Route("/predict", predict, methods=["POST"]),
                             Route("/health", health, methods=["GET"])], lifespan=lifespan)
