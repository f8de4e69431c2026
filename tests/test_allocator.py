"""Freed memory kept for reuse (``atlas.allocator``): a large block comes from the heap,
which keeps it when freed, not from a mapping of its own, which is returned."""

import platform
import subprocess
import sys

import pytest

SCRIPT = """
import ctypes, sys
import numpy as np
from atlas.allocator import keep_freed_memory

class Info(ctypes.Structure):  # glibc's struct mallinfo2
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = Info
took = keep_freed_memory() if sys.argv[1] == "1" else False
block = np.ones(16 << 20, np.float32)  # 64 MB
mapped = mallinfo2().hblkhd
del block
print(took, mapped >= 64 << 20, mallinfo2().arena >= 64 << 20)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_a_large_block_comes_from_the_heap_which_keeps_it_when_freed():
    def run(keep: str) -> list[str]:
        return subprocess.run([sys.executable, "-c", SCRIPT, keep], capture_output=True, text=True,
                              check=True).stdout.split()

    assert run("0") == ["False", "True", "False"]  # its own mapping, returned when freed
    assert run("1") == ["True", "False", "True"]  # the heap's, kept
