"""The Lambda front door: ``targets.handler.handler(event, context)``.

Set ``SERVEBENCH_TARGET`` to the target's name (and ``SERVEBENCH_MODEL_PATH`` in a function
package). The model loads during the function's init phase (module import), as Lambda best practice
has it, so ``Init Duration`` carries the load and warm invocations do not.

Events: a direct invoke with ``{"image_b64": ...}`` or ``{"text": ...}``, an S3 notification event
(``Records[].s3``: each object is read from S3 and its answer written back as
``results/<key>.json``, study 001's object-storage path), or an API Gateway proxy event
(REST or HTTP API) whose body carries raw bytes (``isBase64Encoded``), JSON or text. Proxy
events get a proxy response (``statusCode``, ``headers``, ``body``); bad input there is a 4xx
response. Bad input in a direct invoke raises :class:`BadInput`, which Lambda returns as an error
object (``errorType: "BadInput"``, ``errorMessage: "400: ..."``); any other error type is a bug.

The handler writes nothing outside /tmp (study 000's read-only file system lesson): libraries that
cache under $HOME are pointed at /tmp before they are imported.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

_INIT_STARTED = time.perf_counter()
_INIT_STARTED_UNIX = time.time()
_TMP = tempfile.gettempdir()
for _var, _sub in (("TORCH_HOME", "torch"), ("XDG_CACHE_HOME", "cache"),
                   ("MPLCONFIGDIR", "matplotlib"), ("JOBLIB_TEMP_FOLDER", "joblib")):
    os.environ.setdefault(_var, os.path.join(_TMP, _sub))
os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")

from .core import BadInput as _CoreBadInput  # noqa: E402
from .core import Core, from_event  # noqa: E402
from .core.inputs import Limits  # noqa: E402


class BadInput(Exception):
    """Raised for bad input in a direct invoke; the message starts with the HTTP-style status."""


_core: Core | None = None
_init: dict[str, float] | None = None


def init(target: str | None = None) -> Core:
    """Load the core (at import when ``SERVEBENCH_TARGET`` is set; else on first use)."""
    global _core, _init
    if _core is None:
        from .core import load_core

        name = target or os.environ.get("SERVEBENCH_TARGET")
        if not name:
            raise RuntimeError("set SERVEBENCH_TARGET to the target this function serves")
        _core = load_core(name)
        _init = {**_core.init_timings, "handler_init_s": time.perf_counter() - _INIT_STARTED,
                 "handler_import_started_unix": _INIT_STARTED_UNIX}
        runtime_started = os.environ.get("SERVEBENCH_RUNTIME_STARTED_UNIX")
        if runtime_started:  # set by targets.bootstrap: the runtime client's own start-up
            _init["runtime_client_s"] = _INIT_STARTED_UNIX - float(runtime_started)
            _init["runtime_started_unix"] = float(runtime_started)
    return _core


if os.environ.get("SERVEBENCH_TARGET"):
    init()


def _proxy(status: int, payload: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"},
            "body": json.dumps(payload), "isBase64Encoded": False}


WARMUP_EVENT = {"servebench": "warmup"}
_s3: Any = None


def s3_objects(event: Any) -> list[tuple[str, str]] | None:
    """(bucket, key) of each object in an S3 notification event, or None for other events."""
    if not isinstance(event, dict) or not isinstance(event.get("Records"), list):
        return None
    out = []
    for rec in event["Records"]:
        try:
            out.append((str(rec["s3"]["bucket"]["name"]), str(rec["s3"]["object"]["key"])))
        except (KeyError, TypeError):
            raise BadInput("400: an S3 event record needs s3.bucket.name and s3.object.key") \
                from None
    return out


def s3_client() -> Any:
    """One boto3 S3 client per sandbox, made on first use (boto3's own endpoint settings,
    e.g. ``AWS_ENDPOINT_URL_S3`` for a local S3)."""
    global _s3
    if _s3 is None:
        import boto3

        _s3 = boto3.client("s3")
    return _s3


def answer_s3_objects(objects: list[tuple[str, str]],
                      answer: Callable[[bytes, str], bytes]) -> list[str]:
    """Study 001's object-storage path: read each object, ``answer(body, "s3://bucket/key")``
    it, write the answer back as ``results/<key>.json`` in the same bucket (or
    ``$SERVEBENCH_RESULT_BUCKET``); the written URLs."""
    from urllib.parse import unquote_plus

    s3 = s3_client()
    written = []
    for bucket, raw_key in objects:
        key = unquote_plus(raw_key)  # S3 events URL-encode keys
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            raise BadInput(f"404: no object s3://{bucket}/{key}") from None
        out_bucket = os.environ.get("SERVEBENCH_RESULT_BUCKET") or bucket
        out_key = f"results/{key}.json"
        s3.put_object(Bucket=out_bucket, Key=out_key, Body=answer(body, f"s3://{bucket}/{key}"),
                      ContentType="application/json")
        written.append(f"s3://{out_bucket}/{out_key}")
    return written


def _from_s3(core: Core, objects: list[tuple[str, str]]) -> dict[str, Any]:
    from .core import Request

    def predict(body: bytes, url: str) -> bytes:
        try:
            answer = core.predict(Request(image=body) if core.kind != "text"
                                  else Request(text=body.decode("utf-8", "replace")))
        except _CoreBadInput as exc:
            raise BadInput(f"{exc.status}: {url}: {exc.message}") from None
        return json.dumps(answer).encode()

    return {"results": answer_s3_objects(objects, predict)}


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Serve one event (see the module docstring). ``{"servebench": "warmup"}`` only runs the
    init phase: a platform sends it to get provisioned sandboxes ready."""
    global _init
    started = time.perf_counter()
    core = init()
    if event == WARMUP_EVENT:
        answer: dict[str, Any] = {"warm": True}
        if _init is not None:
            answer["init_timings_s"], _init = _init, None
        return answer
    objects = s3_objects(event)
    if objects is not None:
        answer = _from_s3(core, objects)
        answer["timings_ms"] = {"handler": round((time.perf_counter() - started) * 1000, 3)}
        if _init is not None:
            answer["init_timings_s"], _init = _init, None
        return answer
    proxy = False
    try:
        request, proxy = from_event(event, core.limits if core else Limits())
        answer = core.predict(request)
    except _CoreBadInput as exc:
        if proxy or (isinstance(event, dict) and "body" in event):
            return _proxy(exc.status, exc.to_dict())
        raise BadInput(f"{exc.status}: {exc.message}") from None
    answer["timings_ms"]["handler"] = round((time.perf_counter() - started) * 1000, 3)
    if _init is not None:  # the first invocation of this sandbox reports its init phases
        answer["init_timings_s"] = _init
        _init = None
    return _proxy(200, answer) if proxy else answer
