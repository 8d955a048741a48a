"""The flow path's pools: Arrow allocations to the system allocator, and the worker threads.

Arrow allocations of the flow path go to the system allocator (glibc malloc).

Why: the flow path's numpy arrays live in glibc's heap and its Arrow arrays in Arrow's
default pool (mimalloc). Memory one of them frees is not reused by the other, so peak
RSS grows by the sum of both high-water marks: on a 1M-packet capture, ~70 MB more
than with one allocator (docs/performance.md). ``system_pool()`` makes the system
pool Arrow's default for the duration of a call and restores the previous default.
Buffers remember their pool, so arrays made inside stay valid outside; another thread
allocating meanwhile just gets the system pool too, which is correct, only different.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
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


def _load_trim():
    """glibc's ``malloc_trim``, or None (other C libraries, other systems)."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


_trim = _load_trim()


def release_freed_memory() -> None:
    """Give the pages of freed heap memory back to the system (glibc ``malloc_trim(0)``).

    Why: the finished flows are freed in pieces of ~128 KB (one column of one group of
    rows) while their sorted copy is allocated a whole column at a time; glibc cannot
    reuse the scattered holes for the larger blocks and keeps them resident, so without
    this the sort costs a full extra copy of the table in RSS (+110 MB at 319k flows).
    A no-op where glibc is not the allocator.
    """
    if _trim is not None:
        _trim(0)


_WORKERS: list = []


def workers() -> ThreadPoolExecutor:
    """The threads finished rows are converted and spilled rows compressed in, shared by every
    state of the process.

    Why not a thread per conversion: starting one cost ~0.8 ms, and a scan converts groups
    by the hundred. A pool forked with the process would have no threads in the child
    (and its work would wait forever), so a child starts its own."""
    if not _WORKERS:
        _WORKERS.append(ThreadPoolExecutor(max(2, os.cpu_count() or 1), thread_name_prefix="flowkit-rows"))
    return _WORKERS[0]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WORKERS.clear)
