"""Text forms of the 16-byte address columns, vectorized.

``to_strings`` turns a binary(16) column into text: IPv4-mapped addresses
(``::ffff:a.b.c.d``) as a dotted quad, everything else as compressed IPv6 exactly as
Python's ``ipaddress`` writes it, formatted in one C call per column (``_text.c``).
``from_strings`` is the inverse (IPv4 text becomes IPv4-mapped); nulls stay null in
both directions.
"""
from __future__ import annotations

import ipaddress

import numpy as np
import pyarrow as pa

from flowkit.decode import _arrow
from flowkit.decode._text import format_addresses
from flowkit.decode.schema import ADDR


def address_matrix(arr: pa.Array) -> np.ndarray:
    """k x 16 uint8 view of a binary(16) array (null slots read as zeros)."""
    arr = arr.cast(ADDR) if arr.type != ADDR else arr
    buf = arr.buffers()[1]
    flat = np.frombuffer(buf, np.uint8)[arr.offset * 16 : (arr.offset + len(arr)) * 16]
    return flat.reshape(len(arr), 16)


def to_strings(addrs) -> pa.Array:
    """binary(16) addresses -> pyarrow string array (dotted quad for IPv4-mapped).

    Accepts a binary(16) Arrow array or chunked array, a sequence of 16-byte values,
    or a numpy uint8 matrix of shape (n, 16).
    """
    if isinstance(addrs, pa.ChunkedArray):
        addrs = addrs.combine_chunks()
    if isinstance(addrs, np.ndarray) and addrs.ndim == 2 and addrs.shape[1] == 16:
        buf = pa.py_buffer(np.ascontiguousarray(addrs, np.uint8).reshape(-1))
        addrs = pa.FixedSizeBinaryArray.from_buffers(ADDR, len(addrs), [None, buf])
    elif not isinstance(addrs, pa.Array):
        addrs = pa.array(addrs, ADDR)
    n = len(addrs)
    if n == 0:
        return _arrow.strings([])
    m = np.ascontiguousarray(address_matrix(addrs))
    offsets = np.empty(n + 1, np.int32)
    data = np.empty(39 * n, np.uint8)
    used = format_addresses(m.reshape(-1), offsets, data)
    validity = None
    if addrs.null_count:  # the input's validity bitmap, realigned to offset 0
        validity = pa.array(np.asarray(addrs.is_valid()), pa.bool_()).buffers()[1]
    return pa.Array.from_buffers(pa.string(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(data[:used])],
                                 null_count=addrs.null_count)


def from_strings(texts) -> pa.Array:
    """Address text (IPv4 or IPv6) -> binary(16); IPv4 becomes ``::ffff:a.b.c.d``.

    Raises ValueError naming the first string that is not an address.
    """
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if not isinstance(texts, pa.Array):
        texts = pa.array(list(texts), pa.string())
    import pyarrow.compute as pc  # parsing text is rare; formatting stays free of compute

    enc = pc.dictionary_encode(texts)
    packed = []
    for s in enc.dictionary.to_pylist():
        ip = ipaddress.ip_address(s.strip())
        if ip.version == 4:
            ip = ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + ip.packed)
        packed.append(ip.packed)
    table = pa.array(packed, ADDR)
    return pc.take(table, enc.indices)
