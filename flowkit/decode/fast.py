"""The ``fast`` decode engine: a RecordChunk into a packet batch, decoded in C.

_decode.c walks every packet once, link layer to TCP options, and fills numpy columns
allocated here; no Python object is created per packet and the GIL is released while
it runs. Every byte read is guarded by the packet's captured length: a packet that ends
inside a header gets status TRUNCATED with the columns read so far. Column meanings:
docs/packets.md.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from flowkit.capture.records import RecordChunk
from flowkit.decode import _decode
from flowkit.decode.fast_bytes import Columns
from flowkit.decode.payload import Payload
from flowkit.decode.schema import PACKET_SCHEMA

__all__ = ["decode_chunk", "decode_chunk_payload", "decode_columns"]

_FIELDS = [(field.name, field.type) for field in PACKET_SCHEMA]


def decode_columns(chunk: RecordChunk) -> Columns:
    """Decode a chunk into numpy columns (``decode_chunk`` wraps them as Arrow)."""
    n = len(chunk)
    cols = Columns(n)
    cols["index"][:] = chunk.index
    cols["ts"][:] = chunk.ts
    cols["caplen"][:] = chunk.caplen
    cols["wirelen"][:] = chunk.wirelen
    cols["iface"][:] = chunk.iface
    cols["linktype"][:] = chunk.linktype
    if n == 0:
        return cols
    _decode.decode(
        np.ascontiguousarray(chunk.data, dtype=np.uint8),
        np.ascontiguousarray(chunk.start, dtype=np.int64),
        cols["caplen"],
        cols["wirelen"],
        cols["linktype"],
        tuple(cols[name] for name in _decode.COLUMNS),
        cols["payload_start"],
        cols["payload_caplen"],
    )
    return cols


def decode_chunk(chunk: RecordChunk) -> pa.RecordBatch:
    """Decode every packet of ``chunk`` into a batch with exactly ``PACKET_SCHEMA``."""
    return to_batch(decode_columns(chunk))


def decode_chunk_payload(chunk: RecordChunk) -> tuple[pa.RecordBatch, Payload]:
    """``decode_chunk`` plus where each packet's captured payload is in the chunk's buffer."""
    cols = decode_columns(chunk)
    data = np.ascontiguousarray(chunk.data, dtype=np.uint8)
    return to_batch(cols), Payload(data, cols["payload_start"], cols["payload_caplen"])


def to_batch(cols: Columns) -> pa.RecordBatch:
    """Wrap the columns as Arrow arrays without copying them."""
    n, values = cols.n, cols.arrays
    arrays = [pa.Array.from_buffers(kind, n, [None, pa.py_buffer(values[name])]) for name, kind in _FIELDS]
    return pa.RecordBatch.from_arrays(arrays, names=PACKET_SCHEMA.names)  # == PACKET_SCHEMA
