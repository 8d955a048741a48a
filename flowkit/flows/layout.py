"""Typed columns of the connection rows, from the layout in ``_layout.h``.

The C kernels keep a connection as a packed ``conn_t`` (its key as ``conn_key_t``); Python
holds the rows as uint8 matrices of one struct a row (C: ``CONN_SIZE`` bytes, K:
``KEY_SIZE``), which it moves, sorts, spills and concatenates as a whole. The few fields it
reads or writes are seen through numpy dtypes built from the offsets ``_machine`` exports
(``CONN_FIELDS``, ``KEY_FIELDS``), so no offset is written twice.
"""
from __future__ import annotations

import numpy as np

from flowkit.flows import _machine as k

CONN_SIZE = k.CONN_SIZE
KEY_SIZE = k.KEY_SIZE


def _dtype(fields, size: int) -> np.dtype:
    formats = [f"<{kind}{n}" if kind in "iu" else f"({n},)u1" for _, _, n, kind in fields]
    return np.dtype({"names": [f[0] for f in fields], "formats": formats, "offsets": [f[1] for f in fields],
                     "itemsize": size})


CONN = _dtype(k.CONN_FIELDS, CONN_SIZE)
KEY = _dtype(k.KEY_FIELDS, KEY_SIZE)


def empty_rows(n: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n zeroed connection rows: (C, H, K)."""
    return np.zeros((n, CONN_SIZE), np.uint8), np.zeros((n, k.HMAX), np.uint8), np.zeros((n, KEY_SIZE), np.uint8)


def conn(C: np.ndarray) -> np.ndarray:
    """The connection rows C as records (a view: writing a field writes the rows)."""
    return C.view(CONN)[:, 0]


def key(K: np.ndarray) -> np.ndarray:
    """The key rows K as records (a view)."""
    return K.view(KEY)[:, 0]


def key_hashes(K: np.ndarray) -> np.ndarray:
    """The key hash (uint64) of each key row."""
    return key(K)["hash"]


def rows_where(arrays, mask: np.ndarray) -> list[np.ndarray]:
    """The rows of each row matrix (C, H, K) where ``mask`` is set.

    Why np.take: boolean indexing of a 2-D uint8 matrix copied 8,192 rows of C in 0.94 ms,
    np.take of their indexes in 0.17 ms (0.3 s of a 3 M-flow output, every segment losing a
    row or two to the replay)."""
    at = np.flatnonzero(mask)
    return [np.take(a, at, axis=0) for a in arrays]
