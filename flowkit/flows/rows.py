"""Connection rows of the state machine into flow-table columns (whole-column numpy/Arrow).

Besides FLOW_SCHEMA the tables built here carry two internal columns, ``_key`` (the
connection key hash) and ``_prefix`` (see state.py), dropped by ``finalize``.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from flowkit.decode import _arrow
from flowkit.decode.addresses import to_strings
from flowkit.flows import kernel as k
from flowkit.flows.community import community_ids
from flowkit.flows.keys import (
    K_AHI, K_ALO, K_APORT, K_BHI, K_BLO, K_BPORT, K_HASH, K_IPVER, K_IVLAN, K_PROTO, K_VLAN, mix,
)
from flowkit.flows.schema import FLOW_SCHEMA, TS

INTERNAL = [pa.field("_key", pa.uint64()), pa.field("_prefix", pa.bool_())]
STATE_SCHEMA = pa.schema([*FLOW_SCHEMA, *INTERNAL])
FLAG_NAMES = ("syn", "fin", "rst", "ack", "psh", "urg", "ece", "cwr")


def _roles(C: np.ndarray, o: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(originator block, responder block): the per-side columns reordered by role, in one pass."""
    a = C[:, k.N_CONN : k.N_CONN + k.N_SIDE]
    b = C[:, k.N_CONN + k.N_SIDE : k.N_CONN + 2 * k.N_SIDE]
    flip = o != 0
    orig, resp = a.copy(), b.copy()  # most connections are not flipped: copy, then patch rows
    orig[flip], resp[flip] = b[flip], a[flip]
    return orig, resp


def _addr(hi: np.ndarray, lo: np.ndarray) -> pa.Array:
    words = np.empty((len(hi), 2), dtype=">u8")  # big-endian: byte order of the address
    words[:, 0], words[:, 1] = hi, lo
    # convert each distinct address once: hosts repeat across flows
    uniq, inverse = np.unique(words.view("V16").ravel(), return_inverse=True)
    raw = np.frombuffer(uniq.tobytes(), np.uint8).reshape(-1, 16)
    arr = pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), len(raw), [None, pa.py_buffer(raw.tobytes())])
    return to_strings(arr).take(_arrow.array(inverse.ravel(), pa.int64()))


def _conn_state(C: np.ndarray, O: np.ndarray, R: np.ndarray, hist: pa.Array, osize, rsize) -> np.ndarray:
    """Zeek's conn_state() from main.zeek, over whole columns."""
    os_ = O[:, k.S_STATE]
    rs = R[:, k.S_STATE]
    tcp = C[:, k.F_PROTO] == 6
    o_in = (os_ == k.INACTIVE) | (os_ == k.PARTIAL)
    r_in = (rs == k.INACTIVE) | (rs == k.PARTIAL)
    out = np.full(len(C), "OTH", dtype=object)
    # UDP: PARTIAL stands for UDP_ACTIVE
    uo, ur = os_ == k.PARTIAL, rs == k.PARTIAL
    udp = ~tcp
    out[udp & uo & ur] = "SF"
    out[udp & uo & ~ur] = "S0"
    out[udp & ~uo & ur] = "SHR"
    conds = [
        (rs == k.RESET) & ((os_ == k.SYN_SENT) | (os_ == k.SYN_ACK_SENT) | ((os_ == k.RESET) & (osize == 0) & (rsize == 0))),
        (rs == k.RESET) & o_in,
        rs == k.RESET,
        (os_ == k.RESET) & r_in,  # RSTOS0 or OTH: decided by the history pattern below
        os_ == k.RESET,
        (rs == k.CLOSED) & (os_ == k.CLOSED),
        (os_ == k.CLOSED) & r_in,
        os_ == k.CLOSED,
        (rs == k.CLOSED) & o_in,
        rs == k.CLOSED,
        (os_ == k.SYN_SENT) & (rs == k.INACTIVE),
        (os_ == k.ESTABLISHED) & (rs == k.ESTABLISHED),
    ]
    names = ["REJ", "RSTRH", "RSTR", "RSTOS0?", "RSTO", "SF", "SH", "S2", "SHR", "S3", "S0", "S1"]
    tcp_state = np.select(conds, names, default="OTH").astype(object)
    out[tcp] = tcp_state[tcp]
    import re

    pattern = re.compile(r"\^?S[^HAFGIQ]*R.*")
    for i in np.flatnonzero(out == "RSTOS0?"):
        out[i] = "RSTOS0" if pattern.fullmatch(hist[int(i)].as_py()) else "OTH"
    return out


def _ts(values: np.ndarray) -> pa.Array:
    mask = values < 0
    return _arrow.array(values, TS, mask=mask)


