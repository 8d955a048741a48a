"""Connection rows of the state machine into flow-table columns (_rows.c writes them, Arrow wraps them).

Besides FLOW_SCHEMA the tables built here carry two internal columns, ``_key`` (the
connection key hash) and ``_prefix`` (see state.py), dropped by ``finalize``.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from flowkit.decode import _arrow
from flowkit.decode.addresses import to_strings
from flowkit.flows import _rows
from flowkit.flows.community import community_ids
from flowkit.flows.layout import key
from flowkit.flows.local import DEFAULT, LocalNets
from flowkit.flows.schema import COUNTERS, FLOW_SCHEMA, TS, proto_names
from flowkit.protocols import SERVICES

# _key, _prefix: state.py's merge; _encloses and the parent slots: flows/parents.py, which
# turns them into tunnel_parents once every row is final (so STATE_SCHEMA lacks that column)
PARENT_SLOTS = list(_rows.SLOTS)
INTERNAL = [pa.field("_key", pa.uint64()), pa.field("_prefix", pa.bool_()), pa.field("_encloses", pa.bool_()),
            *(pa.field(name, pa.int64()) for name in PARENT_SLOTS)]
STATE_SCHEMA = pa.schema([*(f for f in FLOW_SCHEMA if f.name != "tunnel_parents"), *INTERNAL])
FLAG_COLUMNS = [f"{side}_{flag}" for side in ("src", "dst") for flag in _rows.FLAGS]  # the rows of "flags"
_OUT = [(name, np.dtype(fmt), width) for name, fmt, width in _rows.COLUMNS]
_BIT = {name: j for j, name in enumerate(_rows.BITMAPS)}
_PROTO_TEXT = _arrow.strings(proto_names())
_STATE_TEXT = _arrow.strings(_rows.STATES)


def _addr(hi: np.ndarray, lo: np.ndarray) -> pa.Array:
    """Address text of address words (expected.py's open rows)."""
    words = np.empty((len(hi), 2), dtype=">u8")  # big-endian: byte order of the address
    words[:, 0], words[:, 1] = hi, lo
    return to_strings(words.view(np.uint8))


def _services(bits: np.ndarray) -> pa.Array:
    """Confirmed-service bits (svc_t's low 32 bits) as Zeek's sorted comma-separated names."""
    # few distinct sets in any capture; 0 (none) first if present. Sorted and deduplicated by
    # hand: np.unique imports numpy.ma (~10-30 ms of a flows -o process)
    values = np.sort(bits)
    if len(values):
        values = values[np.concatenate(([True], values[1:] != values[:-1]))]
    codes = np.searchsorted(values, bits) + int(values[0] != 0 if len(values) else 0)
    values = values[values != 0]
    names = [""] + [",".join(SERVICES[j] for j in range(len(SERVICES)) if (int(v) >> j) & 1) for v in values]
    return _arrow.choose(codes, names)


def rows_to_arrow(C: np.ndarray, H: np.ndarray, K: np.ndarray, local: LocalNets = DEFAULT) -> pa.Table:
    """Flow-table rows of connection rows; ``local``: the networks of local_orig/local_resp."""
    n = len(C)
    if n == 0:
        return STATE_SCHEMA.empty_table()
    # every column written once by C in its Arrow type, into fresh arrays the table keeps
    out = tuple(np.empty(n * width, dtype) for _, dtype, width in _OUT)
    bits = np.empty((len(_BIT), (n + 7) // 8), np.uint8)
    hist_off, name_off = np.empty(n + 1, np.int32), np.empty(n + 1, np.int32)
    counts, hist, names = _rows.columns(np.ascontiguousarray(C), np.ascontiguousarray(H), np.ascontiguousarray(K),
                                        local.words, out, bits, hist_off, name_off)
    v = {name: values for (name, _, _), values in zip(_OUT, out)}

    def col(type, values, validity=None):
        """Arrow array on the buffer of ``values``; ``validity``: a bitmap's name (set: not null)."""
        nulls = 0 if validity is None else n - counts[_BIT[validity]]
        valid = pa.py_buffer(bits[_BIT[validity]]) if nulls else None
        return pa.Array.from_buffers(type, n, [valid, pa.py_buffer(values)], null_count=nulls)

    def boolean(name):
        return pa.Array.from_buffers(pa.bool_(), n, [None, pa.py_buffer(bits[_BIT[name]])], null_count=0)

    def text(offsets, data):
        return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])

    cols = {
        "flow_id": col(pa.uint64(), v["flow_id"]),
        "ts_start": col(TS, v["ts_start"], "ts_start"),
        "ts_end": col(TS, v["ts_end"], "ts_end"),
        "duration": col(pa.float64(), v["duration"]),
        "proto": _arrow.take(_PROTO_TEXT, v["ip_proto"]),
        "ip_proto": col(pa.uint8(), v["ip_proto"]),
        "ip_version": col(pa.uint8(), v["ip_version"]),
        "src_ip": to_strings(v["src_addr"].reshape(n, 16)),
        "src_port": col(pa.uint16(), v["src_port"]),
        "dst_ip": to_strings(v["dst_addr"].reshape(n, 16)),
        "dst_port": col(pa.uint16(), v["dst_port"]),
    }
    for name in COUNTERS:
        cols[name] = col(pa.uint64(), v[name])
    cols["conn_state"] = _arrow.take(_STATE_TEXT, v["conn_state"])
    cols["local_orig"] = boolean("local_orig")
    cols["local_resp"] = boolean("local_resp")
    cols["missed_bytes"] = col(pa.uint64(), v["missed_bytes"])
    cols["history"] = text(hist_off, hist)
    for name, values in zip(FLAG_COLUMNS, v["flags"].reshape(len(FLAG_COLUMNS), n)):
        cols[name] = col(pa.uint32(), values)
    for name in ("syn_ts", "syn_last_ts", "synack_ts", "ack_ts"):
        cols[name] = col(TS, v[name], name)
    cols["syn_count"] = col(pa.uint32(), v["syn_count"])
    kf = key(K)
    cols["community_id"] = community_ids(
        kf["ahi"], kf["alo"], kf["bhi"], kf["blo"], kf["aport"], kf["bport"], kf["proto"], kf["ipver"]
    )
    cols["icmp_errors"] = col(pa.uint32(), v["icmp_errors"])
    cols["icmp_error_type"] = col(pa.uint8(), v["icmp_error_type"], "icmp_error")
    cols["icmp_error_code"] = col(pa.uint8(), v["icmp_error_code"], "icmp_error")
    errors = counts[_BIT["icmp_error"]]
    if errors == 0:
        cols["icmp_error_src"] = pa.nulls(n, pa.string())
    else:  # the address text with the errors' validity bitmap on its own buffers
        _, offsets, data = to_strings(v["icmp_error_addr"].reshape(n, 16)).buffers()
        valid = pa.py_buffer(bits[_BIT["icmp_error"]]) if errors < n else None
        cols["icmp_error_src"] = pa.Array.from_buffers(pa.string(), n, [valid, offsets, data], null_count=n - errors)
    cols["vlan"] = col(pa.uint16(), v["vlan"])
    cols["inner_vlan"] = col(pa.uint16(), v["inner_vlan"])
    cols["service"] = _services(v["svc"])
    cols["server_name"] = text(name_off, names)
    cols["_key"] = col(pa.uint64(), v["_key"])
    cols["_prefix"] = boolean("_prefix")
    cols["_encloses"] = boolean("_encloses")
    for name, values in zip(PARENT_SLOTS, v["parents"].reshape(len(PARENT_SLOTS), n)):
        cols[name] = col(pa.int64(), values)
    return pa.Table.from_arrays(list(cols.values()), schema=STATE_SCHEMA)
