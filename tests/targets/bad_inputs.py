"""The bad-input matrix: each case is sent to both front doors."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes
    content_type: str | None
    status: int
    message: str  # a fragment the error message must contain


def _jpeg(w: int, h: int) -> bytes:
    from targets.payloads import jpeg

    return jpeg(w, h)


def _claiming(width: int, height: int) -> bytes:
    """A real JPEG whose frame header (SOF0) claims other dimensions: a decompression bomb."""
    data = bytearray(_jpeg(64, 64))
    sof = data.index(b"\xff\xc0")
    data[sof + 5: sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def _png(w: int, h: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (w, h), (10, 20, 30)).save(buf, "PNG")
    return buf.getvalue()


def image_cases() -> list[Case]:
    good = _jpeg(224, 224)
    return [
        Case("malformed_json", b'{"image_b64": ', "application/json", 400, "malformed JSON"),
        Case("json_not_object", b"[1, 2]", "application/json", 400, "JSON object"),
        Case("bad_base64", json.dumps({"image_b64": "@@not base64@@"}).encode(),
             "application/json", 400, "not valid base64"),
        Case("not_an_image", b"hello, I am not a JPEG" * 20, "image/jpeg", 415,
             "not a decodable image"),
        Case("truncated_jpeg", good[: len(good) // 2], "image/jpeg", 400, "truncated"),
        Case("bomb_over_pillow_limit", _claiming(60000, 60000), "image/jpeg", 413,
             "decompression bomb"),
        Case("bomb_over_our_limit", _claiming(7000, 7000), "image/jpeg", 413,
             "exceeds the limit"),
        Case("too_small", _png(8, 8), "image/png", 422, "smaller than"),
        Case("empty_body", b"", "image/jpeg", 400, "empty request body"),
        Case("oversized_body", b"\xff" * (6 * 1024 * 1024 + 1), "image/jpeg", 413,
             "exceeds the limit of 6291456 bytes"),
        Case("text_to_an_image_model", b"a sentence", "text/plain", 415, "takes an image"),
        Case("unsupported_content_type", good, "application/x-www-form-urlencoded", 415,
             "unsupported content type"),
    ]


def text_cases() -> list[Case]:
    return [
        Case("empty_text", json.dumps({"text": "   "}).encode(), "application/json", 400,
             "'text' is empty"),
        Case("text_not_string", json.dumps({"text": 42}).encode(), "application/json", 400,
             "must be a string"),
        Case("not_utf8", b"\xff\xfe\xfa bad", "text/plain", 400, "not UTF-8"),
        Case("too_long", ("word " * 5000).encode(), "text/plain", 413, "characters exceeds"),
        Case("image_to_a_text_model", _jpeg(64, 64), "image/jpeg", 415, "takes text"),
    ]
