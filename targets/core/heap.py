"""Give freed image memory back to the operating system (glibc's malloc).

A large request decodes up to its pixel budget (hundreds of MB, targets/README.md) and frees it
afterwards. glibc serves allocations of 128 KB and up with mmap and unmaps them on free, but it
raises that threshold to the size of each such block freed (up to 32 MB): after the first large
image, Pillow's 16 MB image blocks and libjpeg's buffers come from the heap, and a heap keeps
what it had. Measured on ``servebench serve mobilenet_v2``: 262 MB of a 40 MP PNG's decode stayed
resident after the request; with the threshold fixed at 1 MiB, none did (targets/README.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("servebench.target")

M_MMAP_THRESHOLD = -3  # mallopt parameter number, <malloc.h>
MMAP_THRESHOLD_BYTES = 1024 * 1024
_done = False


def return_large_frees_to_os(threshold_bytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold (which also turns off its upward drift) so allocations of
    ``threshold_bytes`` and more are unmapped when freed. Once per process; False where the C
    library is not glibc (musl, macOS), which keeps its own policy."""
    global _done
    if _done:
        return True
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = bool(mallopt(M_MMAP_THRESHOLD, threshold_bytes))
    if not _done:
        log.debug("mallopt(M_MMAP_THRESHOLD) refused; freed image memory may stay resident")
    return _done
