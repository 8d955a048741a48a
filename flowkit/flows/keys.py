"""Packet batches into what the flow kernels read (the rules themselves are _rules.h's).

``packet_arrays`` hands a decoded batch's columns to C in the kernels' PACKET_COLUMNS
order and types, for both drivers. ``flow_packets`` (the mergeable driver) keeps a
batch's flow packets as compact columns with their connection key, side and hash,
computed in C by the same rules the one-pass driver applies packet by packet.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from flowkit.decode._arrow import to_numpy
from flowkit.decode.addresses import address_matrix
from flowkit.decode.schema import PACKET_SCHEMA
from flowkit.flows import _machine

PACKET_FIELDS = _machine.FLOW_PACKET_COLUMNS
_DTYPES = {name: np.dtype(np.int64) for name in PACKET_FIELDS} | {
    "hash": np.dtype(np.uint64), "side": np.dtype(np.int8), "parent": np.dtype(np.uint64),
    "encloses": np.dtype(np.int8)}
# columns a batch may lack, read as zeros: ``bad_checksum`` exists only when checksums are
# verified (decode.schema.BAD_CHECKSUM), the tunnel columns only from engines that decapsulate
OPTIONAL = {"bad_checksum": np.dtype(np.uint8), "tunnel_type": np.dtype(np.uint8),
            "tunnel_src_port": np.dtype(np.uint16), "tunnel_dst_port": np.dtype(np.uint16),
            "tunnel_depth": np.dtype(np.uint8), "index": np.dtype(np.int64)}
# PACKET_COLUMNS computed per batch (_rules.h's tunnel_links), never decoded
LINKS = {"parent": np.dtype(np.uint64), "encloses": np.dtype(np.uint8)}
ADDRESSES = ("src_ip", "dst_ip", "tunnel_src_ip")
_INPUT_DTYPES = {**OPTIONAL, **LINKS, **{name: np.dtype(PACKET_SCHEMA.field(name).type.to_pandas_dtype())
                                         for name in _machine.PACKET_COLUMNS
                                         if name not in ("ts", *ADDRESSES) and name in PACKET_SCHEMA.names}}


def packet_layout() -> list[tuple[np.dtype, tuple]]:
    """(dtype, row shape) of each PACKET_COLUMNS array, as packet_arrays gives them."""
    return [(np.dtype(np.uint8), (16,)) if name in ADDRESSES else
            (np.dtype(np.int64), ()) if name == "ts" else (_INPUT_DTYPES[name], ())
            for name in _machine.PACKET_COLUMNS]


def packet_arrays(batch: pa.RecordBatch, vlan_key: bool = False) -> tuple[np.ndarray, ...]:
    """The batch's columns in PACKET_COLUMNS order, as the kernels read them, with the
    tunnel links of the whole batch (which connection carried each inner packet: it needs
    the row before, so a batch is linked before it is cut).

    The kernels read PACKET_SCHEMA's exact types; other integer types are converted.
    """
    out, n = [], batch.num_rows
    names = batch.schema.names
    links = {name: np.zeros(n, dtype) for name, dtype in LINKS.items()}
    for name in _machine.PACKET_COLUMNS:
        if name in links:
            out.append(links[name])
        elif name not in names:
            shape = (batch.num_rows, 16) if name in ADDRESSES else batch.num_rows
            out.append(np.zeros(shape, _INPUT_DTYPES.get(name, np.uint8)))
        elif name == "ts":
            out.append(np.ascontiguousarray(to_numpy(batch.column("ts")).view(np.int64)))
        elif name in ADDRESSES:
            out.append(address_matrix(batch.column(name)))
        else:
            out.append(np.ascontiguousarray(to_numpy(batch.column(name)), _INPUT_DTYPES[name]))
    out = tuple(out)
    if n:
        _machine.tunnel_links(out, links["parent"], links["encloses"], (int(vlan_key),))
    return out


def empty_columns(n: int = 0) -> dict[str, np.ndarray]:
    return {name: np.zeros(n, dtype) for name, dtype in _DTYPES.items()}


NO_PAYLOAD = (np.zeros(0, np.int64), np.zeros(0, np.uint32))  # PAYLOAD_COLUMNS of a batch without payload
NO_DATA = np.zeros(0, np.uint8)


def payload_arrays(payload) -> tuple[np.ndarray, np.ndarray]:
    """A decode.payload.Payload (or None) as the kernels' PAYLOAD_COLUMNS (start, caplen)."""
    if payload is None:
        return NO_PAYLOAD
    return np.ascontiguousarray(payload.start, np.int64), np.ascontiguousarray(payload.caplen, np.uint32)


def flow_packets(batch: pa.RecordBatch, vlan_key: bool = False, payload=None) -> dict[str, np.ndarray] | None:
    """Flow-making packets of one batch as compact columns (PACKET_FIELDS), or None.

    ``vlan_key``: VLAN tags are part of the connection key (FlowOptions.vlan_key). With the
    batch's Payload, ``pstart``/``pcap`` say where each packet's payload is in
    ``payload.data`` (pcap 0: none); the caller hands the same data to the kernel.
    """
    if batch.num_rows == 0:
        return None
    out = empty_columns(batch.num_rows)
    n = _machine.flow_packets(packet_arrays(batch, vlan_key), payload_arrays(payload), tuple(out.values()),
                              (int(vlan_key),))
    if n == 0:
        return None
    return {name: v[:n] for name, v in out.items()} if n < batch.num_rows else out


def key_matrix(cols: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Key rows (the K matrix's columns) of the packets at ``rows``."""
    m = _machine
    out = np.empty((len(rows), m.N_KEY), np.int64)
    out[:, m.K_HASH] = cols["hash"][rows].view(np.int64)
    for j, name in ((m.K_AHI, "ahi"), (m.K_ALO, "alo"), (m.K_BHI, "bhi"), (m.K_BLO, "blo"), (m.K_APORT, "aport"),
                    (m.K_BPORT, "bport"), (m.K_PROTO, "proto"), (m.K_VLAN, "vlan"), (m.K_IVLAN, "ivlan"),
                    (m.K_IPVER, "ipver")):
        out[:, j] = cols[name][rows]
    return out


def concat_columns(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    parts = [p for p in parts if p is not None and len(p["ts"])]
    if not parts:
        return empty_columns()
    return {f: np.concatenate([p[f] for p in parts]) for f in PACKET_FIELDS}


def take_columns(cols: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {f: cols[f][idx] for f in PACKET_FIELDS}
