"""Sorted runs of finished flows on disk, so one-pass ``flows()`` memory stays bounded.

Why: a capture's output table can be larger than memory. While streaming, once the
finished-but-unwritten flows exceed ``FlowOptions.spill_rows`` they are sorted by
(ts_start, flow_id) and written as one *run* (an Arrow IPC stream file). The FlowTable is then
the runs plus the sorted in-memory tail; ``merged()`` yields the table in order by a
k-way merge that holds at most one block per run.

Order is exactly the in-memory path's: that path stably sorts the finished flows in
the order they were finished, and runs hold consecutive stretches of that order, so a
stable sort of each merge slice, concatenated in run order, breaks ties the same way.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from flowkit.decode._arrow import take, to_numpy
from flowkit.flows._pool import release_freed_memory

TRIM_BYTES = 64 << 20  # below this a sort's freed columns are not worth handing back one by one
BLOCK = 2048  # rows per record batch of a run: what the merge holds per run (~0.7 MB)


def sort_order(tab: pa.Table) -> np.ndarray | None:
    """Row order of a stable sort by (ts_start, flow_id); None when already in that order.

    Why the check: flows mostly finish in start order (one-packet connections, expiring
    in turn), and merge pieces often come from one run: an O(n) test saves the sort and
    a copy of every column.
    """
    ts = to_numpy(tab.column("ts_start")).view(np.int64)
    fid = to_numpy(tab.column("flow_id"))
    dts = np.diff(ts)
    if (dts >= 0).all() and ((dts > 0) | (fid[1:] >= fid[:-1])).all():
        return None
    return np.lexsort((fid, ts))  # lexsort is stable: ties keep the order rows were finished in


def sort_table(tab: pa.Table, *, release: bool = False) -> pa.Table:
    """``tab`` stably sorted by (ts_start, flow_id), one column at a time (peak: one copy plus a column)."""
    if not tab.num_rows:
        return tab.combine_chunks()
    order = sort_order(tab)
    schema, columns = tab.schema, []
    trim = release and tab.nbytes > TRIM_BYTES
    for name in schema.names:
        column = tab.column(name)
        columns.append(column.combine_chunks() if order is None else take(column, order))
        tab = tab.drop_columns([name])  # the unsorted column goes as soon as it is copied
        if trim:
            release_freed_memory()
    return pa.Table.from_arrays(columns, schema=schema)


class SpillDir:
    """Temporary directory of sorted runs; removed when no FlowTable or state uses it."""

    def __init__(self, parent: str | os.PathLike | None = None):
        self.path = tempfile.mkdtemp(prefix="flowkit-spill-", dir=parent)
        self.runs: list[str] = []
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.path, True)

    def write_run(self, tab: pa.Table) -> None:
        """Sort ``tab`` (FLOW_SCHEMA columns) and write it as the next run."""
        tab = sort_table(tab, release=True)
        path = os.path.join(self.path, f"run-{len(self.runs):05d}.arrow")
        with pa.OSFile(path, "wb") as sink, pa.ipc.new_stream(sink, tab.schema) as writer:
            writer.write_table(tab, max_chunksize=BLOCK)
        self.runs.append(path)
        del tab
        release_freed_memory()

    def close(self) -> None:
        self._cleanup()


def _values(column: pa.ChunkedArray, dtype) -> np.ndarray:
    """The data buffer of a column without nulls, as numpy.

    Why not ``to_numpy()``: pyarrow imports pandas for it (~30 MB resident, in a
    command that otherwise never needs pandas).
    """
    a = column.combine_chunks()
    return np.frombuffer(a.buffers()[1], dtype, count=len(a), offset=a.offset * np.dtype(dtype).itemsize)


class _Cursor:
    """Rows of one sorted run not yet merged, read a block at a time."""

    def __init__(self, blocks: Iterator[pa.RecordBatch]):
        self.blocks = blocks
        self.buf: pa.Table | None = None
        self.ts = self.fid = None
        self.refill()

    def refill(self) -> None:
        while self.buf is None or self.buf.num_rows == 0:
            nxt = next(self.blocks, None)
            if nxt is None:
                self.buf = None
                return
            self.buf = pa.Table.from_batches([nxt])
        self.ts = _values(self.buf.column("ts_start"), np.int64)
        self.fid = _values(self.buf.column("flow_id"), np.uint64)

    @property
    def last(self) -> tuple[int, int]:
        return int(self.ts[-1]), int(self.fid[-1])

    def take_upto(self, key: tuple[int, int]) -> pa.Table:
        """Remove and return the leading rows with (ts_start, flow_id) <= key."""
        t, f = key
        n = int(np.count_nonzero((self.ts < t) | ((self.ts == t) & (self.fid <= np.uint64(f)))))
        head = self.buf.slice(0, n)
        self.buf = self.buf.slice(n)
        self.ts, self.fid = self.ts[n:], self.fid[n:]
        if self.buf.num_rows == 0:
            self.refill()
        return head


def _run_blocks(path: str) -> Iterator[pa.RecordBatch]:
    # a stream read through a plain file, one block at a time: a memory map would count
    # the mapped pages of every run as resident
    with pa.OSFile(path, "rb") as f:
        yield from pa.ipc.open_stream(f, options=pa.ipc.IpcReadOptions(use_threads=False))


def _table_blocks(tab: pa.Table) -> Iterator[pa.RecordBatch]:
    yield from tab.to_batches(max_chunksize=BLOCK)


class SpilledRows:
    """A sorted flow table held as sorted runs on disk plus a sorted in-memory tail."""

    def __init__(self, spill: SpillDir, tail: pa.Table, run_rows: int):
        self.spill = spill
        self.tail = tail
        self.num_rows = run_rows + tail.num_rows
        self.schema = tail.schema

    def merged(self) -> Iterator[pa.Table]:
        """The rows in (ts_start, flow_id) order, as tables of at most (runs + 1) x BLOCK rows.

        Each round takes from every run the rows up to the smallest of the runs' current
        block maxima: no row left behind can sort before them, and the run that set the
        bound empties its block, so every round makes progress.
        """
        cursors = [_Cursor(_run_blocks(p)) for p in self.spill.runs] + [_Cursor(_table_blocks(self.tail))]
        cursors = [c for c in cursors if c.buf is not None]
        while cursors:
            bound = min(c.last for c in cursors)
            parts = [c.take_upto(bound) for c in cursors]
            piece = pa.concat_tables([p for p in parts if p.num_rows])
            cursors = [c for c in cursors if c.buf is not None]
            if piece.num_rows:
                yield sort_table(piece)


def rechunk(tables: Iterator[pa.Table], rows: int) -> Iterator[pa.Table]:
    """The same rows as tables of exactly ``rows`` rows (the last one shorter), without copying.

    Why: output row groups (Parquet) then match the in-memory path's. Freed merge
    pieces are handed back to the system after each table (see _pool.py).
    """
    pending: list[pa.Table] = []
    have = 0
    for t in tables:
        pending.append(t)
        have += t.num_rows
        while have >= rows:
            joined = pa.concat_tables(pending)
            rest = joined.slice(rows)
            yield joined.slice(0, rows)
            del joined
            pending, have = ([rest] if rest.num_rows else []), rest.num_rows
            release_freed_memory()
    if have:
        yield pa.concat_tables(pending)
