"""One request schema for both front doors, with limits and clear errors.

HTTP (``POST /predict``): raw image bytes (``image/*`` or ``application/octet-stream``), JSON
``{"image_b64": "..."}`` or ``{"text": "..."}``, or ``text/plain``.
Lambda: the same JSON as a direct-invoke event, or an API Gateway proxy event whose ``body``
carries any of the HTTP forms (``isBase64Encoded`` for bytes).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
from dataclasses import dataclass
from typing import Any

from .errors import BadInput

LAMBDA_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's synchronous invocation payload limit


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


@dataclass(frozen=True)
class Limits:
    """Input limits. Defaults: Lambda's 6 MB synchronous payload limit; 40 megapixels an image
    (a 2 MB JPEG from a phone is 12 MP) and 40 megapixels a request, all its images together
    (what bounds the memory a request can take: see targets/README.md); images at least 16 px
    a side; 20,000 characters of text."""

    max_body_bytes: int = LAMBDA_SYNC_PAYLOAD_BYTES
    max_pixels: int = 40_000_000
    min_side: int = 16
    max_text_chars: int = 20_000
    max_request_pixels: int = 40_000_000

    @classmethod
    def from_env(cls) -> Limits:
        d = cls()
        return cls(_env_int("SERVEBENCH_MAX_BODY_BYTES", d.max_body_bytes),
                   _env_int("SERVEBENCH_MAX_PIXELS", d.max_pixels),
                   _env_int("SERVEBENCH_MIN_SIDE", d.min_side),
                   _env_int("SERVEBENCH_MAX_TEXT_CHARS", d.max_text_chars),
                   _env_int("SERVEBENCH_MAX_REQUEST_PIXELS", d.max_request_pixels))


MAX_BATCH = 64


@dataclass(frozen=True)
class Request:
    """One image, one text, or a batch of images (``{"images_b64": [...]}``, study 004's
    batching: one call, one inference over the stacked batch)."""

    image: bytes | None = None
    text: str | None = None
    images: tuple[bytes, ...] | None = None

    def __post_init__(self) -> None:
        assert sum(x is not None for x in (self.image, self.text, self.images)) == 1


def _finite(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError(f"number {literal[:20]!r} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(body: bytes | str) -> Any:
    """Strict JSON: no NaN or Infinity, no number that overflows to one (``1e400``), no integer
    past Python's digit limit, no nesting deeper than the recursion limit; each a 400."""
    try:
        return json.loads(body, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError:
        raise BadInput(400, "malformed JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int digit limit, ours
        raise BadInput(400, f"malformed JSON: {exc}") from None


def check_size(n: int, limits: Limits) -> None:
    if n > limits.max_body_bytes:
        raise BadInput(413, f"request body of {n} bytes exceeds the limit of "
                            f"{limits.max_body_bytes} bytes")


def _b64_image(raw: Any, name: str, limits: Limits) -> bytes:
    if not isinstance(raw, str):
        raise BadInput(400, f"'{name}' must be a base64 string")
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadInput(400, f"'{name}' is not valid base64: {exc}") from None
    if not data:
        raise BadInput(400, f"'{name}' is empty")
    check_size(len(data), limits)
    return data


def _from_json_object(obj: Any, limits: Limits) -> Request:
    if not isinstance(obj, dict):
        raise BadInput(400, f"expected a JSON object with 'image_b64' or 'text', got "
                            f"{type(obj).__name__}")
    if "image_b64" in obj:
        return Request(image=_b64_image(obj["image_b64"], "image_b64", limits))
    if "images_b64" in obj:
        batch = obj["images_b64"]
        if not isinstance(batch, list) or not batch:
            raise BadInput(400, "'images_b64' must be a non-empty list of base64 strings")
        if len(batch) > MAX_BATCH:
            raise BadInput(413, f"a batch of {len(batch)} images exceeds the limit of "
                                f"{MAX_BATCH}")
        images = tuple(_b64_image(raw, f"images_b64[{i}]", limits)
                       for i, raw in enumerate(batch))
        check_size(sum(len(x) for x in images), limits)
        return Request(images=images)
    if "text" in obj:
        return Request(text=_check_text(obj["text"], limits))
    raise BadInput(400, "expected a JSON object with 'image_b64' or 'text'")


def _check_text(text: Any, limits: Limits) -> str:
    if not isinstance(text, str):
        raise BadInput(400, "'text' must be a string")
    if not text.strip():
        raise BadInput(400, "'text' is empty")
    if len(text) > limits.max_text_chars:
        raise BadInput(413, f"text of {len(text)} characters exceeds the limit of "
                            f"{limits.max_text_chars}")
    return text


def from_http(body: bytes, content_type: str | None, limits: Limits) -> Request:
    check_size(len(body), limits)
    if not body:
        raise BadInput(400, "empty request body")
    ctype = (content_type or "application/octet-stream").split(";")[0].strip().lower()
    if ctype == "application/json" or ctype.endswith("+json"):
        return _from_json_object(parse_json(body), limits)
    if ctype.startswith("text/"):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadInput(400, f"text body is not UTF-8: {exc}") from None
        return Request(text=_check_text(text, limits))
    if ctype.startswith("image/") or ctype == "application/octet-stream":
        return Request(image=body)
    raise BadInput(415, f"unsupported content type {ctype!r}: send image/*, "
                        "application/octet-stream, application/json or text/plain")


def _string_map(raw: Any, what: str) -> dict[str, str]:
    """A proxy event's ``headers``: null or an object of strings (names lower-cased)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                            for k, v in raw.items()):
        raise BadInput(400, f"proxy event '{what}' must be an object of strings")
    return {k.lower(): v for k, v in raw.items()}


def _multi_map(raw: Any) -> dict[str, str]:
    """A REST API event's ``multiValueHeaders``: null or an object of lists of strings; the
    first value of each."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(x, str) for x in v)
            for k, v in raw.items()):
        raise BadInput(400, "proxy event 'multiValueHeaders' must be an object of lists of "
                            "strings")
    return {k.lower(): v[0] for k, v in raw.items() if v}


def from_event(event: Any, limits: Limits) -> tuple[Request, bool]:
    """The request in a Lambda event, and whether the event came through an API Gateway proxy.

    A proxy event of the wrong shape (headers that are not an object of strings, a body that is
    not a string, ``isBase64Encoded`` that is not a boolean) is bad input, not a crash."""
    if isinstance(event, dict) and "body" in event and ("httpMethod" in event
                                                        or "requestContext" in event
                                                        or "isBase64Encoded" in event):
        headers = {**_multi_map(event.get("multiValueHeaders")),
                   **_string_map(event.get("headers"), "headers")}
        encoded = event.get("isBase64Encoded")
        if encoded is not None and not isinstance(encoded, bool):
            raise BadInput(400, "proxy event 'isBase64Encoded' must be true or false")
        body = event.get("body")
        if body is None:
            raise BadInput(400, "empty request body")
        if not isinstance(body, str):
            raise BadInput(400, "proxy event 'body' must be a string")
        if encoded:
            try:
                raw = base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise BadInput(400, f"body is not valid base64: {exc}") from None
        else:
            raw = body.encode("utf-8", "surrogatepass")
        ctype = headers.get("content-type")
        if ctype is None:
            ctype = "application/octet-stream" if encoded else "application/json"
        return from_http(raw, ctype, limits), True
    return _from_json_object(event, limits), False
