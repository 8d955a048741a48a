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

Segments still pending at the end of the pass whose rows are final (no deferred key, no
tunnel carried) are not read back then: they stay on disk as ``FinalSegments``, sorted
stretches the flow table's merge reads as runs when it is read (spill.py), so a scan's
millions of rows are converted once, on their way out, and never written again.

Blocks are lz4-compressed, raw block format (rows are mostly zeros and sentinels: ~14x smaller;
the frame format decompressed them 3-5x slower); rows of bytes are packed first to the byte
columns that vary in the block (``_encode``).
"""
from __future__ import annotations

import math
import os
import shutil
import struct
import tempfile
import threading
import weakref
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from flowkit.flows import _rows
from flowkit.flows._pool import workers
from flowkit.flows.layout import conn, rows_where

PARTITIONS = 64  # a partition is replayed at once: about 1/64 of what was spilled
_HEADER = struct.Struct("<qq")  # rows, arrays
_SIZE = struct.Struct("<q")  # compressed bytes of one array
_M = struct.Struct("<H")  # byte columns kept of a packed array (_encode)
SEGMENT_ROWS = 8192  # open rows gathered and written at once (a segment, ~6.7 MB before lz4)
SEGMENT_BLOCKS = 2  # gather blocks: one filled while the other is compressed
FINAL_RUNS = 8  # sorted stretches of final segments the output merge may read at once (~1 MB each)
# deferred packets held before they go to their partitions: written as they came, a kernel
# call's few (a spray's filter false positives) made a block of ~25 tiny arrays per partition,
# 6,900 blocks on udpspray, 0.4 s to write and 0.75 s to read back
DEFER_PACKETS = 16384
DEFER_BYTES = 4 << 20  # ... or this many payload bytes


class _Segment(NamedTuple):
    deadline: int  # the latest of its rows' (``_conn.h``'s deadline)
    offset: int  # in the segments file
    size: int  # bytes on disk
    rows: int
    first: int  # smallest and largest ts_start
    last: int
    encloses: bool  # a row carried tunnelled packets (its flow_id must enter the parent index)
    keep: np.ndarray | None = None  # rows final as they are (the others went to the replay); None: all


def _packs(dtype, shape) -> bool:
    """Whether arrays of rows of this layout are packed (``_rows.pack_rows``) before lz4."""
    return np.dtype(dtype) == np.uint8 and len(shape) == 1 and shape[0] <= _rows.MAX_PACK_WIDTH


def _decode(n: int, sizes, data, layout, only=None) -> list[np.ndarray | None]:
    """The arrays of a block with ``n`` rows from their compressed bytes one after the other
    (``only``: indexes of the arrays wanted, the others are None)."""
    out, at, view = [], 0, memoryview(data)
    for j, ((dtype, shape), size) in enumerate(zip(layout, sizes)):
        if only is not None and j not in only:
            out.append(None)
        elif _packs(dtype, shape):  # _encode's: m, the m varying byte columns, the template, lz4
            width = shape[0]
            m = _M.unpack_from(view, at)[0]
            idx = np.frombuffer(view, np.uint16, m, at + _M.size)
            template = np.frombuffer(view, np.uint8, width, at + _M.size + 2 * m)
            skip = _M.size + 2 * m + width
            packed = pa.decompress(view[at + skip:at + size], decompressed_size=n * m, codec="lz4_raw",
                                   asbytes=True) if n * m else b""
            rows = np.empty((n, width), np.uint8)
            _rows.unpack_rows(template, idx, packed, rows)
            out.append(rows)
        else:
            items = n * math.prod(shape)
            raw = pa.decompress(view[at:at + size], decompressed_size=items * np.dtype(dtype).itemsize,
                                codec="lz4_raw", asbytes=True)
            a = np.frombuffer(raw, dtype, items)
            out.append(a.reshape((n, *shape)) if shape else a)
        at += size
    return out


def _parse(data: bytes, layout, only=None) -> list[np.ndarray | None]:
    """The arrays of one whole block (``_block``) from its bytes."""
    n, count = _HEADER.unpack_from(data)
    sizes = struct.unpack_from(f"<{count}q", data, _HEADER.size)
    return _decode(n, sizes, memoryview(data)[_HEADER.size + _SIZE.size * count:], layout, only)


def _encode(a: np.ndarray) -> bytes:
    """An array's bytes on disk: lz4; rows of bytes (state rows, keys, addresses) are packed
    first: the rows of a block share most of their bytes, and lz4 costs ~0.25 ns a byte even
    on the bytes it packs away (a spilled 824-byte row: 220 ns and 58 bytes, packed 110 ns and
    26-40 bytes, rebuilt in 40 ns plus lz4 of its packed bytes instead of 60-100 ns)."""
    a = np.ascontiguousarray(a)
    if not _packs(a.dtype, a.shape[1:]):
        return pa.compress(a, codec="lz4_raw", asbytes=True)
    n, width = a.shape
    if n == 0:
        return _M.pack(0) + bytes(width)
    idx, packed = np.empty(width, np.uint16), np.empty(a.size, np.uint8)
    m = _rows.pack_rows(a, width, idx, packed)
    data = pa.compress(packed[:n * m], codec="lz4_raw", asbytes=True) if m else b""
    return b"".join((_M.pack(m), idx[:m].tobytes(), a[0].tobytes(), data))


def _compress(arrays: list[np.ndarray]) -> list[bytes]:
    return [_encode(a) for a in arrays]


def _block(n: int, parts: list[bytes]) -> tuple[list[bytes], int]:
    """A block of ``n`` rows as written: the row and array counts, per array (``_compress``)
    its size, then the bytes (no joined copy); and its size in bytes."""
    head = _HEADER.pack(n, len(parts)) + b"".join(_SIZE.pack(len(d)) for d in parts)
    return [head, *parts], len(head) + sum(len(d) for d in parts)


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
        self._deferred: list[tuple] = []  # deferred packets not yet written (write_packets)
        self._held = [0, 0]  # their packets and payload bytes
        self.bytes = 0  # written to disk
        self._files: dict[str, object] = {}  # open for appending until read back
        self._segments = None  # file of segments (`pending`, `final` and the ones read back)
        self._end = 0  # its size, with the segments being written
        self._lock = threading.Lock()
        self.pending: list[_Segment] = []
        self.final: list[list[_Segment]] = []  # sorted stretches of segments kept for the flow table
        self._blocks: list[tuple[np.ndarray, ...]] = []  # the ring segments are gathered into
        self._turn = 0  # segments gathered so far (the ring's position)
        self._compressing: list[tuple[_Segment, object]] = []  # (segment, future), in the ring's order

    def _write_block(self, f, n: int, parts: list[bytes]) -> None:
        """One block of ``n`` rows (``_block``) at the end of file ``f``."""
        pieces, size = _block(n, parts)
        for d in pieces:
            f.write(d)
        self.bytes += size

    @staticmethod
    def _read_block(f, layout) -> list[np.ndarray] | None:
        head = f.read(_HEADER.size)
        if not head:
            return None
        n, count = _HEADER.unpack(head)
        sizes = struct.unpack(f"<{count}q", f.read(_SIZE.size * count))
        return _decode(n, sizes, f.read(sum(sizes)), layout)

    def _append(self, kind: str, part: int, arrays: list[np.ndarray], n: int) -> None:
        name = f"{kind}-{part:02d}"
        f = self._files.get(name)
        if f is None:
            f = self._files[name] = open(os.path.join(self.path, name), "ab")
        self._write_block(f, n, _compress(arrays))

    # ---------------------------------------------------------------- segments
    def write_segment(self, arrays: tuple[np.ndarray, ...], rows: np.ndarray, deadline: int,
                      start: np.ndarray) -> None:
        """Spill rows ``rows`` (at most SEGMENT_ROWS) of the open row arrays (C, H, K) as one
        segment, finished as they are from ``deadline`` (the latest of theirs) on unless a
        packet on one of their keys was deferred (see ``take_segments``); ``start``: their first
        packet times.

        They are copied into the next block of a ring of SEGMENT_BLOCKS (a block is reused once
        the segment in it is written) and compressed in a worker thread while the pass goes
        on: lz4 was the largest part of spilling, on the thread that runs the state machine."""
        while len(self._compressing) >= SEGMENT_BLOCKS:  # segments land in order: the block
            self._land()  # used SEGMENT_BLOCKS segments ago is free once fewer are in flight
        if len(self._blocks) < SEGMENT_BLOCKS:
            self._blocks.append(tuple(np.empty((SEGMENT_ROWS, *a.shape[1:]), a.dtype) for a in arrays))
        block = self._blocks[self._turn % SEGMENT_BLOCKS]  # blocks are made in turn order
        self._turn += 1
        C, H, K = (b[:len(rows)] for b in block)
        for source, dest in zip(arrays, (C, H, K)):
            np.take(source, rows, axis=0, out=dest, mode="clip")  # "raise" would buffer `out`
        seg = _Segment(deadline, -1, -1, len(C), int(start.min()), int(start.max()), bool(conn(C)["encloses"].any()))
        if self._segments is None:
            self._segments = open(os.path.join(self.path, "segments"), "w+b")
        self._compressing.append((seg, workers().submit(self._compress_segment, [C, H, K])))
        self.rows += len(C)

    def _compress_segment(self, arrays: list[np.ndarray]) -> tuple[int, int]:
        """A segment's block compressed and written at the end of the segments file, in the
        worker thread (the state machine's thread wrote them: 0.07 s and the page cache's cost
        on synscan); its (offset, size). Several may be written at once: each at its own place."""
        pieces, size = _block(len(arrays[0]), _compress(arrays))
        with self._lock:
            offset, self._end = self._end, self._end + size
        os.pwritev(self._segments.fileno(), pieces, offset)
        return offset, size

    def _land(self) -> None:
        """The oldest segment being compressed, once written, joins ``pending``."""
        seg, future = self._compressing.pop(0)
        offset, size = future.result()
        self.bytes += size
        self.pending.append(seg._replace(offset=offset, size=size))

    def _drain(self) -> None:
        while self._compressing:
            self._land()

    def due(self, tmax: int | None) -> bool:
        """Whether a segment is settled at ``tmax`` (None: the end of the pass, all are)."""
        segments = [*self.pending, *(seg for seg, _ in self._compressing)]
        return bool(segments) and (tmax is None or min(s.deadline for s in segments) <= tmax)

    def take_segments(self, tmax: int | None, layout, hashes, was_deferred):
        """The segments settled at ``tmax`` (all when None), in the order they were written,
        removed from ``pending``. Rows whose key had a packet deferred (``was_deferred(key
        hashes)``; ``hashes``: layout.key_hashes of key rows) go to their keys' partitions
        for the replay. The others are final as they are: they stay on disk for the flow table
        (``final``) when the segment fits a sorted stretch and carried no tunnel; else they
        are read back and yielded as (C, H, K) to be finished now."""
        self._drain()
        if tmax is None:
            ready, self.pending = self.pending, []
        else:
            ready = [s for s in self.pending if s.deadline <= tmax]
            self.pending = [s for s in self.pending if s.deadline > tmax]
        if ready:
            self._segments.flush()  # read by position (_read_at)
        for seg in ready:
            rows = None
            if self.packets:  # else no key had a packet deferred: nothing to read yet
                rows = self._read_at(seg, layout, None if seg.encloses else (2,))
                again = was_deferred(hashes(rows[2]))
                if again.any():
                    rows = rows if rows[0] is not None else self._read_at(seg, layout)
                    self.write_rows(*rows_where(rows, again), hashes)
                    seg = seg._replace(keep=~again)
            if not seg.encloses and self._keep_final(seg):
                continue
            if rows is None or rows[0] is None:
                rows = self._read_at(seg, layout)
            yield rows if seg.keep is None else rows_where(rows, seg.keep)
        if not self.pending and self._segments is not None and not self.final:
            self._segments.truncate(0)  # every segment read: give the disk space back
            self._end = 0

    def _read_at(self, seg: _Segment, layout, only=None) -> list[np.ndarray | None]:
        return _parse(os.pread(self._segments.fileno(), seg.size, seg.offset), layout, only)

    def _keep_final(self, seg: _Segment) -> bool:
        """Keep ``seg`` (final rows) on disk in a sorted stretch: the one whose last start
        time is the latest before the segment's first (a scan's segments, spilled oldest
        first, make one stretch), or a new one while there are fewer than FINAL_RUNS."""
        after = [r for r in self.final if r[-1].last < seg.first]
        if after:
            max(after, key=lambda r: r[-1].last).append(seg)
        elif len(self.final) < FINAL_RUNS:
            self.final.append([seg])
        else:
            return False
        return True

    def final_segments(self, layout, local) -> "FinalSegments | None":
        """The rows take_segments kept on disk (at the end of the pass), or None."""
        if not self.final:
            return None
        self._segments.flush()  # read through another descriptor
        return FinalSegments(self._segments, self.final, layout, local)

    def blocks(self, kind: str, part: int, layout: list[tuple[np.dtype, tuple]]):
        """The blocks of one file in order, each a list of arrays per ``layout`` (dtype, shape
        of one row); the file is removed once read."""
        self._write_deferred()
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
        self._write_deferred()
        return f"{kind}-{part:02d}" in self._files

    def read(self, kind: str, part: int, layout) -> list[np.ndarray]:
        """Every block of one file, concatenated per array."""
        blocks = list(self.blocks(kind, part, layout))
        return [np.concatenate([b[j] for b in blocks]) for j in range(len(layout))]

    def _write(self, kind: str, arrays, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows into their keys' partitions; returns (order, bounds): the rows in partition
        order, partition p's being order[bounds[p]:bounds[p + 1]]."""
        part = _partition(np.ascontiguousarray(hashes))
        order = np.argsort(part, kind="stable")  # keeps capture order within a partition
        bounds = np.searchsorted(part[order], np.arange(PARTITIONS + 1))
        arrays = [a[order] for a in arrays]
        for p in np.flatnonzero(np.diff(bounds)):
            lo, hi = bounds[p], bounds[p + 1]
            self._append(kind, int(p), [a[lo:hi] for a in arrays], int(hi - lo))
        return order, bounds

    def write_rows(self, C: np.ndarray, H: np.ndarray, K: np.ndarray, hashes) -> None:
        """Rows to replay (their keys had packets deferred), into their keys' partitions;
        ``hashes``: as for take_segments."""
        self._write("rows", [C, H, K], hashes(K))

    def write_packets(self, arrays: tuple[np.ndarray, ...], hashes: np.ndarray, data: np.ndarray | None = None,
                      caplen: np.ndarray | None = None) -> None:
        """Deferred packets; ``data``: their captured payload bytes one after the other,
        ``caplen[i]`` of them for packet i (service identification reads them at replay).
        Held until DEFER_PACKETS or DEFER_BYTES, then written to their partitions in order."""
        n = len(hashes)
        caplen = np.zeros(n, np.int64) if caplen is None else np.asarray(caplen, np.int64)
        data = np.zeros(0, np.uint8) if data is None else data
        self._deferred.append((tuple(arrays), np.ascontiguousarray(hashes), data, caplen))
        self._held[0] += n
        self._held[1] += len(data)
        self.packets += n
        if self._held[0] >= DEFER_PACKETS or self._held[1] >= DEFER_BYTES:
            self._write_deferred()

    def _write_deferred(self) -> None:
        if not self._deferred:
            return
        held, self._deferred, self._held = self._deferred, [], [0, 0]
        arrays = [np.concatenate([h[0][j] for h in held]) for j in range(len(held[0][0]))]
        hashes, data, caplen = (np.concatenate([h[j] for h in held]) for j in (1, 2, 3))
        order, bounds = self._write("packets", [*arrays, caplen], hashes)
        if caplen.any():  # the bytes in the order the packets landed in their partitions
            starts = np.cumsum(caplen) - caplen
            for p in np.flatnonzero(np.diff(bounds)):
                rows = order[bounds[p]:bounds[p + 1]]
                blob = gather_bytes(data, starts[rows], caplen[rows])
                if len(blob):
                    self._append("payload", int(p), [blob], len(blob))

    def read_packets(self, part: int, layout) -> tuple[list[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """A partition's deferred packets (arrays per ``layout``) and their payload as
        PAYLOAD_COLUMNS (start, caplen) over the bytes (third item)."""
        arrays = self.read("packets", part, [*layout, (np.int64, ())])
        caplen = arrays.pop()
        data = self.read("payload", part, [(np.uint8, ())])[0] if self.has("payload", part) else np.zeros(0, np.uint8)
        return arrays, (np.cumsum(caplen) - caplen, caplen.astype(np.uint32), data)

    def close(self) -> None:
        self._deferred = []
        for _, future in self._compressing:
            if not future.cancel():  # running: it writes to the segments file, wait for it
                future.exception()
        self._compressing = []
        for f in self._files.values():
            f.close()
        self._files = {}
        if self._segments is not None:
            self._segments.close()
            self._segments = None
        self._cleanup()


class FinalSegments:
    """Spilled rows final as they are, left on disk for the flow table: sorted stretches of
    segments (each segment's rows start after the stretch's earlier ones), which the output
    merge reads as runs (spill.SpilledRows), a segment converted to Arrow at a time (in the
    reading thread: converted ahead in worker threads, the freed tables stayed in their
    heaps, +38 MB peak on synscan for no time saved).

    The segments file is held open (a duplicate descriptor): the overflow directory can go
    at the end of the pass, the data stays until this is closed or collected."""

    def __init__(self, segments, runs: list[list[_Segment]], layout, local):
        self._file = os.fdopen(os.dup(segments.fileno()), "rb", buffering=0)
        self.runs = runs
        self.layout = layout
        self.local = local
        self.num_rows = sum(seg.rows if seg.keep is None else int(seg.keep.sum()) for run in runs for seg in run)

    def _rows(self, seg: _Segment) -> list[np.ndarray]:
        rows = _parse(os.pread(self._file.fileno(), seg.size, seg.offset), self.layout)
        return rows if seg.keep is None else rows_where(rows, seg.keep)

    def _table(self, seg: _Segment) -> pa.Table:
        from flowkit.flows.finished import INTERNAL
        from flowkit.flows.rows import rows_to_arrow
        from flowkit.flows.spill import sort_table

        return sort_table(rows_to_arrow(*self._rows(seg), self.local).drop_columns(INTERNAL))

    def batches(self, run: int):
        """The rows of stretch ``run`` in (ts_start, flow_id) order, as record batches of
        FLOW_SCHEMA plus the parent slots."""
        for seg in self.runs[run]:
            yield from self._table(seg).to_batches()

    def blocks(self):
        """Every segment's rows (C, H, K), stretch by stretch."""
        for run in self.runs:
            for seg in run:
                yield self._rows(seg)

    def close(self) -> None:
        self._file.close()
