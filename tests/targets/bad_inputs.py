"""The bad-input matrix: each case is sent to both front doors."""

from __future__ import annotations

import base64
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


def _gif(w: int, h: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (w, h), (10, 20, 30)).save(buf, "GIF")
    return buf.getvalue()


def _batch(*images: bytes) -> bytes:
    return json.dumps({"images_b64": [base64.b64encode(x).decode() for x in images]}).encode()


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
        # libjpeg fills a scan that meets a marker early with gray, silently: a JPEG cut short
        # and closed with an end-of-image marker, or whose frame claims more blocks than its data
        # holds, must not be answered with predictions of gray.
        Case("truncated_jpeg_closed_by_eoi", good[: len(good) // 2] + b"\xff\xd9",
             "image/jpeg", 400, "truncated"),
        Case("frame_larger_than_its_data", _claiming(2000, 1500), "image/jpeg", 400,
             "truncated"),
        # 8 images each under the per-image limit, 288 MP in all: refused from the headers.
        Case("batch_over_the_request_pixel_budget", _batch(*[_claiming(6000, 6000)] * 8),
             "application/json", 413, "pixels per request"),
        Case("image_in_a_batch_is_named", _batch(good, b"GIF89a nope" * 10), "application/json",
             415, "images_b64[1]: not a decodable image"),
        Case("gif_is_not_served", _gif(64, 64), "image/gif", 415, "send JPEG or PNG"),
        Case("json_nested_too_deeply", b"[" * 100_000, "application/json", 400,
             "nested too deeply"),
        Case("json_number_overflows", b'{"image_b64": 1e400}', "application/json", 400,
             "out of range"),
        Case("json_nan", b'{"image_b64": NaN}', "application/json", 400, "NaN is not JSON"),
        Case("json_huge_int", b'{"image_b64": ' + b"7" * 5000 + b"}", "application/json", 400,
             "malformed JSON"),
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
