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

from flowkit.decode._arrow import to_numpy
from flowkit.decode.addresses import address_matrix
from flowkit.decode.schema import Status

M1 = np.uint64(0x9E3779B97F4A7C15)
M2 = np.uint64(0xBF58476D1CE4E5B9)
M3 = np.uint64(0x94D049BB133111EB)

# columns of the per-key table (int64): hash, ipA hi/lo, ipB hi/lo, portA, portB, proto, vlan, inner_vlan, ip_version
K_HASH, K_AHI, K_ALO, K_BHI, K_BLO, K_APORT, K_BPORT, K_PROTO, K_VLAN, K_IVLAN, K_IPVER = range(11)
N_KEY = 11

# compact packet columns kept for merging (see state.py)
PACKET_FIELDS = ("ts", "hash", "side", "flags", "seq", "ack", "win", "plen", "iplen", "proto",
                 "ahi", "alo", "bhi", "blo", "aport", "bport", "vlan", "ivlan", "ipver")


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
    words = address_matrix(col).view(">u8").astype(np.uint64)
    return words[:, 0], words[:, 1]


def _np(batch: pa.RecordBatch, name: str) -> np.ndarray:
    return to_numpy(batch.column(name))


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
    idx = None if keep.all() else np.flatnonzero(keep)

    def col(name, dtype=np.int64):
        a = _np(batch, name)
        return (a if idx is None else a[idx]).astype(dtype, copy=False)

    shi, slo = _addr_words(batch.column("src_ip"))
    dhi, dlo = _addr_words(batch.column("dst_ip"))
    if idx is not None:
        shi, slo, dhi, dlo = shi[idx], slo[idx], dhi[idx], dlo[idx]
    sport, dport = col("src_port"), col("dst_port")
    proto, vlan, ivlan = col("ip_proto"), col("vlan"), col("inner_vlan")
    # side 1 when the source is the larger endpoint
    side = (shi > dhi) | ((shi == dhi) & ((slo > dlo) | ((slo == dlo) & (sport > dport))))
    ahi, alo, aport = np.where(side, dhi, shi), np.where(side, dlo, slo), np.where(side, dport, sport)
    bhi, blo, bport = np.where(side, shi, dhi), np.where(side, slo, dlo), np.where(side, sport, dport)
    h = mix(mix(mix(mix(np.zeros(len(side), np.uint64), ahi), alo), bhi), blo)
    h = mix(h, (aport << 16) | bport)
    h = mix(h, (proto << 32) | (vlan << 16) | ivlan)
    ts = to_numpy(batch.column("ts")).view(np.int64)
    return {
        "ts": ts if idx is None else ts[idx],
        "hash": h,
        "side": side.astype(np.int8),
        "flags": col("tcp_flags"),
        "seq": col("seq"),
        "ack": col("ack"),
        "win": col("window"),
        # UDP: Zeek sums the UDP length field minus the header, not the IP payload
        "plen": np.where(proto == 17, np.maximum(col("udp_len") - 8, 0), col("payload_len")),
        "iplen": col("ip_len"),
        "proto": proto,
        "ahi": ahi.view(np.int64), "alo": alo.view(np.int64), "bhi": bhi.view(np.int64), "blo": blo.view(np.int64),
        "aport": aport, "bport": bport, "vlan": vlan, "ivlan": ivlan, "ipver": col("ip_version"),
    }


def key_matrix(cols: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Per-key table (columns K_*) from the packets at ``rows``."""
    out = np.empty((len(rows), N_KEY), np.int64)
    out[:, K_HASH] = cols["hash"][rows].view(np.int64)
    for j, name in ((K_AHI, "ahi"), (K_ALO, "alo"), (K_BHI, "bhi"), (K_BLO, "blo"), (K_APORT, "aport"),
                    (K_BPORT, "bport"), (K_PROTO, "proto"), (K_VLAN, "vlan"), (K_IVLAN, "ivlan"), (K_IPVER, "ipver")):
        out[:, j] = cols[name][rows]
    return out


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
    return out

