"""One-pass flow state for ``flowkit.flows``: packet batches straight into open connections.

The mergeable ``FlowState`` re-keys every batch (sorts, set operations, a sorted table
of open rows) because merging needs per-key bookkeeping. One pass over a capture needs
none of it: ``StreamState`` keeps open connections in a hash table (``_stream.c``) and
feeds each batch's decoded columns to it in one call. The two are peers: the same rules
(``_rules.h``) and state machine (``_conn.h``) in C, the same finished-rows component
(finished.py), so the FlowTable is the one ``FlowState`` would give.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from flowkit.flows import _machine as k
from flowkit.flows import _stream
from flowkit.flows.finished import FinishedRows
from flowkit.flows.keys import packet_arrays
from flowkit.flows.state import FlowOptions
from flowkit.ledger import Ledger

M_ROWS, M_FREE, M_FILLED, M_TMAX = range(_stream.N_META)


class StreamState:
    """Flow state of one pass over a capture (no merge): see the module docstring."""

    def __init__(self, options: FlowOptions | None = None, capacity: int = 4096):
        self.options = options or FlowOptions()
        self.ledger = Ledger()
        self.t0: int | None = None
        self.tmax: int = -(2**62)
        self.done = FinishedRows(self.options.spill_rows, self.options.spill_dir)
        self._rows = None
        self._grow(capacity)

    # open rows live in self._rows (C, H, K, used, free: ROW_COLUMNS) with a hash table
    def _grow(self, capacity: int) -> None:
        C = np.zeros((capacity, k.NCOL), np.int64)
        H = np.zeros((capacity, k.HMAX), np.uint8)
        K = np.zeros((capacity, k.N_KEY), np.int64)
        used = np.zeros(capacity, np.uint8)
        free = np.zeros(capacity, np.int64)
        meta = np.array([0, 0, 0, -(2**62)], np.int64)
        if self._rows is not None:
            oC, oH, oK, oused, ofree = self._rows
            n = int(self._meta[M_ROWS])
            C[:n], H[:n], K[:n], used[:n] = oC[:n], oH[:n], oK[:n], oused[:n]
            meta[:] = self._meta
            free[: int(meta[M_FREE])] = ofree[: int(meta[M_FREE])]
        self._rows, self._meta = (C, H, K, used, free), meta
        self._table(capacity)

    def _table(self, rows: int) -> None:
        size = 1 << max(12, int(2 * rows - 1).bit_length())
        self._tab = (np.zeros(size, np.uint64), np.full(size, _stream.EMPTY, np.int64))
        _stream.rebuild(self._rows, self._tab, self._meta)

    def _room(self, n: int) -> None:
        meta = self._meta
        if meta[M_FREE] + len(self._rows[0]) - meta[M_ROWS] < n:
            self._grow(max(2 * len(self._rows[0]), int(meta[M_ROWS]) + n))
        elif 2 * (int(meta[M_FILLED]) + n) > len(self._tab[0]):
            self._table(len(self._rows[0]) + n)  # rebuilding also drops the deleted slots

    def _open(self, j: int) -> np.ndarray:
        used = self._rows[3][: int(self._meta[M_ROWS])]
        return self._rows[j][: len(used)][used != 0]

    # the open connections' rows (copies)
    C = property(lambda self: self._open(0))
    H = property(lambda self: self._open(1))
    K = property(lambda self: self._open(2))

    def advance_batch(self, batch: pa.RecordBatch) -> "StreamState":
        """Feed one decoded packet batch (PACKET_SCHEMA) in capture order."""
        n = batch.num_rows
        if n == 0:
            return self
        self._room(n)
        packets = packet_arrays(batch)
        done = np.empty(n, np.int64)
        o = self.options
        n_done = _stream.stream(self._rows, self._tab, self._meta, done, packets,
                                (o.tcp_ns, o.udp_ns, o.active_ns, int(o.vlan_key)))
        if self.t0 is None:
            self.t0 = int(packets[0][0])
        self.tmax = int(self._meta[M_TMAX])
        if n_done:
            self._finish(done[:n_done])
        self.evict()
        return self

    def _finish(self, rows: np.ndarray) -> None:
        C, H, K = self._rows[:3]
        self.done.add(C[rows], H[rows], K[rows])

    def evict(self) -> None:
        """Finish open connections no later packet can join (time only moves forward)."""
        gone = np.empty(len(self._rows[0]), np.int64)
        n = _stream.evict(self._rows, self._tab, self._meta, gone, (self.options.tcp_ns, self.options.udp_ns))
        if n:
            self._finish(gone[:n])

    def table(self) -> pa.Table:
        """All connections, finished and open, with the internal columns."""
        from flowkit.flows.rows import STATE_SCHEMA, rows_to_arrow

        parts = [*self.done.tables()]
        if len(self.C):
            parts.append(rows_to_arrow(self.C, self.H, self.K))
        return pa.concat_tables(parts) if parts else STATE_SCHEMA.empty_table()

    def finalize(self, *, release: bool = False):
        """The FlowTable, sorted by (ts_start, flow_id) (see FinishedRows.finalize)."""
        open_rows = (self.C, self.H, self.K)
        if release:
            self._rows = None
            self._grow(16)
        return self.done.finalize(open_rows, self.ledger, release=release)
