"""Decode and check an image before it costs anything: header first (size, bomb), then pixels."""

from __future__ import annotations

import io
import warnings
from typing import Any

from .errors import BadInput
from .inputs import Limits

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def decode(data: bytes, limits: Limits) -> Any:
    """An RGB ``PIL.Image`` of ``data``, or :class:`BadInput` saying what is wrong with it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size  # from the header only: nothing decoded yet
    except UnidentifiedImageError as exc:
        raise BadInput(415, f"not a decodable image: {exc}") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise BadInput(413, f"image too large to decode (decompression bomb guard): {exc}") \
            from None
    except Exception as exc:
        raise BadInput(400, f"corrupt image header: {exc}") from None
    if width * height > limits.max_pixels:
        raise BadInput(413, f"image of {width}x{height} pixels exceeds the limit of "
                            f"{limits.max_pixels} pixels (decompression bomb guard)")
    if min(width, height) < limits.min_side:
        raise BadInput(422, f"image of {width}x{height} pixels is smaller than "
                            f"{limits.min_side} px a side")
    try:
        img.load()
        return img.convert("RGB") if img.mode != "RGB" else img
    except Exception as exc:  # truncated streams, bad Huffman tables, ...
        raise BadInput(400, f"truncated or corrupt image data: {exc}") from None


def to_tensor(img: Any, size: int) -> Any:
    """Resize to ``size`` x ``size`` and normalise with ImageNet statistics: float32 NCHW."""
    import numpy as np
    from PIL import Image

    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    mean, std = np.asarray(MEAN, np.float32), np.asarray(STD, np.float32)
    scale, offset = (1 / (255 * std))[:, None, None], (-mean / std)[:, None, None]
    chw = np.asarray(img).transpose(2, 0, 1)  # uint8, a view
    out = np.empty((1, *chw.shape), np.float32)
    np.multiply(chw, scale, out=out[0])  # one pass: cast, scale, lay out as NCHW
    out[0] += offset
    return out
