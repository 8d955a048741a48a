"""Sorted runs of finished flows on disk, so one-pass ``flows()`` memory stays bounded.

Why: a capture's output table can be larger than memory. While streaming, once the
finished-but-unwritten flows exceed ``FlowOptions.spill_rows`` they are sorted by
(ts_start, flow_id) and written as one *run* (an Arrow IPC stream file). The FlowTable is then
the runs plus the sorted in-memory tail; ``merged()`` yields the table in order by a
k-way merge that holds at most one block per run.

Order is exactly the in-memory path's: that path stably sorts the finished flows in
the order they were finished, and runs hold consecutive stretches of that order, so a
stable sort of each merge slice, concatenated in run order, breaks ties the same way.

The first run stays open: finished flows that sort at or after its last row are appended
to it as they come (``append``), so flows finishing about in start order (scans, sprays,
short connections) make one long run instead of many overlapping ones, and are not held
in memory. Ties still break in finishing order: an appended row was finished after every
row before it in the run, and a row that sorts before the run's end (kept for a later
run) ties with no row appended after it.
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
BLOCK = 2048  # rows per record batch of a run: what the merge holds per run at least (~0.7 MB)
IO_BUFFER = 1 << 20  # bytes buffered when a run (or a Parquet file) is written or read
MERGE_ROWS = 32768  # rows the merge holds over all runs when there are few (~13 MB)
MAX_PIECES = 32  # pieces an output row group's columns may come in (rechunk)


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
    # by start time, then the rows of equal start times alone by flow_id: 1.2 ms instead
    # of 10.8 for lexsort((fid, ts)) on the mix's 81,624 flows; both sorts are stable, so
    # rows equal in both keep the order they were finished in
    order = np.argsort(ts, kind="stable")
    s = ts[order]
    same = s[1:] == s[:-1]
    if same.any():
        tied = np.zeros(len(s), bool)
        tied[1:] |= same
        tied[:-1] |= same
        at = np.flatnonzero(tied)
        run = np.cumsum(np.concatenate(([True], ~same)))[at]  # which run of equal times
        order[at] = order[at][np.lexsort((fid[order[at]], run))]
    return order


def sort_table(tab: pa.Table, *, release: bool = False) -> pa.Table:
    """``tab`` stably sorted by (ts_start, flow_id), one column at a time (peak: one copy plus a column)."""
    if not tab.num_rows:
        return tab.combine_chunks()
    order = sort_order(tab)
    if order is None and all(column.num_chunks == 1 for column in tab.columns):
        return tab  # in order and in one piece: nothing to do (a table of 60 columns rebuilt ~0.4 ms)
    return _sorted_by(tab, order, release)


def _sorted_by(tab: pa.Table, order: np.ndarray | None, release: bool) -> pa.Table:
    schema, columns = tab.schema, []
    trim = release and tab.nbytes > TRIM_BYTES
    for name in schema.names:
        column = tab.column(name)
        if order is not None:
            columns.append(take(column, order))
        else:
            columns.append(column.chunk(0) if column.num_chunks == 1 else column.combine_chunks())
        tab = tab.drop_columns([name])  # the unsorted column goes as soon as it is copied
        if trim:
            release_freed_memory()
    return pa.Table.from_arrays(columns, schema=schema)


class SpillDir:
    """Temporary directory of sorted runs; removed when no FlowTable or state uses it."""

    def __init__(self, parent: str | os.PathLike | None = None):
        self.path = tempfile.mkdtemp(prefix="flowkit-spill-", dir=parent)
        self.runs: list[str] = []
        self._open = None  # (file, writer) of the first run while it takes appended rows
        self.last: tuple[int, int] | None = None  # (ts_start, flow_id) of the first run's last row
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.path, True)

    def write_run(self, tab: pa.Table) -> None:
        """Sort ``tab`` (FLOW_SCHEMA columns) and write it as the next run (the first stays open)."""
        order = sort_order(tab) if tab.num_rows else None
        if order is not None:  # rows already in order (they mostly are) are written as they are
            tab = _sorted_by(tab, order, release=True)
        path = os.path.join(self.path, f"run-{len(self.runs):05d}.arrow")
        # buffered: a run is written a block (2,048 rows, ~130 buffers) at a time, and a raw
        # file made a system call of every buffer (~150,000 on synscan)
        sink = pa.BufferedOutputStream(pa.OSFile(path, "wb"), IO_BUFFER)
        writer = pa.ipc.new_stream(sink, tab.schema)
        writer.write_table(tab, max_chunksize=BLOCK)
        self.runs.append(path)
        if len(self.runs) == 1 and tab.num_rows:
            self._open = (sink, writer)
            self.last = _last_key(tab)
        else:
            writer.close()
            sink.close()
        del tab
        release_freed_memory()

    def append(self, tab: pa.Table) -> pa.Table:
        """Append the rows of sorted ``tab`` that sort at or after the first run's end to it;
        returns the others (a leading slice)."""
        if self._open is None or not tab.num_rows:
            return tab
        ts = _values(tab.column("ts_start"), np.int64)
        fid = _values(tab.column("flow_id"), np.uint64)
        t, f = self.last
        lo, hi = np.searchsorted(ts, t, "left"), np.searchsorted(ts, t, "right")
        n = int(lo + np.count_nonzero(fid[lo:hi] < np.uint64(f)))
        if n < tab.num_rows:
            self._open[1].write_table(tab.slice(n), max_chunksize=BLOCK)
            self.last = int(ts[-1]), int(fid[-1])
        return tab.slice(0, n)

    def seal(self) -> None:
        """Close the first run for reading."""
        if self._open is not None:
            self._open[1].close()
            self._open[0].close()
            self._open = None

    def rewrite(self, index: int, change) -> None:
        """Run ``index`` (sealed) rewritten a record batch at a time: each as the table
        ``change(block, first row's number)`` returns (same schema)."""
        path = self.runs[index]
        with pa.BufferedInputStream(pa.OSFile(path, "rb"), IO_BUFFER) as source, \
                pa.BufferedOutputStream(pa.OSFile(path + ".new", "wb"), IO_BUFFER) as sink:
            reader = pa.ipc.open_stream(source, options=pa.ipc.IpcReadOptions(use_threads=False))
            with pa.ipc.new_stream(sink, reader.schema) as writer:
                first = 0
                for batch in reader:
                    writer.write_table(change(pa.Table.from_batches([batch]), first), max_chunksize=BLOCK)
                    first += batch.num_rows
        os.replace(path + ".new", path)

    def close(self) -> None:
        self.seal()
        self._cleanup()


def _last_key(tab: pa.Table) -> tuple[int, int]:
    last = tab.slice(tab.num_rows - 1)
    return int(_values(last.column("ts_start"), np.int64)[0]), int(_values(last.column("flow_id"), np.uint64)[0])


def _values(column: pa.ChunkedArray, dtype) -> np.ndarray:
    """The data buffer of a column without nulls, as numpy.

    Why not ``to_numpy()``: pyarrow imports pandas for it (~30 MB resident, in a
    command that otherwise never needs pandas).
    """
    a = column.combine_chunks()
    return np.frombuffer(a.buffers()[1], dtype, count=len(a), offset=a.offset * np.dtype(dtype).itemsize)


class _Cursor:
    """Rows of one sorted run not yet merged, read ``rows`` at a time (whole blocks)."""

    def __init__(self, blocks: Iterator[pa.RecordBatch], rows: int = BLOCK):
        self.blocks = blocks
        self.rows = rows
        self.buf: pa.Table | None = None
        self.ts = self.fid = None
        self.refill()

    def refill(self) -> None:
        batches, have = [], 0
        while have < self.rows:
            nxt = next(self.blocks, None)
            if nxt is None:
                break
            batches.append(nxt)
            have += nxt.num_rows
        if not have:
            self.buf = None
            return
        self.buf = pa.Table.from_batches(batches)
        self.ts = _values(self.buf.column("ts_start"), np.int64)
        self.fid = _values(self.buf.column("flow_id"), np.uint64)

    @property
    def last(self) -> tuple[int, int]:
        return int(self.ts[-1]), int(self.fid[-1])

    def take_upto(self, key: tuple[int, int]) -> pa.Table:
        """Remove and return the leading rows with (ts_start, flow_id) <= key."""
        t, f = key
        lo, hi = np.searchsorted(self.ts, t, "left"), np.searchsorted(self.ts, t, "right")
        n = int(lo + np.count_nonzero(self.fid[lo:hi] <= np.uint64(f)))
        head = self.buf.slice(0, n)
        self.buf = self.buf.slice(n)
        self.ts, self.fid = self.ts[n:], self.fid[n:]
        if self.buf.num_rows == 0:
            self.refill()
        return head


def _run_blocks(path: str) -> Iterator[pa.RecordBatch]:
    # a stream read through a plain file, one block at a time: a memory map would count
    # the mapped pages of every run as resident
    with pa.BufferedInputStream(pa.OSFile(path, "rb"), IO_BUFFER) as f:
        yield from pa.ipc.open_stream(f, options=pa.ipc.IpcReadOptions(use_threads=False))


def run_tables(path: str) -> Iterator[pa.Table]:
    """The record batches of a run, each as a table."""
    for batch in _run_blocks(path):
        yield pa.Table.from_batches([batch])


def _table_blocks(tab: pa.Table) -> Iterator[pa.RecordBatch]:
    yield from tab.to_batches(max_chunksize=BLOCK)


class SpilledRows:
    """A sorted flow table held as sorted runs on disk plus a sorted in-memory tail."""

    def __init__(self, spill: SpillDir | None, tail: pa.Table, run_rows: int, resolve=None, final=None):
        # resolve: applied to each merged table (flows/parents.py: tunnel_parents from the
        # parent slots the runs and the tail keep); final: overflow.FinalSegments, more runs
        self.spill = spill
        self.tail = tail
        self.final = final
        self.num_rows = run_rows + tail.num_rows + (final.num_rows if final is not None else 0)
        self.resolve = resolve or (lambda t: t)
        self.schema = self.resolve(tail.slice(0, 0)).schema

    def close(self) -> None:
        if self.spill is not None:
            self.spill.close()
        if self.final is not None:
            self.final.close()

    def merged(self, rows: int = 65536) -> Iterator[pa.Table]:
        """The rows in (ts_start, flow_id) order, as tables of ``rows`` rows (the last one
        shorter), resolved a whole table at a time (per merge round, resolving cost ~1 ms
        of fixed work a round: 0.8 s on 3 M flows)."""
        for tab in rechunk(self._rounds(), rows):
            yield self.resolve(tab)

    def _rounds(self) -> Iterator[pa.Table]:
        """The rows in order, as tables of at most max(MERGE_ROWS, (runs + 1) x BLOCK) rows.

        Each round takes from every run the rows up to the smallest of the runs' current
        block maxima: no row left behind can sort before them, and the run that set the
        bound empties its block, so every round makes progress. Few runs are read more
        than a block at a time: a round costs ~1 ms whatever its size (one run and a small
        tail spread over it made 1,466 rounds of 2,048 rows on synscan).
        """
        runs = [] if self.spill is None else self.spill.runs
        if self.spill is not None:
            self.spill.seal()
        final = [] if self.final is None else [self.final.batches(j) for j in range(len(self.final.runs))]
        rows = max(BLOCK, MERGE_ROWS // (len(runs) + len(final) + 1))
        # the final segments last: their rows finished after every row of the pass they could
        # tie with (same key and start: finished before theirs opened), as in an unlimited run
        cursors = [_Cursor(_run_blocks(p), rows) for p in runs] + [_Cursor(_table_blocks(self.tail), rows)]
        cursors += [_Cursor(blocks, rows) for blocks in final]
        cursors = [c for c in cursors if c.buf is not None]
        while cursors:
            bound = min(c.last for c in cursors)
            parts = [p for p in (c.take_upto(bound) for c in cursors) if p.num_rows]
            if not parts:  # only when a run is out of order: fail rather than loop for ever
                raise RuntimeError("flow merge made no progress: a sorted run is out of order")
            cursors = [c for c in cursors if c.buf is not None]
            if len(parts) == 1:  # one run's rows: already in order
                yield parts[0]
            elif parts:
                yield _merge_sorted(pa.concat_tables(parts))


def _merge_sorted(piece: pa.Table) -> pa.Table:
    """``sort_table`` of a concatenation of sorted tables.

    Why: merge pieces are mostly long stretches of one run with a few rows of others in
    between (a long run of flows that finished in start order, a few late ones); such a
    piece is cut into those stretches and put back together as slices, without copying
    every column as a full sort would.
    """
    order = sort_order(piece)
    if order is None:
        return piece
    breaks = np.flatnonzero(np.diff(order) != 1) + 1
    if len(breaks) > len(order) // 64:  # well mixed: a full sort is cheaper
        return _sorted_by(piece, order, False)
    starts = order[np.concatenate([[0], breaks])]
    lengths = np.diff(np.concatenate([[0], breaks, [len(order)]]))
    return pa.concat_tables([piece.slice(int(a), int(n)) for a, n in zip(starts, lengths)])


def rechunk(tables: Iterator[pa.Table], rows: int) -> Iterator[pa.Table]:
    """The same rows as tables of exactly ``rows`` rows (the last one shorter), each column
    in at most MAX_PIECES pieces.

    Why: output row groups (Parquet) then match the in-memory path's, and the Parquet
    writer pays per piece: 65,536 rows in merge rounds of ~2,000 took twice as long to
    write as one copy of them plus the write (4.0 -> 2.1 s on 3 M flows). Pieces of a few
    thousand rows cost it little (+2 % for 8,192 rows), while joining them cost the merge
    thread 0.6 s on synscan, where it made the writer wait. Freed merge pieces stay in the
    heap for the next ones: handed back after each table (malloc_trim), they were faulted in
    anew, 0.3 M page faults on synscan for no lower peak.
    """
    pending: list[pa.Table] = []
    have = 0
    for t in tables:
        pending.append(t)
        have += t.num_rows
        while have >= rows:
            joined = pa.concat_tables(pending)
            rest = joined.slice(rows)
            yield _few_pieces(joined.slice(0, rows))
            del joined
            pending, have = ([rest] if rest.num_rows else []), rest.num_rows
    if have:
        yield _few_pieces(pa.concat_tables(pending))


def _few_pieces(tab: pa.Table) -> pa.Table:
    return tab if tab.column(0).num_chunks <= MAX_PIECES else tab.combine_chunks()
