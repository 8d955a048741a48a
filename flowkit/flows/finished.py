"""Finished connections on their way out, for both flow drivers: rows -> Arrow -> disk.

Both ``StreamState`` (one pass) and ``FlowState`` (mergeable) hand the rows of
connections they finish to a ``FinishedRows``: rows are queued and become Arrow in
large groups (per-call cost dominates small ones), in a background thread (the C parts
of ``rows_to_arrow`` release the GIL) while the next batches stream. Past ``spill_rows``
finished flows, a one-pass state writes them as a sorted run to disk (spill.py), so
memory stays bounded whatever the number of flows; from then on, converted rows that
sort after the first run's end go straight to it (spill.py) and only the others wait in
memory. A mergeable state keeps its rows (``merge`` re-tags them by their internal
``_key``/``_prefix`` columns).
"""
from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa

from flowkit.flows.local import DEFAULT
from flowkit.flows.parents import ParentIndex, with_parents
from flowkit.flows.rows import STATE_SCHEMA, rows_to_arrow

FLUSH_ROWS = 8192  # finished rows converted to Arrow together (about 7 MB of rows)
MAX_CONVERTING = 1  # groups converted in the background at once (bounds memory)


class _Converting:
    """rows_to_arrow running in a thread, result on demand."""

    def __init__(self, C, H, K, local):
        self.rows = len(C)
        self._result = self._error = None
        self._thread = threading.Thread(target=self._run, args=(C, H, K, local), name="flowkit-rows", daemon=True)
        self._thread.start()

    def _run(self, C, H, K, local) -> None:
        try:
            self._result = rows_to_arrow(C, H, K, local)
        except BaseException as error:  # raised again by result()
            self._error = error

    def result(self) -> pa.Table:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result


