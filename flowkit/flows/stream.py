"""One-pass flow state for ``flowkit.flows``: packet batches straight into open connections.

The mergeable ``FlowState`` re-keys every batch (sorts, set operations, a sorted table
of open rows) because merging needs per-key bookkeeping. One pass over a capture needs
none of it: ``StreamState`` keeps open connections in a hash table (``_stream.c``) and
feeds each batch's decoded columns to it in one call, with the same state machine
(``_conn.h``), keys and orientation rules. Finished connections leave through the same
``_finish`` path (Arrow in large groups, spilled past ``spill_rows``), so the FlowTable
is the one ``FlowState`` would give.
"""
from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa

from flowkit.decode._arrow import to_numpy
from flowkit.decode.addresses import address_matrix
from flowkit.decode.schema import PACKET_SCHEMA
from flowkit.flows import _stream
from flowkit.flows import kernel as k
from flowkit.flows.keys import N_KEY
from flowkit.flows.ports import TCP_LIKELY, UDP_LIKELY
from flowkit.flows.rows import rows_to_arrow
from flowkit.flows.state import FlowOptions, FlowState

_TCP_LIKELY = TCP_LIKELY.view(np.uint8)
_UDP_LIKELY = UDP_LIKELY.view(np.uint8)
_INT_COLUMNS = ("src_port", "dst_port", "ip_proto", "vlan", "inner_vlan", "ip_version", "status", "tcp_flags",
                "seq", "ack", "window", "payload_len", "udp_len", "ip_len")
_DTYPES = {name: np.dtype(PACKET_SCHEMA.field(name).type.to_pandas_dtype()) for name in _INT_COLUMNS}
M_ROWS, M_FREE, M_FILLED, M_TMAX = range(_stream.N_META)


class _Converting:
    """rows_to_arrow running in a thread (its C parts release the GIL), result on demand."""

    def __init__(self, C, H, K):
        self.rows = len(C)
        self._result = self._error = None
        self._thread = threading.Thread(target=self._run, args=(C, H, K), name="flowkit-rows", daemon=True)
        self._thread.start()

    def _run(self, C, H, K) -> None:
        try:
            self._result = rows_to_arrow(C, H, K)
        except BaseException as error:  # raised again by result()
            self._error = error

    def result(self) -> pa.Table:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result


