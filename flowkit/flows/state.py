"""Mergeable partial flow state: the basis of chunked streaming, rotated files and workers.

``accumulate(batches, options)`` runs a part of a capture through the state machine
(kernel.py) and returns a ``FlowState``: finished connections (Arrow), the open
connection of each key (fixed-size rows), and what a later ``merge`` needs to stitch
parts exactly.

Exact merging. A part's connections depend on the state the earlier parts left only
through its *prefix*: per key, the packets from the part's start up to the first gap
of at least the inactivity timeout (a gap that long always starts a new connection,
whatever the state). So a state keeps, per key, its prefix packets in compact columns
(``pend``); ``earlier.merge(later)`` re-runs the later prefix packets of every key that
is still open in ``earlier`` from that open connection, and replaces the later
part's prefix connections by the result. Everything after a prefix is final as is.
Requires packets in non-decreasing time across the boundary (capture order).

Memory: open connections are evicted to the finished table once no later packet
could still join them (their removal deadline is at or before the newest timestamp
seen), so memory follows the number of concurrently active connections.
"""
from __future__ import annotations

import io

import numpy as np
import pyarrow as pa

from flowkit.capture.records import Damage
from flowkit.flows import _machine as k
from flowkit.flows.finished import FinishedRows
from flowkit.flows.expected import joined_expectations, new_expectations, take_expected
from flowkit.flows.overflow import gather_bytes
from flowkit.flows.keys import NO_DATA, concat_columns, empty_columns, key_matrix, take_columns
from flowkit.flows.layout import conn, empty_rows as _empty_rows, key_hashes
from flowkit.flows.rows import STATE_SCHEMA, rows_to_arrow
from flowkit.flows.options import FlowOptions, parse_size  # noqa: F401  (re-exported)
from flowkit.ledger import Ledger



PEND_SMALL = 512  # payload bytes of a pending packet always kept
PEND_LOOK = 16  # larger payloads kept per key and side in a batch (_identify.h's SVC_LOOK_TLS)


