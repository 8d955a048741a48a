"""Blocks of spilled rows on disk (flows/overflow.py): rows of bytes are packed to the byte
columns that vary in the block before lz4, and come back byte for byte."""
from __future__ import annotations

import numpy as np
import pytest

from flowkit.flows import _rows
from flowkit.flows.overflow import _block as block_of, _compress, _parse


def _block(arrays):
    """The bytes Overflow writes for one block of these arrays."""
    return b"".join(block_of(len(arrays[0]), _compress(arrays))[0])


def _rows_varying(n, width, columns, seed=0):
    """n rows of `width` bytes, equal to one random template except at `columns`."""
    rng = np.random.default_rng(seed)
    rows = np.tile(rng.integers(0, 256, width, dtype=np.uint8), (n, 1))
    for k in columns:
        rows[:, k] = rng.integers(0, 256, n, dtype=np.uint8)
        rows[0, k] ^= 1  # the first row differs from the second at least
        rows[1, k] = rows[0, k] ^ 0x80
    return rows


@pytest.mark.parametrize("width, columns", [
    (824, []),                                   # every row the same
    (824, [0, 1, 2, 3, 100, 101, 823]),          # runs at both ends and in the middle
    (726, list(range(0, 726, 2))),               # every other byte: runs of one
    (50, list(range(50))),                       # every byte varies
    (13, [5]),                                   # a width that is no multiple of 8
    (_rows.MAX_PACK_WIDTH, [0, _rows.MAX_PACK_WIDTH - 1]),
])
def test_packed_rows_keep_only_the_varying_columns_and_come_back(width, columns):
    rows = _rows_varying(300, width, columns)
    idx, packed = np.empty(width, np.uint16), np.empty(rows.size, np.uint8)
    m = _rows.pack_rows(rows, width, idx, packed)
    assert list(idx[:m]) == sorted(columns)
    assert np.array_equal(packed[:len(rows) * m].reshape(len(rows), m), rows[:, sorted(columns)])
    back = np.empty_like(rows)
    _rows.unpack_rows(rows[0].copy(), idx[:m].copy(), packed[:len(rows) * m].copy(), back)
    assert np.array_equal(back, rows)


@pytest.mark.parametrize("n", [0, 1, 2, 8192])
def test_blocks_come_back_byte_for_byte(n):
    rng = np.random.default_rng(n)
    C = _rows_varying(max(n, 2), 726, rng.choice(726, 40, replace=False), seed=n)[:n]
    H = np.zeros((n, 48), np.uint8)
    H[:, :3] = np.frombuffer(b"ShR", np.uint8)
    K = _rows_varying(max(n, 2), 50, range(8, 40), seed=n + 1)[:n]
    ts = np.arange(max(n, 1), dtype=np.int64)[:n] * 10_000
    arrays = [C, H, K, ts] if n else [C, H, K]  # (lz4 cannot read back an empty array: blocks have rows)
    layout = [(np.uint8, (726,)), (np.uint8, (48,)), (np.uint8, (50,)), (np.int64, ())][:len(arrays)]
    back = _parse(_block(arrays), layout)
    for a, b in zip(arrays, back):
        assert b.dtype == a.dtype and np.array_equal(a, b)
    only_keys = _parse(_block(arrays), layout, only=(2,))
    assert only_keys[0] is None and np.array_equal(only_keys[2], K)


def test_packing_shrinks_what_lz4_is_given():
    # 8,192 rows of 726 bytes differing in 36 columns of random bytes (which lz4 cannot shrink):
    # the block is those bytes, the template and the 36 positions, plus lz4's framing (< 1 %)
    rows = _rows_varying(8192, 726, range(0, 72, 2))
    packed = _compress([rows])[0]
    assert len(packed) <= (8192 * 36) * 1.01 + 726 + 2 + 2 * 36
