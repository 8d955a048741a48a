"""Text forms of the 16-byte address columns, vectorized.

``to_strings`` turns a binary(16) column into text: IPv4-mapped addresses
(``::ffff:a.b.c.d``) as a dotted quad, everything else as compressed IPv6 exactly as
Python's ``ipaddress`` writes it. IPv4 is built with Arrow compute over whole columns;
IPv6 goes through ``ipaddress`` once per distinct address. ``from_strings`` is the
inverse (IPv4 text becomes IPv4-mapped); nulls stay null in both directions.
"""
from __future__ import annotations

import ipaddress

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowkit.decode import _arrow
from flowkit.decode.schema import ADDR

_OCTETS = _arrow.strings([str(i) for i in range(256)])
_DOT = _arrow.strings(["."])[0]  # a scalar without pa.scalar, which imports pandas


def _as_matrix(arr: pa.Array) -> np.ndarray:
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
    m = _as_matrix(addrs)
    words = np.ascontiguousarray(m).view("<u4")  # k x 4 little-endian words
    is_v4 = (words[:, 0] == 0) & (words[:, 1] == 0) & (words[:, 2] == 0xFFFF0000)
    text = pa.nulls(n, pa.string())
    if is_v4.any():
        q = [pc.take(_OCTETS, _arrow.array(m[is_v4, k], pa.uint8())) for k in range(12, 16)]
        v4 = pc.binary_join_element_wise(*q, _DOT)
        idx = np.flatnonzero(is_v4)
        text = _scatter(text, idx, v4)
    if not is_v4.all():
        idx = np.flatnonzero(~is_v4)
        v6 = np.ascontiguousarray(m[idx]).view("V16").ravel()
        uniq, inverse = np.unique(v6, return_inverse=True)
        names = _arrow.strings([ipaddress.IPv6Address(u.tobytes()).compressed for u in uniq])
        text = _scatter(text, idx, pc.take(names, _arrow.array(inverse.ravel(), pa.int64())))
    if addrs.null_count:
        text = pc.if_else(addrs.is_null(), pa.scalar(None, pa.string()), text)
    return text


def _scatter(base: pa.Array, idx: np.ndarray, values: pa.Array) -> pa.Array:
    """base with positions ``idx`` replaced by ``values`` (Arrow has no scatter)."""
    if len(idx) == len(base):
        return values
    mask = np.zeros(len(base), bool)
    mask[idx] = True
    return pc.replace_with_mask(base, _arrow.array(mask, pa.bool_()), values)


def from_strings(texts) -> pa.Array:
    """Address text (IPv4 or IPv6) -> binary(16); IPv4 becomes ``::ffff:a.b.c.d``.

    Raises ValueError naming the first string that is not an address.
    """
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if not isinstance(texts, pa.Array):
        texts = pa.array(list(texts), pa.string())
    enc = pc.dictionary_encode(texts)
    packed = []
    for s in enc.dictionary.to_pylist():
        ip = ipaddress.ip_address(s.strip())
        if ip.version == 4:
            ip = ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + ip.packed)
        packed.append(ip.packed)
    table = pa.array(packed, ADDR)
    return pc.take(table, enc.indices)