class FlowState:
    """Partial flow state of a run of consecutive packets; see the module docstring."""

    def __init__(self, options: FlowOptions | None = None):
        self.options = options or FlowOptions()
        self.ledger = Ledger()
        self.t0: int | None = None  # first packet time of the part (ns)
        self.tmax: int = -(2**62)
        self.done = FinishedRows(local=self.options.local)  # finished connections (kept: merge re-tags them)
        self.C, self.H, self.K = _empty_rows()  # open connections, one per key, sorted by key
        self.seen = np.zeros(0, np.uint64)  # every key with a packet in the part
        # prefix bookkeeping per key: state 1 = prefix still open, 2 = closed; last prefix packet time
        self.pk_key = np.zeros(0, np.uint64)
        self.pk_state = np.zeros(0, np.int8)
        self.pk_last = np.zeros(0, np.int64)
        self.pk_first = np.zeros(0, np.int64)
        self.pend = empty_columns()
        self.pend_data = NO_DATA  # payload bytes of pending packets (their pstart/pcap point here)
        self.expect = new_expectations()  # data connections announced on control channels

    # ------------------------------------------------------------------ helpers
    @property
    def open_keys(self) -> np.ndarray:
        return key_hashes(self.K)

    def _timeouts(self, proto: np.ndarray) -> np.ndarray:
        return np.where(proto == 6, self.options.tcp_ns, self.options.udp_ns)

    def _finish(self, C, H, K) -> None:
        self.done.add(C, H, K)

    @property
    def finished(self) -> list[pa.Table]:
        """Finished connections as Arrow tables (with the internal ``_key``/``_prefix`` columns)."""
        return self.done.tables()

    @finished.setter
    def finished(self, tables: list[pa.Table]) -> None:
        self.done.replace(tables)

    # ------------------------------------------------------------------ prefix
    def _prefix_flags(self, cols, data: np.ndarray = NO_DATA) -> np.ndarray:
        """Which packets belong to their key's prefix (and update the prefix tables); the
        prefix packets are kept with the payload bytes a merge's re-run may identify from."""
        n = len(cols["ts"])
        if n == 0:
            return np.zeros(n, np.int8)
        h, ts = cols["hash"], cols["ts"]
        timeout = self._timeouts(cols["proto"])
        order = np.argsort(h, kind="stable")
        hs, tss, tos = h[order], ts[order], timeout[order]
        start = np.ones(n, bool)
        start[1:] = hs[1:] != hs[:-1]
        prev = np.empty(n, np.int64)
        prev[1:] = tss[:-1]
        # gap reference for a key's first packet here: its last prefix packet, or the part start
        pos = np.searchsorted(self.pk_key, hs)
        pos_c = np.minimum(pos, max(len(self.pk_key) - 1, 0))
        in_pk = (len(self.pk_key) > 0) & (self.pk_key[pos_c] == hs) if len(self.pk_key) else np.zeros(n, bool)
        in_seen = np.isin(hs, self.seen)
        first_ref = np.where(in_pk, self.pk_last[pos_c] if len(self.pk_key) else 0, self.t0)
        prev[start] = first_ref[start]
        bad = (tss - prev) >= tos
        # keys already closed (seen, but not an open prefix) are never prefix
        closed_before = np.where(in_pk, (self.pk_state[pos_c] if len(self.pk_key) else 0) == 2, in_seen)
        bad |= start & closed_before
        grp = np.cumsum(start) - 1
        cum = np.cumsum(bad)
        base = (cum - bad)[start][grp]
        is_pref = (cum - base) == 0
        flags = np.zeros(n, np.int8)
        flags[order] = is_pref
        # new prefix tables: per key in this batch
        ukeys = hs[start]
        last_idx = np.r_[np.flatnonzero(start)[1:] - 1, n - 1]
        ends_open = is_pref[last_idx]
        any_pref = np.maximum.reduceat(is_pref.astype(np.int8), np.flatnonzero(start)).astype(bool)
        last_pref_ts = np.where(ends_open, tss[last_idx], 0)
        first_pref_ts = np.where(start & is_pref, tss, 0)[start]
        keep_old = ~np.isin(self.pk_key, ukeys)
        st_new = np.where(ends_open, 1, 2).astype(np.int8)
        new_first = np.where(in_pk[start], self.pk_first[pos_c[start]] if len(self.pk_key) else 0, first_pref_ts)
        relevant = any_pref | in_pk[start]
        keys = np.concatenate([self.pk_key[keep_old], ukeys[relevant]])
        srt = np.argsort(keys, kind="stable")
        self.pk_key = keys[srt]
        self.pk_state = np.concatenate([self.pk_state[keep_old], st_new[relevant]])[srt]
        self.pk_last = np.concatenate([self.pk_last[keep_old], last_pref_ts[relevant]])[srt]
        self.pk_first = np.concatenate([self.pk_first[keep_old], new_first[relevant]])[srt]
        if flags.any():
            pend = take_columns(cols, np.flatnonzero(flags))
            self._keep_pending(pend, data)
        return flags

    def _keep_pending(self, pend: dict[str, np.ndarray], data: np.ndarray) -> None:
        """Append prefix packets to ``pend``, with the payload bytes identification can read
        when a merge re-runs them: every payload of at most PEND_SMALL bytes (control
        channels are read to the end), larger ones among the first PEND_LOOK payload
        packets of their key and side in the batch (identification reads at most
        SVC_LOOK_TLS per side); bulk transfers keep about PEND_LOOK packets per batch."""
        pcap = pend["pcap"] if len(data) else np.zeros_like(pend["pcap"])
        has = pcap > 0
        rank = np.zeros(len(pcap), np.int64)
        if has.any():
            idx = np.flatnonzero(has)
            order = idx[np.lexsort((idx, pend["side"][idx], pend["hash"][idx]))]
            grp = pend["hash"][order].astype(np.uint64) * np.uint64(2) + pend["side"][order].astype(np.uint64)
            first = np.r_[True, grp[1:] != grp[:-1]]
            pos = np.arange(len(order))
            rank[order] = pos - np.maximum.accumulate(np.where(first, pos, 0))
        pend["pcap"] = np.where(has & ((pcap <= PEND_SMALL) | (rank < PEND_LOOK)), pcap, 0)
        self._append_pending(pend, data)

    def _append_pending(self, pend: dict[str, np.ndarray], data: np.ndarray) -> None:
        """Append packets to ``pend``, copying their payload bytes (pcap of them at pstart in
        ``data``) to ``pend_data``."""
        pcap = pend["pcap"] if len(data) else np.zeros_like(pend["pcap"])
        keep = pcap > 0
        blob = gather_bytes(data, pend["pstart"][keep], pcap[keep])
        pstart = np.zeros(len(pcap), np.int64)
        pstart[keep] = len(self.pend_data) + np.cumsum(pcap[keep]) - pcap[keep]
        self.pend = concat_columns([self.pend, {**pend, "pstart": pstart, "pcap": pcap}])
        if len(blob):
            self.pend_data = np.concatenate([self.pend_data, blob])

    # ------------------------------------------------------------------ core
    def advance(self, cols: dict[str, np.ndarray] | None, data: np.ndarray | None = None) -> "FlowState":
        """Feed one batch of flow packets (keys.flow_packets) in capture order; ``data``: the
        bytes their pstart/pcap point into (the batch's Payload.data), None when none."""
        if cols is None or len(cols["ts"]) == 0:
            return self
        if self.t0 is None:
            self.t0 = int(cols["ts"][0])
        data = NO_DATA if data is None else data
        self._run(cols, self._prefix_flags(cols, data), data)
        self.seen = np.union1d(self.seen, np.unique(cols["hash"]))
        self.evict()
        return self

    def _run(self, cols: dict[str, np.ndarray], prefix: np.ndarray, data: np.ndarray = NO_DATA) -> None:
        """The packets through the state machine, from the open connections of their keys."""
        h = cols["hash"]
        ukeys, first, slot = np.unique(h, return_index=True, return_inverse=True)
        slot = slot.astype(np.int64).ravel()
        SK = key_matrix(cols, first)
        packets = (cols["ts"], slot, cols["side"], cols["flags"], cols["seq"], cols["ack"], cols["win"],
                   cols["plen"], cols["iplen"], cols["proto"], prefix, cols["pstart"],
                   cols["pcap"] if len(data) else np.zeros_like(cols["pcap"]), cols["kind"], cols["ehi"],
                   cols["elo"], cols["parent"], cols["encloses"])  # MACHINE_COLUMNS
        # open connections whose key occurs in this batch move into the work rows
        okeys = self.open_keys
        touched = np.isin(okeys, ukeys)
        m = int(touched.sum())
        slot_conn = np.full(len(ukeys), -1, np.int64)
        if m:
            slot_conn[np.searchsorted(ukeys, okeys[touched])] = np.arange(m)
        cap = m + len(ukeys) + 64 + len(h) // 16
        while True:
            C, H, K = _empty_rows(cap)
            C[:m], H[:m], K[:m] = self.C[touched], self.H[touched], self.K[touched]
            sc = slot_conn.copy()
            done = np.zeros(cap, bool)
            o = self.options
            n = k.advance((C, H, K, done), (SK, sc), packets, data, self.expect, (m, o.tcp_ns, o.udp_ns, o.active_ns))
            if n >= 0:
                break
            cap *= 2
        C, H, K, done = C[:n], H[:n], K[:n], done[:n]
        self._finish(C[done], H[done], K[done])
        still = ~done
        # merge untouched open rows with the new open rows, sorted by key
        C2 = np.concatenate([self.C[~touched], C[still]])
        H2 = np.concatenate([self.H[~touched], H[still]])
        K2 = np.concatenate([self.K[~touched], K[still]])
        order = np.argsort(key_hashes(K2), kind="stable")
        self.C, self.H, self.K = C2[order], H2[order], K2[order]
        self.tmax = max(self.tmax, int(cols["ts"].max()))

    def deadlines(self) -> np.ndarray:
        """Per open connection: the time from which a packet on its key starts a new one."""
        C = np.ascontiguousarray(self.C)
        out = np.empty(len(C), np.int64)
        k.deadlines(C, out, (self.options.tcp_ns, self.options.udp_ns))
        return out

    def evict(self) -> None:
        """Finish open connections no later packet can join (time only moves forward)."""
        if len(self.C) == 0:
            return
        gone = self.deadlines() <= self.tmax
        if gone.any():
            self._finish(self.C[gone], self.H[gone], self.K[gone])
            keep = ~gone
            self.C, self.H, self.K = self.C[keep], self.H[keep], self.K[keep]

    # ------------------------------------------------------------------ merge
    def merge(self, later: "FlowState") -> "FlowState":
        """State of ``self`` followed by ``later`` (``self`` precedes it in capture order)."""
        E, L = self, later
        if E.t0 is None:
            out = L._copy()
            out.ledger = E.ledger.merge(L.ledger)
            return out
        if L.t0 is None:
            out = E._copy()
            out.ledger = E.ledger.merge(L.ledger)
            return out
        out = FlowState(E.options)
        out.ledger = E.ledger.merge(L.ledger)
        out.t0, out.tmax = E.t0, max(E.tmax, L.tmax)
        tcp_ns, udp_ns = E.options.tcp_ns, E.options.udp_ns

        # per later prefix key: does the prefix continue the merged prefix?
        lp_keys = L.pk_key
        e_pos = np.searchsorted(E.pk_key, lp_keys)
        e_pos_c = np.minimum(e_pos, max(len(E.pk_key) - 1, 0))
        in_epk = (E.pk_key[e_pos_c] == lp_keys) if len(E.pk_key) else np.zeros(len(lp_keys), bool)
        in_eseen = np.isin(lp_keys, E.seen)
        # proto per later prefix key from its pending packets (first packet)
        pend_h = L.pend["hash"]
        first_pkt = np.searchsorted(np.sort(pend_h), lp_keys)  # presence check only
        lp_proto = np.full(len(lp_keys), 6)
        if len(pend_h):
            ord_h = np.argsort(pend_h, kind="stable")
            pos = np.searchsorted(pend_h[ord_h], lp_keys)
            pos = np.minimum(pos, len(pend_h) - 1)
            lp_proto = L.pend["proto"][ord_h][pos]
        to = np.where(lp_proto == 6, tcp_ns, udp_ns)
        e_open_prefix = in_epk & ((E.pk_state[e_pos_c] == 1) if len(E.pk_key) else False)
        e_last = E.pk_last[e_pos_c] if len(E.pk_key) else np.zeros(len(lp_keys), np.int64)
        has_pend = L.pk_first > 0
        cont = has_pend & np.where(
            e_open_prefix, (L.pk_first - e_last) < to, ~in_eseen & ((L.pk_first - E.t0) < to)
        )
        cont &= np.where(in_eseen, e_open_prefix, True)
        cont_keys = lp_keys[cont]

        # keys to re-run: later prefix keys with an open connection in E
        l_prefix_keys = np.unique(pend_h) if len(pend_h) else np.zeros(0, np.uint64)
        e_open = E.open_keys
        rerun = np.intersect1d(l_prefix_keys, e_open)

        # finished rows of L: drop prefix rows of re-run keys, re-tag prefix flags
        def retag(tab: pa.Table) -> pa.Table:
            if tab.num_rows == 0:
                return tab
            key = tab.column("_key").to_numpy()
            pref = tab.column("_prefix").to_numpy(zero_copy_only=False)
            drop = pref & np.isin(key, rerun)
            newpref = pref & np.isin(key, cont_keys)
            tab = tab.set_column(tab.schema.get_field_index("_prefix"), "_prefix", pa.array(newpref))
            return tab.filter(pa.array(~drop))

        out.finished = [*E.finished, *(retag(t) for t in L.finished)]

        # E's open connections: re-run, superseded, or still open
        e_rerun = np.isin(e_open, rerun)
        e_super = ~e_rerun & np.isin(e_open, L.seen)
        if e_super.any():
            out.finished.append(rows_to_arrow(E.C[e_super], E.H[e_super], E.K[e_super], E.done.local))
        e_keep = ~e_rerun & ~e_super

        # L's open connections
        l_open = L.open_keys
        l_pref = conn(L.C)["prefix"] != 0
        l_drop = np.isin(l_open, rerun) & l_pref
        lC, lH, lK = L.C[~l_drop].copy(), L.H[~l_drop], L.K[~l_drop]
        conn(lC)["prefix"] = (conn(lC)["prefix"] != 0) & np.isin(key_hashes(lK), cont_keys)

        # announcements E left waiting, and those the re-run reads, name L's new connections
        waiting = E.expect.copy()
        parts_C, parts_H, parts_K = [E.C[e_keep], lC], [E.H[e_keep], lH], [E.K[e_keep], lK]
        if len(rerun):
            tmp = FlowState(E.options)
            tmp.t0 = E.t0
            tmp.C, tmp.H, tmp.K = E.C[e_rerun], E.H[e_rerun], E.K[e_rerun]
            tmp.expect = waiting
            sel = take_columns(L.pend, np.flatnonzero(np.isin(pend_h, rerun)))
            if len(sel["ts"]):
                tmp._run(sel, np.zeros(len(sel["ts"]), np.int8), L.pend_data)
            # rows of the re-run: prefix iff the key's prefix continues into the merged prefix
            fin = [t for t in tmp.finished]
            for t in fin:
                key = t.column("_key").to_numpy()
                t = t.set_column(t.schema.get_field_index("_prefix"), "_prefix", pa.array(np.isin(key, cont_keys)))
                out.finished.append(t)
            tk = tmp.open_keys
            conn(tmp.C)["prefix"] = np.isin(tk, cont_keys)
            # a re-run key whose later open connection is not a prefix one keeps that one open
            l_nonpref_open = np.isin(tk, l_open[~l_pref])
            if l_nonpref_open.any():
                out.finished.append(rows_to_arrow(tmp.C[l_nonpref_open], tmp.H[l_nonpref_open], tmp.K[l_nonpref_open],
                                                  E.done.local))
            keep = ~l_nonpref_open
            parts_C.append(tmp.C[keep])
            parts_H.append(tmp.H[keep])
            parts_K.append(tmp.K[keep])
        at = len(E.finished)
        out.finished[at:at + len(L.finished)] = take_expected(waiting, out.finished[at:at + len(L.finished)], lC, lK)
        out.expect = joined_expectations(waiting, L.expect)
        C2, H2, K2 = np.concatenate(parts_C), np.concatenate(parts_H), np.concatenate(parts_K)
        order = np.argsort(key_hashes(K2), kind="stable")
        out.C, out.H, out.K = C2[order], H2[order], K2[order]
        out.seen = np.union1d(E.seen, L.seen)

        # merged prefix tables and pending packets
        e_keys_pk = E.pk_key
        l_pos = np.searchsorted(lp_keys, e_keys_pk)
        l_pos_c = np.minimum(l_pos, max(len(lp_keys) - 1, 0))
        in_lpk = (lp_keys[l_pos_c] == e_keys_pk) if len(lp_keys) else np.zeros(len(e_keys_pk), bool)
        in_lseen = np.isin(e_keys_pk, L.seen)
        st = E.pk_state.copy()
        last = E.pk_last.copy()
        cont_e = in_lpk & np.isin(e_keys_pk, cont_keys)
        st = np.where(cont_e, L.pk_state[l_pos_c] if len(lp_keys) else st, st)
        last = np.where(cont_e, L.pk_last[l_pos_c] if len(lp_keys) else last, last)
        st = np.where((st == 1) & in_lseen & ~cont_e, 2, st).astype(np.int8)
        new_l = cont & ~in_eseen
        keys = np.concatenate([e_keys_pk, lp_keys[new_l]])
        srt = np.argsort(keys, kind="stable")
        out.pk_key = keys[srt]
        out.pk_state = np.concatenate([st, L.pk_state[new_l]])[srt].astype(np.int8)
        out.pk_last = np.concatenate([last, L.pk_last[new_l]])[srt]
        out.pk_first = np.concatenate([E.pk_first, L.pk_first[new_l]])[srt]
        lsel = np.flatnonzero(np.isin(pend_h, cont_keys))
        out.pend, out.pend_data = E.pend, E.pend_data
        out._append_pending(take_columns(L.pend, lsel), L.pend_data)
        del first_pkt
        return out

    def _copy(self) -> "FlowState":
        out = FlowState(self.options)
        out.__dict__.update({key: value for key, value in self.__dict__.items()})
        out.done = FinishedRows(local=self.options.local)
        out.finished = list(self.finished)
        return out

    # ------------------------------------------------------------------ results
    def table(self) -> pa.Table:
        """All connections, finished and open, with the internal columns."""
        parts = [*self.finished]
        if len(self.C):
            parts.append(rows_to_arrow(self.C, self.H, self.K, self.done.local))
        if not parts:
            return STATE_SCHEMA.empty_table()
        return pa.concat_tables(parts)

    def finalize(self, *, release: bool = False):
        """The FlowTable, sorted by (ts_start, flow_id) (see FinishedRows.finalize)."""
        open_rows = (self.C, self.H, self.K)
        if release:
            self.C, self.H, self.K = _empty_rows()
        return self.done.finalize(open_rows, self.ledger, release=release)

    # ------------------------------------------------------------------ serialisation
    def to_arrow(self) -> pa.Table:
        """Finished connections as a table; the rest of the state rides in its schema metadata."""
        tab = pa.concat_tables(self.finished) if self.finished else STATE_SCHEMA.empty_table()
        blobs = {
            "C": self.C, "H": self.H, "K": self.K, "seen": self.seen,
            "pk_key": self.pk_key, "pk_state": self.pk_state, "pk_last": self.pk_last, "pk_first": self.pk_first,
            **{f"pend.{name}": v for name, v in self.pend.items()},
            "pend_data": self.pend_data, "expect": self.expect,
        }
        meta = {f"flowkit.{name}".encode(): _dump(v) for name, v in blobs.items()}
        meta[b"flowkit.scalars"] = repr(
            {"t0": self.t0, "tmax": self.tmax,
             "ledger": {"counts": self.ledger.counts, "packets": self.ledger.packets, "bytes_read": self.ledger.bytes_read,
                        "damage": [(d.path, d.offset, d.message) for d in self.ledger.damage]}}
        ).encode()
        return tab.replace_schema_metadata(meta)

    @classmethod
    def from_arrow(cls, table: pa.Table, options: FlowOptions | None = None) -> "FlowState":
        import ast

        meta = table.schema.metadata or {}
        scal = ast.literal_eval(meta[b"flowkit.scalars"].decode())
        out = cls(options)
        out.t0, out.tmax = scal["t0"], scal["tmax"]
        out.ledger.counts = dict(scal["ledger"]["counts"])
        out.ledger.packets = scal["ledger"]["packets"]
        out.ledger.bytes_read = scal["ledger"]["bytes_read"]
        out.ledger.damage = [Damage(*d) for d in scal["ledger"].get("damage", [])]
        get = lambda name: _load(meta[f"flowkit.{name}".encode()])  # noqa: E731
        out.C, out.H, out.K, out.seen = get("C"), get("H"), get("K"), get("seen")
        out.pk_key, out.pk_state, out.pk_last, out.pk_first = get("pk_key"), get("pk_state"), get("pk_last"), get("pk_first")
        out.pend = {name: get(f"pend.{name}") for name in empty_columns()}
        out.pend_data, out.expect = get("pend_data"), get("expect")
        plain = table.replace_schema_metadata(None)
        out.finished = [plain] if plain.num_rows else []
        return out

    def __repr__(self) -> str:
        done = sum(t.num_rows for t in self.finished)
        return f"FlowState(finished={done}, open={len(self.C)}, pending_packets={len(self.pend['ts'])})"


def _dump(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _load(b: bytes) -> np.ndarray:
    return np.load(io.BytesIO(b), allow_pickle=False)



