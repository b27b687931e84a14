"""Study 002's hybrid front: a function that runs the light model itself and routes requests for
the heavy one to a server (``targets.router.handler``).

Set ``SERVEBENCH_TARGET`` to the light target served in the function (e.g. ``text_rf``) and
``SERVEBENCH_OFFLOAD_URL`` to the heavy target's server (``http://127.0.0.1:PORT/predict``).
Text goes to the light model; images go to the server, and the server's answer comes back with
``"routed": "server"``. The function waits for the server, and Lambda bills that wait. An S3
notification event sends each new object to the server and writes the answer back to S3
(study 001's architectures 1 and 2).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

from . import handler as local
from . import s3events
from .core import BadInput as _CoreBadInput
from .core import from_event
from .core.inputs import Limits

_LIMITS = Limits.from_env()


def _post(url: str, data: bytes) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"content-type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _offload_url() -> str:
    url = os.environ.get("SERVEBENCH_OFFLOAD_URL")
    if not url:
        raise RuntimeError("set SERVEBENCH_OFFLOAD_URL to the server the heavy model runs on")
    return url


def _s3_to_server(objects: list[tuple[str, str]]) -> dict[str, Any]:
    """Study 001's architectures 1 and 2: an upload to S3 triggers this function, which sends
    the image to the server and writes the server's answer back to S3."""

    def forward(body: bytes, url: str) -> bytes:
        status, answer = _post(_offload_url(), body)
        if status >= 400:
            raise local.bad_input(f"{status}: {url}: {answer[:200]!r}")
        return answer

    return {"results": s3events.answer_s3_objects(objects, forward), "routed": "server"}


def handler(event: Any, context: Any) -> dict[str, Any]:
    if event == local.WARMUP_EVENT:
        return local.handler(event, context)
    try:
        objects = s3events.s3_objects(event)
        if objects is not None:
            return _s3_to_server(objects)
    except s3events.BadInput as exc:  # a malformed record, a missing object
        raise local.bad_input(str(exc)) from None
    try:
        request, proxy = from_event(event, _LIMITS)
    except _CoreBadInput:
        return local.handler(event, context)  # the same 4xx answer as the plain handler
    if request.image is None:
        answer = local.handler(event, context)
        if isinstance(answer, dict) and "statusCode" not in answer:
            answer["routed"] = "function"
        return answer
    status, body = _post(_offload_url(), request.image)
    try:
        doc = json.loads(body) if body else {}
    except ValueError:  # a proxy's error page, not our server's JSON
        doc = {"error": "BadGateway", "status": status,
               "message": f"the server answered {status} with a body that is not JSON"}
    if isinstance(doc, dict):
        doc["routed"] = "server"
    if proxy:
        return {"statusCode": status, "headers": {"content-type": "application/json"},
                "body": json.dumps(doc), "isBase64Encoded": False}
    if status >= 400:
        reason = doc.get("error", doc) if isinstance(doc, dict) else doc
        raise local.bad_input(f"{status}: {reason}")
    return doc if isinstance(doc, dict) else {"answer": doc}
