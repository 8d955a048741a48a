"""Vectorized byte access for the fast engine: gathers over one chunk buffer.

Every packet lives in one shared uint8 buffer. Instead of slicing per packet, the
fast engine gathers one field for many packets at once from absolute positions
(``start + offset``). Big-endian 16/32-bit words come from unaligned strided views
of the same buffer, so one fancy-index operation yields a whole column with no
per-byte shifting. Callers must only pass positions whose bytes lie inside the
packet (``pos + width <= end``); the views stop at the buffer end, so a wrong
position raises IndexError instead of reading foreign memory.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from flowkit.decode.schema import PACKET_SCHEMA, Status


class ByteView:
    """Gathers of 8/16/32-bit big-endian values and 4/16-byte rows from a buffer."""

    def __init__(self, data: np.ndarray):
        data = np.ascontiguousarray(data, dtype=np.uint8)
        size = len(data)
        self.data = data
        # native (little-endian) unaligned views: gathering them is cheaper than
        # gathering big-endian ones; callers byte-swap the (small) result
        self._le32 = np.ndarray((max(size - 3, 0),), "<u4", data, 0, (1,))
        self._rows16 = as_strided(data, (max(size - 15, 0), 16), (1, 1), writeable=False)

    def u8(self, pos: np.ndarray) -> np.ndarray:
        return self.data[pos]

    def u16(self, pos: np.ndarray) -> np.ndarray:
        d = self.data
        return (d[pos].astype(np.uint16) << 8) | d[pos + 1]

    def u32(self, pos: np.ndarray) -> np.ndarray:
        return self._le32[pos].byteswap()

    def raw4(self, pos: np.ndarray) -> np.ndarray:
        """4 bytes as a native uint32 holding them in memory order (for copying)."""
        return self._le32[pos]

    def rows16(self, pos: np.ndarray) -> np.ndarray:
        return self._rows16[pos]


class Columns:
    """The output columns of one chunk as numpy arrays, zero-filled (absent = 0)."""

    def __init__(self, n: int):
        self.n = n
        self.arrays: dict[str, np.ndarray] = {}
        for f in PACKET_SCHEMA:
            if f.name in ("src_ip", "dst_ip"):
                self.arrays[f.name] = np.zeros((n, 16), np.uint8)
            elif f.name == "ts":
                self.arrays[f.name] = np.zeros(n, np.int64)
            else:
                self.arrays[f.name] = np.zeros(n, f.type.to_pandas_dtype())
        self.status = self.arrays["status"]

    def block(self, lo: int, hi: int) -> "Columns":
        """Columns of packets lo..hi as views: writes land in this object's arrays."""
        out = Columns.__new__(Columns)
        out.n = hi - lo
        out.arrays = {k: v[lo:hi] for k, v in self.arrays.items()}
        out.status = out.arrays["status"]
        return out

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def fail(self, rows: np.ndarray, status: Status) -> None:
        """Give ``rows`` a final status (TRUNCATED, MALFORMED, ...)."""
        self.status[rows] = status
