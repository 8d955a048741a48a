"""numpy columns into Arrow arrays without ``pa.array``.

Why: ``pa.array`` asks pandas whether its input is a pandas object, which imports
pandas on first use (~0.2 s and ~50 MB of RSS). The capture -> flows -> Parquet path
never needs pandas, so its hot spots build arrays from buffers instead: the same
values and types as ``pa.array`` would give (tests compare the two), and no copy for
contiguous numeric columns.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa


def _np_dtype(type: pa.DataType) -> np.dtype:
    dtype = _DTYPES.get(type)  # ~20 us a call otherwise, ~60 calls a group of flow rows
    if dtype is None:
        dtype = _DTYPES[type] = _np_dtype_of(type)
    return dtype


def _np_dtype_of(type: pa.DataType) -> np.dtype:
    if pa.types.is_integer(type):
        return np.dtype(f"{'i' if pa.types.is_signed_integer(type) else 'u'}{type.bit_width // 8}")
    if pa.types.is_floating(type):
        return np.dtype(f"f{type.bit_width // 8}")
    if pa.types.is_timestamp(type) or pa.types.is_duration(type):
        return np.dtype("i8")
    raise TypeError(f"no numpy layout for {type}")


_DTYPES: dict[pa.DataType, np.dtype] = {}


def _bits(flags: np.ndarray) -> pa.Buffer:
    return pa.py_buffer(np.packbits(np.asarray(flags, bool), bitorder="little"))


def array(values, type: pa.DataType, mask: np.ndarray | None = None) -> pa.Array:
    """``pa.array(values, type, mask=mask)`` for a 1-d numpy column of a fixed-width type."""
    values = np.asarray(values)
    n = len(values)
    validity, nulls = None, 0
    if mask is not None:
        mask = np.asarray(mask, bool)
        nulls = int(mask.sum())
        if nulls:
            validity = _bits(~mask)
    if pa.types.is_boolean(type):
        data = _bits(values)
    else:
        dtype = _np_dtype(type)
        if values.dtype.kind not in "iufb" or (values.dtype.kind == "f") != (dtype.kind == "f"):
            raise TypeError(f"cannot store {values.dtype} as {type}")
        data = pa.py_buffer(np.ascontiguousarray(values, dtype=dtype))
    return pa.Array.from_buffers(type, n, [validity, data], null_count=nulls)


def strings(texts) -> pa.Array:
    """``pa.array(texts, pa.string())`` for a list of Python strings (no nulls)."""
    encoded = [t.encode() for t in texts]
    offsets = np.zeros(len(encoded) + 1, np.int32)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(encoded),
                                 [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])


def fixed_strings(matrix: np.ndarray, type: pa.DataType = pa.string()) -> pa.Array:
    """Rows of a (n, width) uint8 matrix as strings ending at the first NUL.

    The same as ``pa.array(matrix.view(f"S{width}").ravel(), pa.binary()).cast(type)``.
    """
    matrix = np.ascontiguousarray(matrix, np.uint8)
    n, width = matrix.shape
    zero = matrix == 0
    length = np.where(zero.any(axis=1), zero.argmax(axis=1), width).astype(np.int32)
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(length, out=offsets[1:])
    data = matrix[np.arange(width) < length[:, None]]
    return pa.Array.from_buffers(type, n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def texts(values) -> pa.Array:
    """``pa.array(values, pa.string())`` for a numpy array of few distinct strings (no nulls)."""
    values = np.asarray(values, dtype=object)
    if len(values) == 0:
        return strings([])
    # a dict beats np.unique here: sorting Python strings costs ~4x more per row
    codes: dict = {}
    index = np.fromiter((codes.setdefault(v, len(codes)) for v in values), np.int64, len(values))
    return take(strings(list(codes)), index)


def choose(codes: np.ndarray, names: list[str]) -> pa.Array:
    """String column ``names[codes[i]]`` (like ``pa.array(np.array(names)[codes])``)."""
    return take(strings(names), codes)


def to_numpy(arr) -> np.ndarray:
    """``arr.to_numpy(zero_copy_only=False)`` for a fixed-width column (``.to_numpy`` imports pandas).

    Zero-copy view for numeric and timestamp arrays without nulls; anything else
    (nulls, booleans, other types) goes through Arrow's own conversion.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pa.types.is_boolean(arr.type) and not arr.null_count:
        return _booleans(arr)
    try:
        dtype = _np_dtype(arr.type)
    except TypeError:
        dtype = None
    if dtype is None or arr.null_count:
        return arr.to_numpy(zero_copy_only=False)
    if pa.types.is_timestamp(arr.type):
        dtype = np.dtype(f"datetime64[{arr.type.unit}]")
    buf = arr.buffers()[1]
    if buf is None:
        return np.zeros(0, dtype)
    return np.frombuffer(buf, dtype)[arr.offset : arr.offset + len(arr)]


def _booleans(arr: pa.Array) -> np.ndarray:
    """A boolean array's values (null slots included) from its bits."""
    if len(arr) == 0:
        return np.zeros(0, bool)
    bits = np.unpackbits(np.frombuffer(arr.buffers()[1], np.uint8), bitorder="little")
    return bits[arr.offset : arr.offset + len(arr)].astype(bool)


def _validity(arr: pa.Array) -> np.ndarray | None:
    """Per-row validity as bools, or None without nulls (no Arrow compute involved)."""
    if not arr.null_count:
        return None
    bits = np.unpackbits(np.frombuffer(arr.buffers()[0], np.uint8), bitorder="little")
    return bits[arr.offset : arr.offset + len(arr)].astype(bool)


def take(arr, indices: np.ndarray) -> pa.Array:
    """``arr.take(indices)`` without Arrow compute, for fixed-width, boolean and string columns.

    Why: ``Array.take`` imports ``pyarrow.compute`` (~50-80 ms per process), and sorting
    the flow table is the only thing the capture -> Parquet path would need it for.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    indices = np.asarray(indices, np.int64)
    valid = _validity(arr)
    mask = None if valid is None else ~valid[indices]
    t = arr.type
    if pa.types.is_boolean(t):
        return array(_booleans(arr)[indices], t, mask=mask)
    if pa.types.is_string(t) or pa.types.is_binary(t):
        from flowkit.decode._text import take_strings

        offsets = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset : arr.offset + len(arr) + 1]
        data = np.frombuffer(arr.buffers()[2], np.uint8) if arr.buffers()[2] is not None else np.zeros(0, np.uint8)
        lengths = np.diff(offsets)[indices]
        out_off = np.empty(len(indices) + 1, np.int32)
        out_data = np.empty(int(lengths.sum()), np.uint8)
        take_strings(np.ascontiguousarray(offsets), data, np.ascontiguousarray(indices), out_off, out_data)
        validity = None if mask is None else _bits(~mask)
        return pa.Array.from_buffers(t, len(indices), [validity, pa.py_buffer(out_off), pa.py_buffer(out_data)],
                                     null_count=0 if mask is None else int(mask.sum()))
    try:
        _np_dtype(t)
    except TypeError:  # other types: Arrow's own take
        return arr.take(array(indices, pa.int64()))
    return array(_raw(arr)[indices], t, mask=mask)


def _raw(arr: pa.Array) -> np.ndarray:
    """Values buffer of a fixed-width array as plain numbers, null slots included."""
    dtype = _np_dtype(arr.type)
    return np.frombuffer(arr.buffers()[1], dtype)[arr.offset : arr.offset + len(arr)]
