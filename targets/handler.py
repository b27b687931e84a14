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
object (``errorType: "BadInput"``, ``errorMessage: "400: ..."``, an empty ``stackTrace``); any
other error type is a bug.

The handler writes nothing outside /tmp (study 000's read-only file system lesson): libraries that
cache under $HOME are pointed at /tmp before they are imported.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
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
from .s3events import BadInput as BadInput  # noqa: E402 (handler.BadInput, public)
from .s3events import answer_s3_objects, s3_objects  # noqa: E402

try:  # the runtime client Lambda's Python runtimes run (and our function packages carry)
    from awslambdaric.lambda_runtime_exception import FaultException as _Fault
except ImportError:  # a caller without it (tests, another runtime) gets a plain BadInput
    _Fault = None


def bad_input(message: str) -> BadInput:
    """A :class:`BadInput` for a direct invoke: Lambda answers it as a function error with
    ``errorType: "BadInput"`` and ``errorMessage`` (``"400: ..."``) and an empty
    ``stackTrace``.

    The runtime client writes the traceback of any other exception into the error object,
    and with it our file paths; bad input is the client's error, not ours, so it is raised as
    the client's own fault type, whose error object carries the message alone."""
    if _Fault is None:
        return BadInput(message)
    return _FaultBadInput(message)


if _Fault is not None:
    class _FaultBadInput(BadInput, _Fault):  # type: ignore[misc]  # _Fault is untyped
        def __init__(self, message: str) -> None:
            BadInput.__init__(self, message)
            _Fault.__init__(self, "BadInput", message, None)

_core: Core | None = None
_init: dict[str, float] | None = None


def init(target: str | None = None) -> Core:
    """Load the core (at import when ``SERVEBENCH_TARGET`` is set; else on first use)."""
    global _core, _init
    if _core is None:
        from .core import load_core
        from .core.heap import return_large_frees_to_os

        name = target or os.environ.get("SERVEBENCH_TARGET")
        if not name:
            raise RuntimeError("set SERVEBENCH_TARGET to the target this function serves")
        return_large_frees_to_os()  # a sandbox's memory after a large image is its own again
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
def _from_s3(core: Core, objects: list[tuple[str, str]]) -> dict[str, Any]:
    from .core import Request

    def predict(body: bytes, url: str) -> bytes:
        try:
            answer = core.predict(Request(image=body) if core.kind != "text"
                                  else Request(text=body.decode("utf-8", "replace")))
        except _CoreBadInput as exc:
            raise bad_input(f"{exc.status}: {url}: {exc.message}") from None
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
    try:
        objects = s3_objects(event)
        answer = _from_s3(core, objects) if objects is not None else {}
    except BadInput as exc:  # a malformed record, a missing object, a bad image in it
        raise bad_input(str(exc)) from None
    if objects is not None:
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
        raise bad_input(f"{exc.status}: {exc.message}") from None
    answer["timings_ms"]["handler"] = round((time.perf_counter() - started) * 1000, 3)
    if _init is not None:  # the first invocation of this sandbox reports its init phases
        answer["init_timings_s"] = _init
        _init = None
    return _proxy(200, answer) if proxy else answer
