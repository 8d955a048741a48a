"""Output columns of the fast engine: one numpy array per PACKET_SCHEMA field.

All arrays of a chunk are views into one allocation (reused from chunk to chunk when a
Decoder gives its pool, zero-filled otherwise): one allocation per chunk instead of one
per column. The C decoder zeroes each row before writing the values present. Arrow arrays
built by ``to_batch`` share this memory.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from flowkit._reuse import Buffers
from flowkit.decode.schema import PACKET_SCHEMA

ALIGN = 64  # Arrow's preferred buffer alignment

# (name, dtype, values per packet) of every column, in schema order
LAYOUT = [
    (f.name, np.dtype(np.uint8), 16) if pa.types.is_fixed_size_binary(f.type)
    else (f.name, np.dtype(np.int64), 1) if f.name == "ts"
    else (f.name, np.dtype(f.type.to_pandas_dtype()), 1)
    for f in PACKET_SCHEMA
]
# not schema columns: where each packet's captured payload is (flowkit.decode.payload), and
# the checksum verdict a batch carries only when checksums are verified (schema.BAD_CHECKSUM)
INTERNAL = [("payload_start", np.dtype(np.int64), 1), ("payload_caplen", np.dtype(np.uint32), 1),
            ("bad_checksum", np.dtype(np.uint8), 1)]


class Columns:
    """The output columns of one chunk as numpy arrays, zero-filled (absent = 0)."""

    def __init__(self, n: int, pool: Buffers | None = None):
        self.n = n
        layout = LAYOUT + INTERNAL
        sizes = [n * width * dtype.itemsize for _, dtype, width in layout]
        spans = [-(-size // ALIGN) * ALIGN for size in sizes]
        # from a pool (flowkit._reuse), a chunk's columns reuse memory freed by earlier chunks,
        # not zero-filled: the C decoder zeroes each row it writes (_decode.c zero_row)
        memory = np.zeros(sum(spans) + ALIGN, np.uint8) if pool is None else pool.get(sum(spans) + ALIGN)
        offset = -memory.ctypes.data % ALIGN
        self.arrays: dict[str, np.ndarray] = {}
        for (name, dtype, width), size, span in zip(layout, sizes, spans):
            values = memory[offset : offset + size].view(dtype)
            self.arrays[name] = values.reshape(n, width) if width > 1 else values
            offset += span

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]
