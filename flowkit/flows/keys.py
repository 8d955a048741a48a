"""Packet batches into the columns the state machine reads: canonical keys and sides.

A connection key is the unordered pair of endpoints plus protocol and VLAN tags.
Side 0 is the smaller endpoint (address bytes, then port): the same order Community
ID uses, so both directions of a connection share one key and one Community ID.
The 64-bit key is a hash of those fields (a collision would merge two connections;
at 2**-64 per pair this is ignored).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from flowkit.decode.schema import Status

M1 = np.uint64(0x9E3779B97F4A7C15)
M2 = np.uint64(0xBF58476D1CE4E5B9)
M3 = np.uint64(0x94D049BB133111EB)

# columns of the per-key table (int64): hash, ipA hi/lo, ipB hi/lo, portA, portB, proto, vlan, inner_vlan, ip_version
K_HASH, K_AHI, K_ALO, K_BHI, K_BLO, K_APORT, K_BPORT, K_PROTO, K_VLAN, K_IVLAN, K_IPVER = range(11)
N_KEY = 11

# compact packet columns kept for merging (see state.py)
PACKET_FIELDS = ("ts", "hash", "side", "flags", "seq", "ack", "win", "plen", "iplen", "proto", "key")


def mix(h: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Fold ``v`` into hash ``h`` (splitmix64 finaliser), whole columns, wrapping uint64."""
    with np.errstate(over="ignore"):
        x = (h ^ v.astype(np.uint64)) * M1
        x ^= x >> np.uint64(30)
        x *= M2
        x ^= x >> np.uint64(27)
        x *= M3
        x ^= x >> np.uint64(31)
    return x


def _addr_words(col: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """binary(16) column -> (high, low) big-endian uint64 words, so integer order is byte order."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    buf = col.buffers()[1]
    flat = np.frombuffer(buf, np.uint8)[col.offset * 16 : (col.offset + len(col)) * 16]
    words = flat.view(">u8").reshape(-1, 2).astype(np.uint64)
    return words[:, 0], words[:, 1]


def _np(batch: pa.RecordBatch, name: str) -> np.ndarray:
    return batch.column(name).to_numpy(zero_copy_only=False)


def packet_columns(batch: pa.RecordBatch) -> dict[str, np.ndarray] | None:
    """Flow-making packets of one batch as numpy columns (TCP/UDP, status OK), or None.

    Non-first fragments have status FRAGMENT and are left out here (they stay in the
    ledger); first fragments are status OK and carry ports, so they count.
    """
    status = _np(batch, "status")
    proto = _np(batch, "ip_proto")
    keep = (status == Status.OK) & ((proto == 6) | (proto == 17))
    if not keep.any():
        return None
    idx = np.flatnonzero(keep)
    sel = batch if len(idx) == batch.num_rows else batch.take(pa.array(idx))
    shi, slo = _addr_words(sel.column("src_ip"))
    dhi, dlo = _addr_words(sel.column("dst_ip"))
    sport = _np(sel, "src_port").astype(np.int64)
    dport = _np(sel, "dst_port").astype(np.int64)
    proto = _np(sel, "ip_proto").astype(np.int64)
    vlan = _np(sel, "vlan").astype(np.int64)
    ivlan = _np(sel, "inner_vlan").astype(np.int64)
    # side 1 when the source is the larger endpoint
    side = (shi > dhi) | ((shi == dhi) & ((slo > dlo) | ((slo == dlo) & (sport > dport))))
    ahi, alo, aport = np.where(side, dhi, shi), np.where(side, dlo, slo), np.where(side, dport, sport)
    bhi, blo, bport = np.where(side, shi, dhi), np.where(side, slo, dlo), np.where(side, sport, dport)
    h = mix(mix(mix(mix(np.zeros(len(idx), np.uint64), ahi), alo), bhi), blo)
    h = mix(h, (aport << 16) | bport)
    h = mix(h, (proto << 32) | (vlan << 16) | ivlan)
    ts = np.asarray(sel.column("ts").cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    key = np.stack(
        [
            h.view(np.int64), ahi.view(np.int64), alo.view(np.int64), bhi.view(np.int64), blo.view(np.int64),
            aport, bport, proto, vlan, ivlan, _np(sel, "ip_version").astype(np.int64),
        ],
        axis=1,
    )
    return {
        "ts": ts,
        "hash": h,
        "side": side.astype(np.int8),
        "flags": _np(sel, "tcp_flags").astype(np.int64),
        "seq": _np(sel, "seq").astype(np.int64),
        "ack": _np(sel, "ack").astype(np.int64),
        "win": _np(sel, "window").astype(np.int64),
        "plen": _np(sel, "payload_len").astype(np.int64),
        "iplen": _np(sel, "ip_len").astype(np.int64),
        "proto": proto,
        "key": key,
    }


def concat_columns(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    parts = [p for p in parts if p is not None and len(p["ts"])]
    if not parts:
        return empty_columns()
    return {f: np.concatenate([p[f] for p in parts]) for f in PACKET_FIELDS}


def take_columns(cols: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {f: cols[f][idx] for f in PACKET_FIELDS}


def empty_columns() -> dict[str, np.ndarray]:
    out = {f: np.zeros(0, np.int64) for f in PACKET_FIELDS}
    out["hash"] = np.zeros(0, np.uint64)
    out["side"] = np.zeros(0, np.int8)
    out["key"] = np.zeros((0, N_KEY), np.int64)
    return out