def rows_to_arrow(C: np.ndarray, H: np.ndarray, K: np.ndarray) -> pa.Table:
    n = len(C)
    if n == 0:
        return STATE_SCHEMA.empty_table()
    o = C[:, k.F_ORIG].astype(np.int64)
    r = 1 - o
    tcp = C[:, k.F_PROTO] == 6

    hist = _arrow.fixed_strings(H)

    O, R = _roles(C, o)

    def size(E, P):
        last = E[:, k.S_LASTREL]
        ack = E[:, k.S_ACKREL]
        s = np.maximum(last, ack)
        s = np.where(s != 0, s - 1, s)
        s = np.where((E[:, k.S_FINCNT] > 0) & (s != 0), s - 1, s)
        # Zeek: a half-open connection discovered and aborted reports no size
        half = (
            (E[:, k.S_PREV] == k.SYN_SENT)
            & (E[:, k.S_STATE] == k.RESET)
            & (P[:, k.S_STATE] == k.INACTIVE)
        )
        s = np.where(half, 0, s)
        return np.where(tcp, np.maximum(s, 0), E[:, k.S_UDPB])

    osize, rsize = size(O, R), size(R, O)
    a_is_orig = o == 0
    ohi = np.where(a_is_orig, K[:, K_AHI], K[:, K_BHI]).view(np.uint64)
    olo = np.where(a_is_orig, K[:, K_ALO], K[:, K_BLO]).view(np.uint64)
    rhi = np.where(a_is_orig, K[:, K_BHI], K[:, K_AHI]).view(np.uint64)
    rlo = np.where(a_is_orig, K[:, K_BLO], K[:, K_ALO]).view(np.uint64)
    oport = np.where(a_is_orig, K[:, K_APORT], K[:, K_BPORT])
    rport = np.where(a_is_orig, K[:, K_BPORT], K[:, K_APORT])
    ts0 = C[:, k.F_TS0]
    tsend = C[:, k.F_TSLAST]
    fid = mix(mix(mix(mix(ohi, olo), rhi), rlo), (oport << 16) | rport)
    fid = mix(mix(fid, (K[:, K_PROTO] << 32) | (K[:, K_VLAN] << 16) | K[:, K_IVLAN]), ts0.view(np.uint64))

    cols = {
        "flow_id": _arrow.array(fid, pa.uint64()),
        "ts_start": _ts(ts0),
        "ts_end": _ts(tsend),
        "duration": _arrow.array((tsend - ts0) / 1e9, pa.float64()),
        "proto": _arrow.choose(np.where(tcp, 0, 1), ["tcp", "udp"]),
        "ip_version": _arrow.array(K[:, K_IPVER], pa.uint8()),
        "src_ip": _addr(ohi, olo),
        "src_port": _arrow.array(oport, pa.uint16()),
        "dst_ip": _addr(rhi, rlo),
        "dst_port": _arrow.array(rport, pa.uint16()),
        "src_pkts": _arrow.array(O[:, k.S_PKTS], pa.uint64()),
        "dst_pkts": _arrow.array(R[:, k.S_PKTS], pa.uint64()),
        "src_ip_bytes": _arrow.array(O[:, k.S_IPB], pa.uint64()),
        "dst_ip_bytes": _arrow.array(R[:, k.S_IPB], pa.uint64()),
        "src_payload_bytes": _arrow.array(osize, pa.uint64()),
        "dst_payload_bytes": _arrow.array(rsize, pa.uint64()),
        "conn_state": _arrow.texts(_conn_state(C, O, R, hist, osize, rsize)),
        "history": hist,
    }
    for prefix, E in (("src", O), ("dst", R)):
        for j, name in enumerate(FLAG_NAMES):
            cols[f"{prefix}_{name}"] = _arrow.array(E[:, k.S_FL + j], pa.uint32())
    syn_ts = O[:, k.S_SYNTS]
    cols["syn_ts"] = _ts(syn_ts)
    cols["syn_last_ts"] = _ts(O[:, k.S_SYNLAST])
    cols["synack_ts"] = _ts(R[:, k.S_SYNACKTS])
    cols["ack_ts"] = _ts(O[:, k.S_ACKTS])
    cols["syn_count"] = _arrow.array(O[:, k.S_SYNCNT], pa.uint32())
    cols["community_id"] = community_ids(
        K[:, K_AHI], K[:, K_ALO], K[:, K_BHI], K[:, K_BLO], K[:, K_APORT], K[:, K_BPORT], K[:, K_PROTO], K[:, K_IPVER]
    )
    cols["vlan"] = _arrow.array(K[:, K_VLAN], pa.uint16())
    cols["inner_vlan"] = _arrow.array(K[:, K_IVLAN], pa.uint16())
    cols["_key"] = _arrow.array(K[:, K_HASH].view(np.uint64), pa.uint64())
    cols["_prefix"] = _arrow.array(C[:, k.F_PREFIX] != 0, pa.bool_())
    return pa.table(cols, schema=STATE_SCHEMA)
