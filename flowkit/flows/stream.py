"""One-pass flow state for ``flowkit.flows``: packet batches straight into open connections.

The mergeable ``FlowState`` re-keys every batch (sorts, set operations, a sorted table
of open rows) because merging needs per-key bookkeeping. One pass over a capture needs
none of it: ``StreamState`` keeps open connections in a hash table (``_stream.c``) and
feeds each batch's decoded columns to it in one call. The two are peers: the same rules
(``_rules.h``) and state machine (``_conn.h``) in C, the same finished-rows component
(finished.py), so the FlowTable is the one ``FlowState`` would give.

Memory by budget (``FlowOptions.memory``, bytes): open connections get half of it, the
finished rows not yet written the other half. Connections no later packet can join are
finished lazily (a scan of the open rows each time their number doubles, and whenever the
budget is reached: amortised O(1) per packet); past the budget, the least recently active
connections go to disk as partial state (overflow.py) and are replayed at the end, so the
result equals an unlimited run, every column and the row order.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from flowkit.flows import _machine as k
from flowkit.flows import _stream
from flowkit.flows.finished import FinishedRows
from flowkit.flows.keyfilter import SpilledKeys
from flowkit.flows.layout import CONN_SIZE, KEY_SIZE, empty_rows, key_hashes, rows_where
from flowkit.flows.overflow import SEGMENT_ROWS
from flowkit.flows.keys import NO_DATA, NO_PAYLOAD, packet_arrays, payload_arrays
from flowkit.flows.expected import entries, new_expectations
from flowkit.flows.state import FlowOptions
from flowkit.ledger import Ledger

M_ROWS, M_FREE, M_FILLED, M_TMAX, M_SFILLED = range(_stream.N_META)
INF = 2**62

# bytes per open connection: the row matrices (C state, H history, K key), `used`, the free
# list, the times (`last`, `start`, `deadline`), plus the hash table (keys and rows, at most half full:
# 32 to 64 bytes, counted 64)
ROW_BYTES = CONN_SIZE + k.HMAX + KEY_SIZE + 1 + 8 + 3 * 8
TIMES = 5  # the kernel's times of the open rows (ROW_COLUMNS), three a row:
LAST, START, DEADLINE = range(3)  # last packet, first packet, _conn.h's deadline
TABLE_BYTES = 64
OPEN_BYTES = ROW_BYTES + TABLE_BYTES
FINISHED_BYTES = 480  # a finished flow as Arrow (FLOW_SCHEMA plus the internal columns), measured: 395 on mixed.pcap
MIN_EVICT_SCAN = 1024  # open rows below which the lazy eviction scan is not worth it
SPILL_BLOCK = 4096  # open rows moved or finished at once (bounded copies)
MAX_STEP = 16384  # packets per kernel call under a budget (each may need a free row)
ROW_LAYOUT = [(np.uint8, (CONN_SIZE,)), (np.uint8, (k.HMAX,)), (np.uint8, (KEY_SIZE,))]  # a row on disk
MMAP_THRESHOLD = 32 << 20  # blocks from this size mapped on their own (bound_allocator)
TRIM_THRESHOLD = 64 << 20  # free memory at the top of a heap kept for reuse up to this (bound_allocator)


class StreamState:
    """Flow state of one pass over a capture (no merge): see the module docstring."""

    def __init__(self, options: FlowOptions | None = None, capacity: int = 4096):
        self.options = options or FlowOptions()
        bound_allocator()  # fixed glibc thresholds: freed blocks reused, not faulted in anew
        self.ledger = Ledger()
        self.t0: int | None = None
        self.tmax: int = -(2**62)
        memory = self.options.memory
        spill_rows = self.options.spill_rows
        if memory and not spill_rows:
            spill_rows = max(256, memory // 2 // FINISHED_BYTES)
        self.done = FinishedRows(spill_rows, self.options.spill_dir, self.options.local)
        self.overflow = None  # overflow.Overflow once open connections went to disk
        self._rows = None
        self._scanned_at = 0  # open rows after the last eviction scan
        self._evict_backoff = self._skip_evict = 0  # eviction scans skipped at the budget (_room)
        self.keys = SpilledKeys()  # the keys whose packets are deferred (keyfilter.py)
        self.max_open = self._open_budget()
        self._grow(min(capacity, self.max_open or capacity))
        self.expect = new_expectations()  # data connections announced on control channels

    # ------------------------------------------------------------------ storage
    # open rows live in self._rows (C, H, K, used, free, times: ROW_COLUMNS) with a hash table
    def _grow(self, capacity: int) -> None:
        if self._rows is None:
            self._rows = (*empty_rows(capacity), np.zeros(capacity, np.uint8), np.zeros(capacity, np.int64),
                          np.zeros((capacity, 3), np.int64))
            self._meta = np.array([0, 0, 0, -(2**62), 0], np.int64)
        else:
            # in place (realloc: large blocks move by remapping, no second copy at the peak);
            # nothing else references these arrays
            for a in self._rows:
                a.resize((capacity, *a.shape[1:]), refcheck=False)
        self._table(capacity)

    def _table(self, rows: int) -> None:
        size = 1 << max(12, int(2 * rows - 1).bit_length())
        self._tab = (np.zeros(size, np.uint64), np.full(size, _stream.EMPTY, np.int64))
        _stream.rebuild(self._rows, self._tab, self._meta)

    def _open_budget(self) -> int | None:
        """Open connections the budget allows: its half, less what the spilled keys' filter
        holds (it follows the keys not yet settled and those with packets deferred)."""
        memory = self.options.memory
        if not memory:
            return None
        return max(8, (memory // 2 - self.keys.nbytes) // OPEN_BYTES)

    def _refit(self) -> None:
        """The filter changed size: so does the number of open connections that fit."""
        self._meta[M_SFILLED] = self.keys.count
        self.max_open = self._open_budget()
        if self.max_open is None:
            return
        if self.open_count > self.max_open:
            self._spill_oldest(self.open_count - self.max_open)  # refits again
        elif len(self._rows[0]) > self.max_open:
            self._shrink()

    def _shrink(self) -> None:
        """Fit row storage to a smaller budget: the open rows past the new end move into free
        rows before it (only those: moving every open row to the front cost synscan 0.15 s),
        the rest is released; the free list and the table are rebuilt."""
        meta, used = self._meta, self._rows[3]
        end = max(self.open_count, self.max_open)
        high = np.flatnonzero(used[end:int(meta[M_ROWS])]) + end
        low = np.flatnonzero(used[:end] == 0)[:len(high)]
        for a in (*self._rows[:3], self._rows[TIMES]):
            a[low] = a[high]
        used[low] = 1
        meta[M_ROWS] = min(int(meta[M_ROWS]), end)
        free = np.flatnonzero(used[:int(meta[M_ROWS])] == 0)
        self._rows[4][:len(free)] = free[::-1]  # the lowest rows are taken first
        meta[M_FREE] = len(free)
        self._tab = None
        for a in self._rows:
            a.resize((end, *a.shape[1:]), refcheck=False)
        self._table(len(self._rows[0]))

    @property
    def open_count(self) -> int:
        return int(self._meta[M_ROWS] - self._meta[M_FREE])

    def _room(self, n: int) -> None:
        """Free rows and table slots for n packets, within the budget."""
        meta = self._meta
        open_ = self.open_count
        if open_ >= MIN_EVICT_SCAN and open_ >= 2 * self._scanned_at:
            self.evict()
        if self.max_open is not None and self.open_count + n > self.max_open:
            if self._skip_evict:
                self._skip_evict -= 1
            else:
                before = self.open_count
                # a scan that finishes (almost) nothing is skipped the next 1, 2, 4, 8 times
                # the budget is reached: on a scan or spray the rows go to disk before their
                # deadline, and each scan read every open row (0.2-0.3 s a run); spilling makes
                # the room either way, and a spilled row past its deadline settles at once
                self._evict_backoff = min(2 * self._evict_backoff or 1, 8) if self.evict() < before // 64 else 0
                self._skip_evict = self._evict_backoff
            over = self.open_count + n - self.max_open
            if over > 0:
                # hysteresis (not at every batch), in whole segments when there are some: a short
                # last one waited for the first one's compression (synscan 0.95x wall in 5 pairs)
                want = over + self.max_open // 4
                self._spill_oldest(want if want < SEGMENT_ROWS else max(over, want - want % SEGMENT_ROWS))
        need, cap = int(meta[M_ROWS]) + n - int(meta[M_FREE]), len(self._rows[0])  # spilling may shrink
        if need > cap:
            self._grow(max(need, min(2 * cap, self.max_open or 2 * cap)))
        elif 2 * (int(meta[M_FILLED]) + n) > len(self._tab[0]):
            # open + n <= capacity here, so a table for the capacity holds them (and stays within
            # TABLE_BYTES a row); rebuilding also drops the deleted slots
            self._table(len(self._rows[0]))

    def _open_rows(self) -> np.ndarray:
        used = self._rows[3][: int(self._meta[M_ROWS])]
        return np.flatnonzero(used)

    # the open connections' rows (copies)
    C = property(lambda self: self._rows[0][self._open_rows()])
    H = property(lambda self: self._rows[1][self._open_rows()])
    K = property(lambda self: self._rows[2][self._open_rows()])

    # ------------------------------------------------------------------ packets
    def advance_batch(self, batch: pa.RecordBatch, payload=None) -> "StreamState":
        """Feed one decoded packet batch (PACKET_SCHEMA) in capture order; ``payload``: its
        decode.payload.Payload (service identification), None when there is none."""
        step = max(1, min(self.max_open // 2, MAX_STEP)) if self.max_open else batch.num_rows
        start, caplen = payload_arrays(payload)
        data = NO_DATA if payload is None else payload.data
        packets = packet_arrays(batch, self.options.vlan_key)  # linked whole: a cut may split a record's rows
        for at in range(0, batch.num_rows, step):
            part = tuple(a[at:at + step] for a in packets) if step < batch.num_rows else packets
            where = (start[at:at + step], caplen[at:at + step]) if len(start) else (start, caplen)
            self._advance(part, where, data)
        return self

    def _advance(self, packets: tuple[np.ndarray, ...], where=NO_PAYLOAD, data: np.ndarray = NO_DATA) -> None:
        """One kernel call; ``where``: PAYLOAD_COLUMNS of the packets (zero rows: none) into ``data``."""
        n = len(packets[0])
        if n == 0:
            return
        self._room(n)
        done = np.empty(n, np.int64)
        deferred = np.empty(n, np.int64)
        o = self.options
        n_done, n_def = _stream.stream(self._rows, self._tab, self.keys.words, self.keys.layers, self._meta, done,
                                       deferred,
                                       packets, where, data, self.expect,
                                       (o.tcp_ns, o.udp_ns, o.active_ns, int(o.vlan_key)))
        if self.t0 is None:
            self.t0 = int(packets[0][0])
        self.tmax = int(self._meta[M_TMAX])
        if n_done:
            self._finish(done[:n_done])
        if n_def:
            self._defer(packets, deferred[:n_def], where, data)
        if self.overflow is not None and self.overflow.due(self.tmax):
            self._settle(self.tmax)

    def _finish(self, rows: np.ndarray) -> None:
        C, H, K = self._rows[:3]
        self.done.add(C, H, K, rows)

    def _finish_open(self) -> None:
        """Finish every open connection, in start order (open connections never tie: one
        per key), a block at a time: no second copy of all open rows at the peak."""
        rows = self._open_rows()
        rows = rows[np.argsort(self._rows[TIMES][rows, START], kind="stable")]
        for at in range(0, len(rows), SPILL_BLOCK):
            self._finish(rows[at:at + SPILL_BLOCK])

    def evict(self) -> int:
        """Finish open connections no later packet can join (time only moves forward); how many."""
        gone = np.empty(len(self._rows[0]), np.int64)
        n = _stream.evict(self._rows, self._tab, self._meta, gone, (self.options.tcp_ns, self.options.udp_ns))
        if n:
            self._finish(gone[:n])
        self._scanned_at = self.open_count
        return n

    # ------------------------------------------------------------------ budget
    def _spill_oldest(self, count: int) -> None:
        """Move the ``count`` least recently active open connections to disk."""
        from flowkit.flows.overflow import Overflow

        rows = self._open_rows()
        count = min(count, len(rows))
        if count <= 0:
            return
        C, H, K = self._rows[:3]
        # connections that may still announce a data connection stay in memory (`last` INT64_MAX):
        # an announcement replayed at the end would come after the connection it names
        last = self._rows[TIMES][rows, LAST]  # kept by the kernel (_stream.c), not read from the rows
        count = min(count, int((last < INF).sum()))
        if count <= 0:
            return
        part = np.argpartition(last, count - 1)[:count]
        which, last = rows[part], last[part]
        if self.overflow is None:
            self.overflow = Overflow(self.options.spill_dir)
            self.done.start_early()
        times = self._rows[TIMES][which]
        start, deadlines = times[:, START], times[:, DEADLINE]
        # grouped by class (how far the deadline is from the last packet, keyfilter.py), then
        # segments in start order: settled rows then come back about in output order
        cls = np.frexp((deadlines - last).astype(np.float64))[1]
        order = np.lexsort((start, cls))
        which, deadlines, cls, start = which[order], deadlines[order], cls[order], start[order]
        bounds = [0, *(np.flatnonzero(np.diff(cls)) + 1), count]
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            for at in range(lo, hi, SEGMENT_ROWS):
                part = which[at:min(at + SEGMENT_ROWS, hi)]
                self.overflow.write_segment((C, H, K), part, int(deadlines[at:at + len(part)].max()),
                                            start[at:at + len(part)])
            layer = self.keys.reserve(int(cls[lo]), hi - lo)
            _stream.spill(self._rows, self._tab, self.keys.words, layer, self._meta, which[lo:hi])
            self.keys.spilled(int(cls[lo]), hi - lo, int(deadlines[lo:hi].max()))
        del C, H, K
        self._refit()  # the filter grew: fewer rows fit

    def _settle(self, tmax: int | None) -> None:
        """Spilled segments settled by ``tmax`` (all at the end, None): rows whose keys had no
        packet deferred are finished (most stay on disk as they are, read when the flow table
        is: overflow.py's final segments); the others wait for the replay in their partitions."""
        for rows in self.overflow.take_segments(tmax, ROW_LAYOUT, key_hashes, self.keys.was_deferred):
            self.done.add(*rows)
        if tmax is not None and self.keys.settle(tmax):  # their keys no longer need the filter
            self._refit()

    def _defer(self, packets: tuple[np.ndarray, ...], idx: np.ndarray, where=NO_PAYLOAD,
               data: np.ndarray = NO_DATA) -> None:
        """Packets on spilled keys: to disk with their key's rows and their payload bytes,
        replayed at the end."""
        from flowkit.flows import _machine
        from flowkit.flows.keys import empty_columns
        from flowkit.flows.overflow import gather_bytes

        taken = tuple(a[idx] for a in packets)
        out = empty_columns(len(idx))
        _machine.flow_packets(taken, NO_PAYLOAD, tuple(out.values()), (int(self.options.vlan_key),))  # the key hash
        caplen = where[1][idx].astype(np.int64) if len(where[0]) else np.zeros(len(idx), np.int64)
        starts = where[0][idx] if len(where[0]) else np.zeros(len(idx), np.int64)
        self.overflow.write_packets(taken, out["hash"], gather_bytes(data, starts, caplen), caplen)
        self.keys.defer(out["hash"])
        self._refit()

    def _replay(self, final):
        """Replay every overflow partition: rows back open, deferred packets through them.
        ``final``: the overflow's FinalSegments (or None), returned, or None once their rows
        joined the finished ones (late announcements may name any row: name_expected)."""
        from flowkit.flows import _machine
        from flowkit.flows.keys import empty_columns, packet_layout as layout_of

        row_layout = ROW_LAYOUT
        packet_layout = layout_of()
        unlimited = FlowOptions(**{**self.options.__dict__, "memory": None})
        late = []  # announcements read at the replay: after the connections they may name
        for p in range(_overflow_partitions()):
            ov = self.overflow
            if not ov.has("rows", p) and not ov.has("packets", p):
                continue
            packets, payload = ov.read_packets(p, packet_layout) if ov.has("packets", p) else (None, None)
            if packets is None:  # nothing came after: the rows are final as they are
                for block in ov.blocks("rows", p, row_layout):
                    self.done.add(*block)
                continue
            # only the rows of keys that had packets deferred run again; the others are final
            keys = empty_columns(len(packets[0]))
            _machine.flow_packets(tuple(packets), NO_PAYLOAD, tuple(keys.values()), (int(self.options.vlan_key),))
            wanted = np.unique(keys["hash"])
            kept = []
            for C, H, K in ov.blocks("rows", p, row_layout):
                again = np.isin(key_hashes(K), wanted)
                self.done.add(*rows_where((C, H, K), ~again))
                if again.any():
                    kept.append(tuple(rows_where((C, H, K), again)))
            rows = [np.concatenate([r[j] for r in kept]) if kept else np.zeros((0, *shape), dtype)
                    for j, (dtype, shape) in enumerate(row_layout)]
            state = StreamState(unlimited, capacity=len(rows[0]) + 64)
            state.done = self.done  # the replayed rows follow every row finished in the pass
            state.expect = self.expect  # announcements still waiting
            state._load(*rows)
            before = {tuple(e) for e in entries(self.expect)}
            state._advance(tuple(np.ascontiguousarray(a) for a in packets), payload[:2], payload[2])
            late += [tuple(e) for e in entries(self.expect) if tuple(e) not in before]
            state._finish_open()
        late = set(late)
        waiting = [e for e in entries(self.expect) if tuple(e) in late]
        if waiting:
            if final is not None:
                for block in final.blocks():
                    self.done.add(*block)
                final.close()
                final = None
            self.done.name_expected(np.array(waiting, np.int64))
        return final

    def _load(self, C: np.ndarray, H: np.ndarray, K: np.ndarray) -> None:
        """Open connections from rows (a fresh state)."""
        n = len(C)
        if len(self._rows[0]) < n:
            self._grow(n)
        self._rows[0][:n], self._rows[1][:n], self._rows[2][:n], self._rows[3][:n] = C, H, K, 1
        self._meta[M_ROWS] = n
        _stream.times(self._rows, np.arange(n), (self.options.tcp_ns, self.options.udp_ns))
        self._table(len(self._rows[0]))

    # ------------------------------------------------------------------ results
    def spill_stats(self) -> dict:
        """How much went to disk: open connections, deferred packets, finished flows, bytes."""
        ov = self.overflow
        return {
            "open_connections": ov.rows if ov else 0,
            "deferred_packets": ov.packets if ov else 0,
            "open_bytes": ov.bytes if ov else 0,
            "finished_flows": self.done.spilled_rows,
            "filter_bytes": self.keys.most if ov else 0,
        }

    def table(self) -> pa.Table:
        """All connections, finished and open, with the internal columns (no overflow)."""
        from flowkit.flows.rows import STATE_SCHEMA, rows_to_arrow

        parts = [*self.done.tables()]
        if self.open_count:
            parts.append(rows_to_arrow(self.C, self.H, self.K, self.done.local))
        return pa.concat_tables(parts) if parts else STATE_SCHEMA.empty_table()

    def finalize(self, *, release: bool = False):
        """The FlowTable, sorted by (ts_start, flow_id) (see FinishedRows.finalize).

        The open connections are finished after every other row (the order an unlimited
        run finishes them in; spilled ones first, they are the oldest, and no two open
        connections share a key, so none tie); then the overflow partitions are replayed.
        """
        final = None
        if self.overflow is not None:  # spilled rows are older than the open ones: first
            self._settle(None)
            final = self.overflow.final_segments(ROW_LAYOUT, self.done.local)
        self._finish_open()
        self._rows = None
        self._grow(16)
        if self.overflow is not None:
            final = self._replay(final)
        stats = self.spill_stats()
        if final is not None:
            stats["finished_flows"] += final.num_rows
        if self.overflow is not None:
            self.overflow.close()
            self.overflow = None
        self.ledger.spilled = stats if stats["open_connections"] or stats["finished_flows"] else {}
        empty = (self._rows[0][:0], self._rows[1][:0], self._rows[2][:0])
        return self.done.finalize(empty, self.ledger, release=release, final=final)


def bound_allocator() -> None:
    """Fixed glibc thresholds for a one-pass run (every ``StreamState`` sets them as it starts).

    Why: by default glibc adjusts its mmap and trim thresholds after each large free, so
    what a pass held depended on its history. Blocks up to 32 MiB (row storage, row groups,
    spilled segments, staging buffers, sorted columns) come from the heaps, and up to 64 MiB
    freed at a heap's top stays for the next ones: mapped on their own, every such block was
    faulted in anew (1.8 M page faults, a third of the CPU time on synscan, when set only
    once spilling began with a 4 MiB threshold). Measured (docs/performance.md): the mix
    0.501 -> 0.465 s, peak 170 -> 184 MB; synscan and udpspray peaks +20 MB (< 280 MB)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD: fixed, not adjusted
        libc.mallopt(-1, TRIM_THRESHOLD)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc: its allocator decides
        pass


def _overflow_partitions() -> int:
    from flowkit.flows.overflow import PARTITIONS

    return PARTITIONS
