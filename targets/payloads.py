"""Deterministic payloads for tests and suites: JPEGs of a requested size and text samples.

``jpeg_of_size(500_000)`` gives a JPEG within 3% of 500 KB (study 003's 50 KB / 500 KB / 2 MB
payloads): a seeded picture (smooth gradients plus noise, like a photo's texture) whose side is
searched until the encoded size fits. Results are cached per argument set.
"""

from __future__ import annotations

import functools
import io

from .build import read_corpus

KB = 1000
STUDY_003_SIZES = {"50KB": 50 * KB, "500KB": 500 * KB, "2MB": 2000 * KB}


@functools.lru_cache(maxsize=64)
def jpeg(width: int = 224, height: int = 224, *, seed: int = 0, quality: int = 90) -> bytes:
    """A ``width`` x ``height`` RGB JPEG, the same bytes for the same arguments."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([128 + 100 * np.sin(x / (17 + 9 * c) + y / (23 + 5 * c) + c)
                     for c in range(3)], -1)
    pixels = np.clip(base + rng.normal(0, 40, (height, width, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@functools.lru_cache(maxsize=16)
def jpeg_of_size(size_bytes: int, *, seed: int = 0, tolerance: float = 0.03) -> bytes:
    """A 4:3 JPEG whose encoded size is within ``tolerance`` of ``size_bytes``."""
    if size_bytes < 2_000:
        raise ValueError("the smallest JPEG this makes is about 2 KB")
    lo, hi = 16, 8192
    best = jpeg(lo, lo * 3 // 4 or 1, seed=seed)
    while lo <= hi:
        side = (lo + hi) // 2
        data = jpeg(side, max(16, side * 3 // 4), seed=seed)
        if abs(len(data) - size_bytes) < abs(len(best) - size_bytes):
            best = data
        if abs(len(data) - size_bytes) <= tolerance * size_bytes:
            return data
        if len(data) < size_bytes:
            lo = side + 1
        else:
            hi = side - 1
    return best


def texts(n: int = 16, *, seed: int = 0) -> list[str]:
    """``n`` sample texts from the shipped corpus, in a seeded order."""
    import random

    corpus, _ = read_corpus()
    rng = random.Random(seed)
    return [rng.choice(corpus) for _ in range(n)]