class StreamState(FlowState):
    """FlowState for one pass (no merge): see the module docstring."""

    MAX_CONVERTING = 2  # finished-row groups converted in the background at once (bounds memory)

    def __init__(self, options: FlowOptions | None = None, capacity: int = 4096):
        self._converting: list[_Converting] = []
        super().__init__(options, track_prefix=False)
        self._rows = None
        self._grow(capacity)

    # finished rows become Arrow in a background thread while the next batches stream
    def _flush(self) -> None:
        if self._done_rows:
            self._converting.append(_Converting(*self._take_done()))
            while len(self._converting) > self.MAX_CONVERTING:
                self._finished.append(self._converting.pop(0).result())
            budget = self.options.spill_rows
            if budget and sum(t.num_rows for t in self._finished) + sum(c.rows for c in self._converting) >= budget:
                self._collect()
                self._maybe_spill()

    def _collect(self) -> None:
        for c in self._converting:
            self._finished.append(c.result())
        self._converting = []

    @property
    def finished(self) -> list[pa.Table]:
        self._flush()
        self._collect()
        return self._finished

    @finished.setter
    def finished(self, tables) -> None:
        self._done_rows, self._done_count = [], 0
        self._converting = []
        self._finished = list(tables)

    # open rows live in self._rows (C, H, K, used) with a free list and a hash table
    def _grow(self, capacity: int) -> None:
        C = np.zeros((capacity, k.NCOL), np.int64)
        H = np.zeros((capacity, k.HMAX), np.uint8)
        K = np.zeros((capacity, N_KEY), np.int64)
        used = np.zeros(capacity, np.uint8)
        meta = np.array([0, 0, 0, -(2**62)], np.int64)
        if self._rows is not None:
            oC, oH, oK, oused, _, ometa = self._rows
            n = int(ometa[M_ROWS])
            C[:n], H[:n], K[:n], used[:n] = oC[:n], oH[:n], oK[:n], oused[:n]
            meta[:] = ometa
        free = np.zeros(capacity, np.int64)
        if self._rows is not None:
            free[: int(meta[M_FREE])] = self._rows[4][: int(meta[M_FREE])]
        self._rows = (C, H, K, used, free, meta)
        self._table(capacity)

    def _table(self, rows: int) -> None:
        size = 1 << max(12, int(2 * rows - 1).bit_length())
        self._tkeys = np.zeros(size, np.uint64)
        self._trow = np.full(size, _stream.EMPTY, np.int64)
        C, H, K, used, free, meta = self._rows
        _stream.rebuild(K, used, meta, self._tkeys, self._trow)

    def _room(self, n: int) -> None:
        C, H, K, used, free, meta = self._rows
        if meta[M_FREE] + len(C) - meta[M_ROWS] < n:
            self._grow(max(2 * len(C), int(meta[M_ROWS]) + n))
        elif 2 * (int(meta[M_FILLED]) + n) > len(self._trow):
            self._table(len(C) + n)  # rebuilding also drops the deleted slots

    # FlowState's open-row matrices, as read-only views of the open rows
    C = property(lambda self: self._open(0))
    H = property(lambda self: self._open(1))
    K = property(lambda self: self._open(2))

    def _drop_open_rows(self) -> None:
        self._rows = None
        self._grow(16)

    def _open(self, j: int) -> np.ndarray:
        used = self._rows[3][: int(self._rows[5][M_ROWS])]
        return self._rows[j][: len(used)][used != 0]

    def advance(self, cols, evict: bool = True) -> "StreamState":
        raise TypeError("StreamState takes packet batches: use advance_batch")

    def advance_batch(self, batch: pa.RecordBatch) -> "StreamState":
        """Feed one decoded packet batch (PACKET_SCHEMA) in capture order."""
        n = batch.num_rows
        if n == 0:
            return self
        self._room(n)
        C, H, K, used, free, meta = self._rows
        ts = to_numpy(batch.column("ts")).view(np.int64)
        # the kernel reads PACKET_SCHEMA's exact types; other integer types are converted
        cols = [np.ascontiguousarray(to_numpy(batch.column(name)), _DTYPES[name]) for name in _INT_COLUMNS]
        done = np.empty(n, np.int64)
        o = self.options
        n_done = _stream.stream(
            C, H, K, used, free, meta, self._tkeys, self._trow, done, _TCP_LIKELY, _UDP_LIKELY,
            np.ascontiguousarray(ts), address_matrix(batch.column("src_ip")), address_matrix(batch.column("dst_ip")),
            *cols, o.tcp_ns, o.udp_ns, o.active_ns,
        )
        if n_done < 0:
            raise RuntimeError("flow rows ran out")  # _room guarantees a row per packet
        if self.t0 is None:
            self.t0 = int(ts[0])
        self.tmax = int(meta[M_TMAX])
        if n_done:
            d = done[:n_done]
            self._finish(C[d], H[d], K[d])
        self.evict()
        return self

    def evict(self) -> None:
        """Finish open connections no later packet can join (time only moves forward)."""
        C, H, K, used, free, meta = self._rows
        gone = np.empty(len(C), np.int64)
        n = _stream.evict(C, K, used, free, meta, self._tkeys, self._trow, gone, self.options.tcp_ns,
                          self.options.udp_ns)
        if n:
            g = gone[:n]
            self._finish(C[g], H[g], K[g])

    def merge(self, later):
        raise ValueError("only states from accumulate() can be merged (streaming states keep no prefix)")
