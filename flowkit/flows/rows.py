"""Connection rows of the state machine into flow-table columns (values from _rows.c, then Arrow).

Besides FLOW_SCHEMA the tables built here carry two internal columns, ``_key`` (the
connection key hash) and ``_prefix`` (see state.py), dropped by ``finalize``.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from flowkit._reuse import Buffers
from flowkit.decode import _arrow
from flowkit.decode.addresses import to_strings
from flowkit.flows import _rows
from flowkit.flows.community import community_ids
from flowkit.flows.layout import conn, key
from flowkit.flows.local import DEFAULT, LocalNets
from flowkit.flows.schema import FLOW_SCHEMA, TS, proto_names
from flowkit.protocols import SERVICES

# _key, _prefix: state.py's merge; _encloses and the parent slots: flows/parents.py, which
# turns them into tunnel_parents once every row is final (so STATE_SCHEMA lacks that column)
PARENT_SLOTS = [name for name in _rows.COLUMNS if name.startswith("_p") and name != "_prefix"]
_SCRATCH = Buffers(keep=2)
INTERNAL = [pa.field("_key", pa.uint64()), pa.field("_prefix", pa.bool_()), pa.field("_encloses", pa.bool_()),
            *(pa.field(name, pa.int64()) for name in PARENT_SLOTS)]
STATE_SCHEMA = pa.schema([*(f for f in FLOW_SCHEMA if f.name != "tunnel_parents"), *INTERNAL])
FLAG_NAMES = ("syn", "fin", "rst", "ack", "psh", "urg", "ece", "cwr")
PROTO_NAMES = proto_names()


def _addr(hi: np.ndarray, lo: np.ndarray) -> pa.Array:
    words = np.empty((len(hi), 2), dtype=">u8")  # big-endian: byte order of the address
    words[:, 0], words[:, 1] = hi, lo
    return to_strings(words.view(np.uint8))


def _addr_or_null(hi: np.ndarray, lo: np.ndarray, none: np.ndarray) -> pa.Array:
    """Address text, null where ``none`` (the validity bitmap set on the text's own buffers)."""
    if none.all():
        return pa.nulls(len(hi), pa.string())
    text = _addr(hi.view(np.uint64), lo.view(np.uint64))
    if not none.any():
        return text
    _, offsets, data = text.buffers()
    return pa.Array.from_buffers(pa.string(), len(text), [_arrow._bits(~none), offsets, data],
                                 null_count=int(none.sum()))


def _ts(values: np.ndarray) -> pa.Array:
    mask = values < 0
    return _arrow.array(values, TS, mask=mask)


def _services(svc: np.ndarray) -> pa.Array:
    """Confirmed-service bits (low 32 bits of svc) as Zeek's sorted comma-separated names."""
    bits = svc & 0xFFFFFFFF
    # few distinct sets in any capture; 0 (none) first if present. Sorted and deduplicated by
    # hand: np.unique imports numpy.ma (~10-30 ms of a flows -o process)
    values = np.sort(bits)
    if len(values):
        values = values[np.concatenate(([True], values[1:] != values[:-1]))]
    codes = np.searchsorted(values, bits) + int(values[0] != 0 if len(values) else 0)
    values = values[values != 0]
    names = [""] + [",".join(SERVICES[j] for j in range(len(SERVICES)) if (int(v) >> j) & 1) for v in values]
    return _arrow.choose(codes, names)


def _server_names(C: np.ndarray) -> pa.Array:
    """The NUL-terminated name bytes of each row (most rows have none: only those are read)."""
    name = conn(C)["name"]
    have = np.flatnonzero(name[:, 0] != 0)
    codes = np.full(len(C), len(have), np.int64)  # the last entry: ""
    codes[have] = np.arange(len(have))
    found = np.zeros((len(have) + 1, name.shape[1]), np.uint8)  # the extra row stays empty
    found[:-1] = name[have]
    return _arrow.take(_arrow.fixed_strings(found), codes)


def rows_to_arrow(C: np.ndarray, H: np.ndarray, K: np.ndarray, local: LocalNets = DEFAULT) -> pa.Table:
    """Flow-table rows of connection rows; ``local``: the networks of local_orig/local_resp."""
    n = len(C)
    if n == 0:
        return STATE_SCHEMA.empty_table()
    # the C values in a reused scratch matrix (~4 MB per 8,192 rows: fresh, its pages were
    # faulted in for every group), each column copied out so that no Arrow column keeps it
    scratch = _SCRATCH.get(len(_rows.COLUMNS) * n * 8).view(np.int64).reshape(len(_rows.COLUMNS), n)
    _rows.columns(np.ascontiguousarray(C), np.ascontiguousarray(H), np.ascontiguousarray(K), scratch)
    v = {name: values.copy() for name, values in zip(_rows.COLUMNS, scratch)}
    del scratch
    ts0, tsend = v["ts_start"], v["ts_end"]
    cols = {
        "flow_id": _arrow.array(v["flow_id"].view(np.uint64), pa.uint64()),
        "ts_start": _ts(ts0),
        "ts_end": _ts(tsend),
        "duration": _arrow.array((tsend - ts0) / 1e9, pa.float64()),
        "proto": _arrow.choose(v["proto"], PROTO_NAMES),
        "ip_proto": _arrow.array(v["proto"], pa.uint8()),
        "ip_version": _arrow.array(v["ip_version"], pa.uint8()),
        "src_ip": _addr(v["ohi"].view(np.uint64), v["olo"].view(np.uint64)),
        "src_port": _arrow.array(v["src_port"], pa.uint16()),
        "dst_ip": _addr(v["rhi"].view(np.uint64), v["rlo"].view(np.uint64)),
        "dst_port": _arrow.array(v["dst_port"], pa.uint16()),
    }
    for name in ("src_pkts", "dst_pkts", "src_ip_bytes", "dst_ip_bytes", "src_payload_bytes", "dst_payload_bytes"):
        cols[name] = _arrow.array(v[name], pa.uint64())
    cols["conn_state"] = _arrow.choose(v["conn_state"], list(_rows.STATES))
    cols["local_orig"] = _arrow.array(local.contains_words(v["ohi"], v["olo"]), pa.bool_())
    cols["local_resp"] = _arrow.array(local.contains_words(v["rhi"], v["rlo"]), pa.bool_())
    cols["missed_bytes"] = _arrow.array(v["missed_bytes"], pa.uint64())
    cols["history"] = _arrow.fixed_strings(H)
    for prefix in ("src", "dst"):
        for name in FLAG_NAMES:
            cols[f"{prefix}_{name}"] = _arrow.array(v[f"{prefix}_{name}"], pa.uint32())
    for name in ("syn_ts", "syn_last_ts", "synack_ts", "ack_ts"):
        cols[name] = _ts(v[name])
    cols["syn_count"] = _arrow.array(v["syn_count"], pa.uint32())
    kf = key(K)
    cols["community_id"] = community_ids(
        kf["ahi"], kf["alo"], kf["bhi"], kf["blo"], kf["aport"], kf["bport"], kf["proto"], kf["ipver"]
    )
    errs = v["icmp_errors"]
    none = errs == 0
    cols["icmp_errors"] = _arrow.array(errs, pa.uint32())
    cols["icmp_error_type"] = _arrow.array(v["icmp_error_type"], pa.uint8(), mask=none)
    cols["icmp_error_code"] = _arrow.array(v["icmp_error_code"], pa.uint8(), mask=none)
    cols["icmp_error_src"] = _addr_or_null(v["ehi"], v["elo"], none)
    cols["vlan"] = _arrow.array(v["vlan"], pa.uint16())
    cols["inner_vlan"] = _arrow.array(v["inner_vlan"], pa.uint16())
    cols["service"] = _services(conn(C)["svc"])
    cols["server_name"] = _server_names(C)
    cols["_key"] = _arrow.array(v["_key"].view(np.uint64), pa.uint64())
    cols["_prefix"] = _arrow.array(v["_prefix"] != 0, pa.bool_())
    cols["_encloses"] = _arrow.array(v["_encloses"] != 0, pa.bool_())
    for name in PARENT_SLOTS:
        cols[name] = _arrow.array(v[name], pa.int64())
    return pa.table(cols, schema=STATE_SCHEMA)
