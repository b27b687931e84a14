"""Decode and check images before they cost anything: every header of a request first (format,
size, the request's pixel budget), then the pixels, one image at a time, straight into the model's
input tensor.

Formats: JPEG and PNG (Pillow opens nothing else here: fewer decoders, fewer surprises). A JPEG
larger than twice the model's input is decoded at 1/2, 1/4 or 1/8 scale inside libjpeg
(``draft``), so its decoded pixels never exist at full size.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Sequence
from typing import Any

from .errors import BadInput
from .inputs import Limits

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
FORMATS = ("JPEG", "PNG")

# Frame markers of the sequential Huffman-coded JPEGs (baseline and extended): the ones whose
# first scan is the whole image when it is followed by the end-of-image marker.
_SEQUENTIAL_SOF = (0xC0, 0xC1)
_OTHER_SOF = frozenset(range(0xC2, 0xD0)) - {0xC4, 0xC8, 0xCC}
# The first marker inside entropy-coded data: 0xFF followed by anything but a stuffed zero, a
# restart marker or another fill byte.
_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
# Bytes that stand in for the end-of-image marker (see _without_eoi).
_PAD = b"\x00" * 12
# Pillow's exception messages name its file objects (<_io.BytesIO object at 0x7f...>), which
# tell a client our heap addresses; paths would tell it our layout.
_ADDRESS = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")
_PATH = re.compile(r"(?:/[\w.@+-]+){2,}")


def _clean(exc: BaseException) -> str:
    return _PATH.sub("<path>", _ADDRESS.sub("<object>", str(exc))) or type(exc).__name__


def _who(name: str) -> str:
    return f"{name}: " if name else ""


def _scan_start(data: bytes) -> int | None:
    """Where the entropy-coded data of a sequential Huffman JPEG's first scan starts, or None
    (not a JPEG, another coding process, or a header Pillow will refuse anyway)."""
    if not data.startswith(b"\xff\xd8"):
        return None
    pos, sequential, n = 2, False, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker in _SEQUENTIAL_SOF:
            sequential = True
        elif marker in _OTHER_SOF:
            return None
        if marker == 0xDA:
            return pos + 2 + length if sequential else None
        pos += 2 + length
    return None


def _without_eoi(data: bytes) -> bytes:
    """``data`` with the end-of-image marker that closes a single-scan sequential JPEG replaced
    by zero bytes.

    libjpeg fills the rest of a scan with gray (zero coefficients) when it meets a marker before
    the scan's last block, and says so only in a warning Pillow silences: a JPEG whose data ends
    early, then ``FF D9``, decodes "fine". Without the marker, a complete scan still decodes (the
    zeros only feed the bit reader's look-ahead) but a short one runs out of data, and Pillow
    reports "image file is truncated". Progressive and multi-scan files need their later markers
    and are decoded as sent."""
    start = _scan_start(data)
    if start is None:
        return data
    end = _MARKER.search(data, start)
    if end is None or data[end.start() + 1] != 0xD9:
        return data
    return data[:end.start()] + _PAD


def open_image(data: bytes, limits: Limits, *, name: str = "") -> Any:
    """A lazily opened ``PIL.Image`` of ``data``: its header read and checked (format, pixel
    count, decompression bombs, smallest side), nothing decoded yet; or :class:`BadInput`."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(_without_eoi(data)), formats=FORMATS)
            width, height = img.size  # from the header only: nothing decoded yet
    except UnidentifiedImageError:
        raise BadInput(415, f"{_who(name)}not a decodable image (send JPEG or PNG)") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise BadInput(413, f"{_who(name)}image too large to decode (decompression bomb "
                            f"guard): {_clean(exc)}") from None
    except Exception as exc:
        raise BadInput(400, f"{_who(name)}corrupt image header: {_clean(exc)}") from None
    if width * height > limits.max_pixels:
        raise BadInput(413, f"{_who(name)}image of {width}x{height} pixels exceeds the limit "
                            f"of {limits.max_pixels} pixels (decompression bomb guard)")
    if min(width, height) < limits.min_side:
        raise BadInput(422, f"{_who(name)}image of {width}x{height} pixels is smaller than "
                            f"{limits.min_side} px a side")
    return img


def check_budget(images: Sequence[Any], limits: Limits) -> None:
    """A request decodes at most ``limits.max_request_pixels`` in all, counted from the headers
    before any image is decoded: a batch of images that are each under the per-image limit
    must not add up to gigabytes."""
    total = sum(img.size[0] * img.size[1] for img in images)
    if total > limits.max_request_pixels:
        raise BadInput(413, f"the request's {len(images)} image(s) hold {total} pixels in all, "
                            f"over the limit of {limits.max_request_pixels} pixels per request "
                            "(decompression bomb guard)")


def _scale_offset(np: Any) -> tuple[Any, Any]:
    mean, std = np.asarray(MEAN, np.float32), np.asarray(STD, np.float32)
    return (1 / (255 * std))[:, None, None], (-mean / std)[:, None, None]


def load_into(img: Any, out: Any, *, name: str = "") -> tuple[int, int]:
    """Decode ``img`` (from :func:`open_image`), resize it to ``out``'s side and write it,
    normalised with ImageNet statistics, into ``out`` (a float32 3 x size x size view of the
    model's input). ``img`` is closed afterwards, its pixels freed before the next image of a
    batch is decoded. Returns the image's size as sent (boxes are scaled to it)."""
    import numpy as np
    from PIL import Image

    size = out.shape[-1]
    original: tuple[int, int] = img.size
    try:
        if img.format in ("JPEG", "MPO") and min(original) >= 2 * size:
            img.draft("RGB", (size, size))  # libjpeg scales by 1/2, 1/4 or 1/8, never below
        img.load()
        rgb = img
        if rgb.mode in ("RGB", "L"):  # resizing first gives the same pixels, fewer of them
            if rgb.size != (size, size):
                rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
            if rgb.mode != "RGB":
                rgb = rgb.convert("RGB")
        else:  # palettes, alpha, CMYK: to RGB first, as a viewer shows them
            rgb = rgb.convert("RGB")
            if rgb.size != (size, size):
                rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
        pixels = np.asarray(rgb)  # a copy: Pillow hands numpy its bytes
    except Exception as exc:  # truncated streams, bad Huffman tables, ...
        raise BadInput(400, f"{_who(name)}truncated or corrupt image data: {_clean(exc)}") \
            from None
    finally:
        img.close()
    scale, offset = _scale_offset(np)
    chw = pixels.transpose(2, 0, 1)  # uint8, a view
    np.multiply(chw, scale, out=out)  # one pass: cast, scale, lay out as CHW
    out += offset
    return original


def to_tensor(data: bytes, size: int, limits: Limits) -> Any:
    """One image as a float32 1 x 3 x ``size`` x ``size`` tensor (checks included)."""
    import numpy as np

    img = open_image(data, limits)
    check_budget([img], limits)
    x = np.empty((1, 3, size, size), np.float32)
    load_into(img, x[0])
    return x
