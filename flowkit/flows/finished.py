"""Finished connections on their way out, for both flow drivers: rows -> Arrow -> disk.

Both ``StreamState`` (one pass) and ``FlowState`` (mergeable) hand the rows of
connections they finish to a ``FinishedRows``: rows are gathered into a staging buffer
and become Arrow in large groups (per-call cost dominates small ones), in a worker thread
(the C parts of ``rows_to_arrow`` release the GIL) while the next batches stream. Past ``spill_rows``
finished flows, a one-pass state writes them as a sorted run to disk (spill.py), so
memory stays bounded whatever the number of flows; from then on, converted rows that
sort after the first run's end go straight to it (spill.py) and only the others wait in
memory. A mergeable state keeps its rows (``merge`` re-tags them by their internal
``_key``/``_prefix`` columns).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from flowkit.flows._pool import workers
from flowkit.flows.local import DEFAULT
from flowkit.flows.parents import ParentIndex, with_parents
from flowkit.flows.rows import PARENT_SLOTS, STATE_SCHEMA, rows_to_arrow

FLUSH_ROWS = 8192  # finished rows converted to Arrow together (about 7 MB of rows)
MAX_CONVERTING = 1  # groups converted in the background at once (bounds memory)
INTERNAL = ["_key", "_prefix", "_encloses"]  # STATE_SCHEMA columns no flow table keeps


class _Converting:
    """rows_to_arrow running in a worker thread, result on demand."""

    def __init__(self, C, H, K, local, stage=None):
        self.rows = len(C)
        self.stage = stage  # the staging buffers it reads (refilled only once this is done)
        self._future = workers().submit(rows_to_arrow, C, H, K, local)

    def result(self) -> pa.Table:
        return self._future.result()  # raises what the conversion raised


class _Stage:
    """Finished rows gathered for one conversion, in buffers kept for the next ones.

    Why: a fresh group of rows (~9 MB) faults in every page anew, and the rows of
    ordinary traffic were copied twice on the way (gathered, then joined): gathered
    once into a reused stage, they cost a copy and no new pages."""

    def __init__(self, C: np.ndarray, H: np.ndarray, K: np.ndarray, rows: int):
        self.C, self.H, self.K = (np.empty((rows, *a.shape[1:]), a.dtype) for a in (C, H, K))


class FinishedRows:
    """Finished connection rows of one state: queued, converted, optionally spilled."""

    def __init__(self, spill_rows: int | None = None, spill_dir: str | None = None, local=DEFAULT):
        self.local = local  # LocalNets of local_orig/local_resp
        self.spill_rows = spill_rows  # None or 0: never spill (mergeable states)
        self.spill_dir = spill_dir
        self.spill = None  # SpillDir once rows went to disk
        self.spilled_rows = 0
        self._stages: list[_Stage] = []  # two: one being converted, one filling
        self._queued = 0  # rows in the filling stage
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

    def add(self, C: np.ndarray, H: np.ndarray, K: np.ndarray, rows: np.ndarray | None = None) -> None:
        """Queue rows ``rows`` of C, H, K (all when None), copied: the caller's may be reused."""
        n = len(C) if rows is None else len(rows)
        group = min(FLUSH_ROWS, self.spill_rows) if self.spill_rows else FLUSH_ROWS  # a run holds at most spill_rows
        at = 0
        while at < n:
            stage = self._filling(C, H, K)
            take = min(n - at, group - self._queued)
            into = slice(self._queued, self._queued + take)
            for source, dest in ((C, stage.C), (H, stage.H), (K, stage.K)):
                if rows is None:
                    dest[into] = source[at:at + take]
                else:
                    np.take(source, rows[at:at + take], axis=0, out=dest[into], mode="clip")  # "raise" buffers out
            self._queued += take
            at += take
            if self._queued >= group:
                self._flush()

    def _filling(self, C: np.ndarray, H: np.ndarray, K: np.ndarray) -> _Stage:
        """The stage rows go to now, once the conversion that read it last is collected."""
        if not self._stages:  # rows of one state share one layout: shaped by the first ones
            self._stages = [_Stage(C, H, K, FLUSH_ROWS)]
        stage = self._stages[0]
        while any(c.stage is stage for c in self._converting):  # in order: tables stay in row order
            self._keep(self._converting.pop(0).result())
        return stage

    def _flush(self) -> None:
        if not self._queued:
            return
        stage, n = self._stages[0], self._queued
        self._queued = 0
        self._converting.append(_Converting(stage.C[:n], stage.H[:n], stage.K[:n], self.local, stage))
        if len(self._stages) == 1:
            self._stages.append(_Stage(stage.C, stage.H, stage.K, FLUSH_ROWS))
        self._stages.reverse()  # fill the other one while this one converts
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
            kept = self.spill.append(tab.drop_columns(INTERNAL)).num_rows
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
        tab = tab.drop_columns(INTERNAL)  # the parent slots stay, resolved on reading
        self._tables = []
        self.spilled_rows += tab.num_rows
        self.spill.write_run(tab)

    def tables(self) -> list[pa.Table]:
        """Every finished row still in memory, as Arrow tables (with ``_key``/``_prefix``)."""
        self._flush()
        self._collect()
        return self._tables

    def replace(self, tables: list[pa.Table]) -> None:
        self._stages, self._queued, self._converting = [], 0, []
        self._tables = list(tables)

    def name_expected(self, waiting: np.ndarray) -> None:
        """Name the finished connections that announcements read late (at a spilled control
        connection's replay) should have named when they opened (expected.take_expected);
        ``waiting``: the entries, rows of protocols/_expect.h's table. Sorted runs on disk are
        read a record batch at a time, keeping only the connections to a port an entry names,
        and rewritten the same way when one of their rows changes (rare: FTP/IRC under a
        memory budget): memory stays within the budget whatever the runs hold."""
        from flowkit.flows import _machine as k
        from flowkit.flows.expected import assign, candidates, name_rows, new_expectations
        from flowkit.flows.spill import run_tables

        E = new_expectations()
        E[0, 0] = len(waiting)
        E[1:1 + len(waiting)] = waiting
        ports = waiting[:, k.X_PORT]
        tables = self.tables()
        runs = []
        if self.spill is not None:
            self.spill.seal()  # appended rows now stay in memory; the final merge takes all
            runs = self.spill.runs
        cands = [c for j, t in enumerate(tables) if (c := candidates(t, j, ports)) is not None]
        for r, path in enumerate(runs):
            first = 0
            for block in run_tables(path):
                if (c := candidates(block, len(tables) + r, ports, first)) is not None:
                    cands.append(c)
                first += block.num_rows
        named = assign(E, cands)
        self._tables = [name_rows(t, named[j]) if j in named else t for j, t in enumerate(tables)]
        for r in range(len(runs)):
            if (rows := named.get(len(tables) + r)) is not None:
                self.spill.rewrite(r, lambda block, first, rows=rows: name_rows(block, rows, first))

    def count(self) -> int:
        return sum(t.num_rows for t in self.tables())

    def finalize(self, open_rows, ledger, *, release: bool = False, final=None):
        """The FlowTable of these rows plus the still-open ``open_rows`` (C, H, K) and the
        rows of ``final`` (overflow.FinalSegments, none of which carried a tunnel), sorted by
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
        internal = list(INTERNAL)
        if self.spill is None and final is None and index.empty:  # every tunnel_parents list is empty
            internal += PARENT_SLOTS
        tab = sort_table(tab.drop_columns(internal), release=release)
        if self.spill is not None or final is not None:
            resolve = lambda t: with_parents(t, index)  # noqa: E731
            spilled = SpilledRows(self.spill, tab, self.spilled_rows, resolve=resolve, final=final)
            return FlowTable(resolve(tab), ledger, spilled=spilled)
        return FlowTable(with_parents(tab, index), ledger)