class FinishedRows:
    """Finished connection rows of one state: queued, converted, optionally spilled."""

    def __init__(self, spill_rows: int | None = None, spill_dir: str | None = None, local=DEFAULT):
        self.local = local  # LocalNets of local_orig/local_resp
        self.spill_rows = spill_rows  # None or 0: never spill (mergeable states)
        self.spill_dir = spill_dir
        self.spill = None  # SpillDir once rows went to disk
        self.spilled_rows = 0
        self._queue: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._queued = 0
        self._converting: list[_Converting] = []
        self._tables: list[pa.Table] = []
        self.first_run_rows = spill_rows  # rows held before the first run (see start_early)
        self.parents = ParentIndex()  # tunnel parents among the rows written to runs (parents.py)

    def start_early(self) -> None:
        """Start the first run at the next group: open connections already exceed their
        budget, so finished flows will come by the thousand; streamed to the open run,
        they are not held (a large first run held in memory sets the peak RSS)."""
        if self.spill_rows:
            self.first_run_rows = min(self.spill_rows, 2 * FLUSH_ROWS)

    def add(self, C: np.ndarray, H: np.ndarray, K: np.ndarray) -> None:
        """Queue rows (copies: the caller's matrices may be reused)."""
        step = self.spill_rows
        if step and len(C) > step:  # a run holds at most spill_rows flows
            for at in range(0, len(C), step):
                self.add(C[at:at + step], H[at:at + step], K[at:at + step])
            return
        if len(C):
            self._queue.append((C, H, K))
            self._queued += len(C)
            if self._queued >= FLUSH_ROWS or (self.spill_rows and self._queued >= self.spill_rows):
                self._flush()

    def _flush(self) -> None:
        if not self._queue:
            return
        C, H, K = (np.concatenate([r[j] for r in self._queue]) for j in range(3))
        self._queue, self._queued = [], 0
        self._converting.append(_Converting(C, H, K, self.local))
        while len(self._converting) > MAX_CONVERTING:
            self._keep(self._converting.pop(0).result())
        limit = self.spill_rows if self.spill is not None else self.first_run_rows
        if limit and self.held() >= limit:
            self._collect()
            if self.held() >= limit // 2:  # not when most went to the open run
                self._write_run()

    def held(self) -> int:
        """Finished rows in memory (converted or being converted)."""
        return sum(t.num_rows for t in self._tables) + sum(c.rows for c in self._converting) + self._queued

    def _collect(self) -> None:
        for c in self._converting:
            self._keep(c.result())
        self._converting = []

    def _keep(self, tab: pa.Table) -> None:
        if self.spill is not None:  # spilling: what sorts after the open run goes to it
            from flowkit.flows.spill import sort_table

            tab = sort_table(tab)
            kept = self.spill.append(tab.drop_columns(["_key", "_prefix", "_encloses"])).num_rows
            self.parents.add(tab.slice(kept))  # final rows gone to disk (parents.py)
            self.spilled_rows += tab.num_rows - kept
            tab = tab.slice(0, kept)
        if tab.num_rows:
            self._tables.append(tab)

    def _write_run(self) -> None:
        from flowkit.flows.spill import SpillDir

        if not self._tables:  # every row went to the open first run
            return
        if self.spill is None:
            self.spill = SpillDir(self.spill_dir)
        tab = pa.concat_tables(self._tables)
        self.parents.add(tab)  # final rows: a one-pass state never takes them back
        tab = tab.drop_columns(["_key", "_prefix", "_encloses"])  # the parent slots stay, resolved on reading
        self._tables = []
        self.spilled_rows += tab.num_rows
        self.spill.write_run(tab)

    def tables(self) -> list[pa.Table]:
        """Every finished row still in memory, as Arrow tables (with ``_key``/``_prefix``)."""
        self._flush()
        self._collect()
        return self._tables

    def replace(self, tables: list[pa.Table]) -> None:
        self._queue, self._queued, self._converting = [], 0, []
        self._tables = list(tables)

    def name_expected(self, waiting: np.ndarray) -> None:
        """Name the finished connections that announcements read late (at a spilled control
        connection's replay) should have named when they opened (expected.take_expected);
        ``waiting``: the entries, rows of protocols/_expect.h's table. Sorted runs on disk are
        rewritten when one of their rows changes (rare: FTP/IRC under a memory budget)."""
        from flowkit.flows.expected import new_expectations, take_expected

        E = new_expectations()
        E[0, 0] = len(waiting)
        E[1:1 + len(waiting)] = waiting
        tables = self.tables()
        runs = []
        if self.spill is not None:
            self.spill.seal()  # appended rows now stay in memory; the final merge takes all
            runs = [pa.ipc.open_stream(pa.OSFile(path, "rb")).read_all() for path in self.spill.runs]
        named = take_expected(E, [*tables, *runs])
        self._tables = named[:len(tables)]
        for path, old, new in zip(self.spill.runs if runs else [], runs, named[len(tables):]):
            if new is not old:
                with pa.OSFile(path, "wb") as sink, pa.ipc.new_stream(sink, new.schema) as writer:
                    writer.write_table(new)

    def count(self) -> int:
        return sum(t.num_rows for t in self.tables())

    def finalize(self, open_rows, ledger, *, release: bool = False):
        """The FlowTable of these rows plus the still-open ``open_rows`` (C, H, K), sorted by
        (ts_start, flow_id).

        ``release``: the state is not used afterwards: its rows are dropped while the sorted
        table is built, column by column, so the peak holds one copy of the flows plus one
        column. When rows were spilled, the FlowTable is the sorted runs plus this sorted tail.
        """
        from flowkit.flows.spill import SpilledRows, sort_table
        from flowkit.flows.table import FlowTable

        parts = [*self.tables()]
        if len(open_rows[0]):
            parts.append(rows_to_arrow(*open_rows, self.local))
        tab = pa.concat_tables(parts) if parts else STATE_SCHEMA.empty_table()
        if release:
            self.replace([])
        del parts, open_rows
        index = self.parents
        index.add(tab)
        tab = sort_table(tab.drop_columns(["_key", "_prefix", "_encloses"]), release=release)
        if self.spill is not None:
            resolve = lambda t: with_parents(t, index)  # noqa: E731
            spilled = SpilledRows(self.spill, tab, self.spilled_rows, resolve=resolve)
            return FlowTable(resolve(tab), ledger, spilled=spilled)
        return FlowTable(with_parents(tab, index), ledger)
