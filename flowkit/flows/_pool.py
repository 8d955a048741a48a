"""Arrow allocations of the flow path go to the system allocator (glibc malloc).

Why: the flow path's numpy arrays live in glibc's heap and its Arrow arrays in Arrow's
default pool (mimalloc). Memory one of them frees is not reused by the other, so peak
RSS grows by the sum of both high-water marks: on a 1M-packet capture, ~70 MB more
than with one allocator (docs/performance.md). ``system_pool()`` makes the system
pool Arrow's default for the duration of a call and restores the previous default.
Buffers remember their pool, so arrays made inside stay valid outside; another thread
allocating meanwhile just gets the system pool too, which is correct, only different.
"""
from __future__ import annotations

from contextlib import contextmanager

import pyarrow as pa


@contextmanager
def system_pool():
    previous = pa.default_memory_pool()
    system = pa.system_memory_pool()
    if previous.backend_name == system.backend_name:
        yield
        return
    pa.set_memory_pool(system)
    try:
        yield
    finally:
        pa.set_memory_pool(previous)
