"""Freed memory kept for the next forward pass.

glibc's malloc serves every block over its mmap threshold (32 MB at most, by default)
with a fresh mapping and unmaps it when freed, and gives the heap's top back to the
system past 128 KB. A forward pass at 224 px on a CPU allocates activations of tens of
megabytes, so each pass page-faults them in afresh. On this 2-core machine that made
EfficientNet-Lite0's forward pass to ``_blocks.1`` take 20 ms an image (batches of 16),
and 4.8 ms with both thresholds at 1 GB (``benchmarks/allocator.py``). A long sweep
reached some of that speed by itself (glibc raises the threshold as it frees blocks),
and a fresh process planning it did not, so the plan was up to 4 times too long.

``keep_freed_memory`` sets both thresholds, once per process, where the C library has
``mallopt`` (glibc); elsewhere it does nothing. The sweep and the plan call it, so they
run and measure alike. The cost: a process keeps up to ``KEEP`` of freed memory resident
instead of returning it.
"""

from __future__ import annotations

import ctypes
import functools

KEEP = 1 << 30  # bytes: a block this large or smaller comes from the heap, and this much of its top is kept
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


@functools.cache
def keep_freed_memory() -> bool:
    """Set malloc's mmap and trim thresholds to ``KEEP``; whether the C library took them."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl without it, Windows)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, KEEP)) and bool(mallopt(_M_TRIM_THRESHOLD, KEEP))
