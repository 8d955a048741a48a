"""Open connections past the memory budget, on disk as partial state until the end of a pass.

When ``StreamState`` holds more open connections than its budget allows, the least
recently active ones are written here (their rows, as the state machine left them) and
their keys enter the C spilled set. A later packet on such a key is *deferred*: written
here too, in capture order. At the end, each partition (keys by hash, so a partition
holds every row and packet of its keys) is replayed: its rows become open connections
again and its deferred packets run through them, exactly as they would have in memory
(connections of different keys never interact). The result equals an unlimited run.

Blocks are lz4-compressed (rows are mostly zeros and sentinels: ~10x smaller).
"""
from __future__ import annotations

import os
import shutil
import struct
import tempfile
import weakref

import numpy as np
import pyarrow as pa

PARTITIONS = 64  # a partition is replayed at once: about 1/64 of what was spilled
_HEADER = struct.Struct("<qq")  # rows, compressed bytes


def gather_bytes(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The byte ranges data[starts[i] : starts[i] + lengths[i]] one after the other."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.uint8)
    ends = np.cumsum(lengths)
    return data[np.repeat(starts - (ends - lengths), lengths) + np.arange(total)]


def _partition(hashes: np.ndarray) -> np.ndarray:
    # the high bits: the hash tables use the low ones
    return (hashes.view(np.uint64) >> np.uint64(58)).astype(np.int64)


class Overflow:
    """Spilled open rows and deferred packets in PARTITIONS files each (a temporary directory)."""

    def __init__(self, parent: str | os.PathLike | None = None):
        self.path = tempfile.mkdtemp(prefix="flowkit-open-", dir=parent)
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.path, True)
        self.rows = 0  # connections written
        self.packets = 0  # packets deferred
        self.bytes = 0  # written to disk
        self._files: dict[str, object] = {}  # open for appending until read back

    def _append(self, kind: str, part: int, arrays: list[np.ndarray], n: int) -> None:
        raw = b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)
        data = pa.compress(raw, codec="lz4", asbytes=True)
        name = f"{kind}-{part:02d}"
        f = self._files.get(name)
        if f is None:
            f = self._files[name] = open(os.path.join(self.path, name), "ab")
        f.write(_HEADER.pack(n, len(data)))
        f.write(struct.pack("<q", len(raw)))
        f.write(data)
        self.bytes += _HEADER.size + 8 + len(data)

    def blocks(self, kind: str, part: int, layout: list[tuple[np.dtype, tuple]]):
        """The blocks of one file in order, each a list of arrays per ``layout`` (dtype, shape
        of one row); the file is removed once read."""
        name = f"{kind}-{part:02d}"
        if name not in self._files:
            return
        self._files.pop(name).close()
        path = os.path.join(self.path, name)
        with open(path, "rb") as f:
            while head := f.read(_HEADER.size):
                n, size = _HEADER.unpack(head)
                (raw_size,) = struct.unpack("<q", f.read(8))
                raw = pa.decompress(f.read(size), decompressed_size=raw_size, codec="lz4", asbytes=True)
                out, at = [], 0
                for dtype, shape in layout:
                    count = n * int(np.prod(shape, dtype=np.int64))
                    a = np.frombuffer(raw, dtype, count, at)
                    out.append(a.reshape((n, *shape)) if shape else a)
                    at += count * np.dtype(dtype).itemsize
                yield out
        os.unlink(path)

    def has(self, kind: str, part: int) -> bool:
        return f"{kind}-{part:02d}" in self._files

    def read(self, kind: str, part: int, layout) -> list[np.ndarray]:
        """Every block of one file, concatenated per array."""
        blocks = list(self.blocks(kind, part, layout))
        return [np.concatenate([b[j] for b in blocks]) for j in range(len(layout))]

    def _write(self, kind: str, arrays, hashes: np.ndarray) -> None:
        part = _partition(np.ascontiguousarray(hashes))
        order = np.argsort(part, kind="stable")  # keeps capture order within a partition
        bounds = np.searchsorted(part[order], np.arange(PARTITIONS + 1))
        arrays = [a[order] for a in arrays]
        for p in np.flatnonzero(np.diff(bounds)):
            lo, hi = bounds[p], bounds[p + 1]
            self._append(kind, int(p), [a[lo:hi] for a in arrays], int(hi - lo))

    def write_rows(self, C: np.ndarray, H: np.ndarray, K: np.ndarray, key_col: int) -> None:
        self._write("rows", [C, H, K], K[:, key_col])
        self.rows += len(C)

    def write_packets(self, arrays: tuple[np.ndarray, ...], hashes: np.ndarray, data: np.ndarray | None = None,
                      caplen: np.ndarray | None = None) -> None:
        """Deferred packets; ``data``: their captured payload bytes one after the other,
        ``caplen[i]`` of them for packet i (service identification reads them at replay)."""
        n = len(hashes)
        caplen = np.zeros(n, np.int64) if caplen is None else np.asarray(caplen, np.int64)
        self._write("packets", [*arrays, caplen], hashes)
        if caplen.any():
            # the bytes in the order the packets land in their partitions
            part = _partition(np.ascontiguousarray(hashes))
            order = np.argsort(part, kind="stable")
            starts = np.cumsum(caplen) - caplen
            bounds = np.searchsorted(part[order], np.arange(PARTITIONS + 1))
            for p in np.flatnonzero(np.diff(bounds)):
                rows = order[bounds[p]:bounds[p + 1]]
                blob = gather_bytes(data, starts[rows], caplen[rows])
                if len(blob):
                    self._append("payload", int(p), [blob], len(blob))
        self.packets += n

    def read_packets(self, part: int, layout) -> tuple[list[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """A partition's deferred packets (arrays per ``layout``) and their payload as
        PAYLOAD_COLUMNS (start, caplen) over the bytes (third item)."""
        arrays = self.read("packets", part, [*layout, (np.int64, ())])
        caplen = arrays.pop()
        data = self.read("payload", part, [(np.uint8, ())])[0] if self.has("payload", part) else np.zeros(0, np.uint8)
        return arrays, (np.cumsum(caplen) - caplen, caplen.astype(np.uint32), data)

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files = {}
        self._cleanup()
