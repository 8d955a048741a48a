"""Open connections past the memory budget, on disk as partial state until they are settled.

When ``StreamState`` holds more open connections than its budget allows, the least
recently active ones are written here as a *segment* (their rows, as the state machine
left them) and their keys enter the spilled keys' filter (keyfilter.py). A later packet on
such a key is *deferred*: written to a partition file (keys by hash) in capture order, and
its key kept as deferred. A segment is read back once every row in it is settled (no
later packet can join it or take from it: ``_conn.h``'s ``deadline``) or at the end of the pass: rows whose
key never had a packet deferred are finished as they are (most rows of a scan or spray:
no replay, and they come back in about the order they started); the others go to their
key's partition, and each partition is replayed at the end: rows open again and the
deferred packets run through them, as they would have in memory (connections of
different keys never interact). The result equals an unlimited run.

Blocks are lz4-compressed, raw block format (rows are mostly zeros and sentinels: ~14x smaller;
the frame format decompressed them 3-5x slower).
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
_HEADER = struct.Struct("<qq")  # rows, arrays
_SIZE = struct.Struct("<q")  # compressed bytes of one array


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
        self._segments = None  # file of segments: (deadline, offset, rows) of each in `pending`
        self.pending: list[tuple[int, int, int]] = []

    def _write_block(self, f, arrays: list[np.ndarray], n: int) -> None:
        """One block: rows, then per array its compressed size and bytes (no joined copy)."""
        parts = [pa.compress(np.ascontiguousarray(a), codec="lz4_raw", asbytes=True) for a in arrays]
        f.write(_HEADER.pack(n, len(parts)) + b"".join(_SIZE.pack(len(d)) for d in parts))
        for d in parts:
            f.write(d)
        self.bytes += _HEADER.size + _SIZE.size * len(parts) + sum(len(d) for d in parts)

    @staticmethod
    def _read_block(f, layout) -> list[np.ndarray] | None:
        head = f.read(_HEADER.size)
        if not head:
            return None
        n, count = _HEADER.unpack(head)
        sizes = [_SIZE.unpack(f.read(_SIZE.size))[0] for _ in range(count)]
        out = []
        for (dtype, shape), size in zip(layout, sizes):
            items = n * int(np.prod(shape, dtype=np.int64))
            raw = pa.decompress(f.read(size), decompressed_size=items * np.dtype(dtype).itemsize, codec="lz4_raw",
                                asbytes=True)
            a = np.frombuffer(raw, dtype, items)
            out.append(a.reshape((n, *shape)) if shape else a)
        return out

    def _append(self, kind: str, part: int, arrays: list[np.ndarray], n: int) -> None:
        name = f"{kind}-{part:02d}"
        f = self._files.get(name)
        if f is None:
            f = self._files[name] = open(os.path.join(self.path, name), "ab")
        self._write_block(f, arrays, n)

    # ---------------------------------------------------------------- segments
    def write_segment(self, C: np.ndarray, H: np.ndarray, K: np.ndarray, deadline: int) -> None:
        """Spilled open rows, finished as they are from ``deadline`` (the latest of theirs) on
        unless a packet on one of their keys was deferred (see ``take_segments``)."""
        if self._segments is None:
            self._segments = open(os.path.join(self.path, "segments"), "w+b")
        offset = self._segments.seek(0, os.SEEK_END)
        self._write_block(self._segments, [C, H, K], len(C))
        self.pending.append((deadline, offset, len(C)))
        self.rows += len(C)

    def due(self, tmax: int | None) -> bool:
        """Whether a segment is settled at ``tmax`` (None: the end of the pass, all are)."""
        return bool(self.pending) and (tmax is None or min(s for s, _, _ in self.pending) <= tmax)

    def take_segments(self, tmax: int | None, layout, hashes, was_deferred):
        """The segments settled at ``tmax`` (all when None), in the order they were written,
        read back and removed; each as (rows whose key had no packet deferred, the others:
        ``was_deferred(key hashes)`` says which). ``hashes``: the key hashes of key rows
        (layout.key_hashes)."""
        if tmax is None:
            ready, self.pending = self.pending, []
        else:
            ready = [s for s in self.pending if s[0] <= tmax]
            self.pending = [s for s in self.pending if s[0] > tmax]
        for _, offset, n in ready:
            self._segments.seek(offset)
            rows = self._read_block(self._segments, layout)
            again = was_deferred(hashes(rows[2]))
            if not again.any():  # the common case: no copies (views of the read-only block)
                yield rows, [a[:0] for a in rows]
            else:
                yield [a[~again] for a in rows], [a[again] for a in rows]
        if not self.pending and self._segments is not None:
            self._segments.truncate(0)  # every segment read: give the disk space back

    def blocks(self, kind: str, part: int, layout: list[tuple[np.dtype, tuple]]):
        """The blocks of one file in order, each a list of arrays per ``layout`` (dtype, shape
        of one row); the file is removed once read."""
        name = f"{kind}-{part:02d}"
        if name not in self._files:
            return
        self._files.pop(name).close()
        path = os.path.join(self.path, name)
        with open(path, "rb") as f:
            while (block := self._read_block(f, layout)) is not None:
                yield block
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

    def write_rows(self, C: np.ndarray, H: np.ndarray, K: np.ndarray, hashes) -> None:
        """Rows to replay (their keys had packets deferred), into their keys' partitions;
        ``hashes``: as for take_segments."""
        self._write("rows", [C, H, K], hashes(K))

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
        if self._segments is not None:
            self._segments.close()
            self._segments = None
        self._cleanup()
