"""A deterministic hashing tokenizer for the ALBERT target: nothing to download, the same cost
shape as a WordPiece tokenizer (lower-case, split, map to ids, pad to a fixed length)."""

from __future__ import annotations

import re
import zlib
from typing import Any

CLS, SEP, PAD = 2, 3, 0
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def encode(text: str, max_tokens: int, vocab: int) -> tuple[Any, Any]:
    import numpy as np

    words = _WORD.findall(text.lower())[: max_tokens - 2]
    ids = [CLS] + [5 + zlib.crc32(w.encode("utf-8", "surrogatepass")) % (vocab - 5)
                   for w in words] + [SEP]
    arr = np.full((1, max_tokens), PAD, dtype=np.int64)
    mask = np.zeros((1, max_tokens), dtype=np.int64)
    arr[0, : len(ids)] = ids
    mask[0, : len(ids)] = 1
    return arr, mask
