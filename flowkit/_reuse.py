"""Large per-chunk buffers handed out again once nothing references them.

Why: every capture chunk needs a read buffer (~4 MiB) and decoded columns (~2 MB). Up to
four chunks are in flight (read ahead, decoded, in the flow engine), so freed blocks of
that size are unmapped and new ones mapped again: the kernel faults in and zeroes every
page anew, which cost more than decoding them (docs/performance.md). A buffer is handed
out again only when the pool's reference is the last one: views, Arrow buffers and
payload positions made from it all hold a reference, and CPython's reference count says
exactly when the last is gone (nothing else can then take a new one).
"""
from __future__ import annotations

import sys
import threading

import numpy as np


class Buffers:
    """Up to ``keep`` uint8 buffers, reused when free; ``get`` returns a view of one."""

    def __init__(self, keep: int = 8):
        self.keep = keep
        self._bufs: list[np.ndarray] = []
        self._lock = threading.Lock()  # two threads must not both take the same free buffer

    def get(self, nbytes: int) -> np.ndarray:
        """``nbytes`` of uninitialised memory (a view of a pooled buffer, or a new array)."""
        with self._lock:
            return self._get(nbytes)

    def _get(self, nbytes: int) -> np.ndarray:
        bufs = self._bufs
        spare = -1
        for i in range(len(bufs)):
            if sys.getrefcount(bufs[i]) == 2:  # the list's reference and the call's: free
                if len(bufs[i]) >= nbytes:
                    return bufs[i][:nbytes]
                spare = i
        buf = np.empty(nbytes + nbytes // 16, np.uint8)  # headroom: chunk sizes vary a little
        if spare >= 0:
            bufs[spare] = buf  # a free one too small for this size: replaced
        elif len(bufs) < self.keep:
            bufs.append(buf)
        return buf[:nbytes]
