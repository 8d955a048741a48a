"""Test helpers for the analyses: flow frames with known truth, built from a readable description.

A flow is described by what happened on the wire (``kind``) and its timing; the helpers fill every
FLOW_SCHEMA column the way Zeek would for that exchange. Example::

    frame([
        tcp("10.0.0.1:40000 > 10.0.0.2:80", "complete", t=1.0, rtt_server=0.010, rtt_client=0.002),
        tcp("10.0.0.1:40002 > 10.0.0.2:81", "rejected", t=2.0, retries=1),
        udp("10.0.0.1:5000 > 8.8.8.8:53", answered=True, t=3.0),
    ])

Times are given in seconds with microsecond precision and stored as exact integer nanoseconds.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from flowkit.flows.schema import FLOW_SCHEMA

EPOCH = 1_700_000_000  # base of every synthetic timestamp (seconds)

# Zeek conn_state and history for each handshake kind (originator letters upper case).
KINDS = {
    "complete": ("SF", "ShAFaf"),
    "established": ("S1", "ShA"),
    "rejected": ("REJ", "Sr"),
    "unanswered": ("S0", "S"),
    "syn_fin": ("SH", "SF"),  # SYN then FIN, no reply
    "syn_rst": ("RSTOS0", "SR"),  # SYN then originator RST, no reply
    "incomplete": ("S1", "Sh"),  # SYN-ACK never acknowledged
    "aborted": ("RSTO", "ShR"),  # SYN-ACK answered by the originator's RST
    "midstream": ("OTH", "Dd"),
}


def ns(t: float | None) -> int | None:
    """Seconds (relative to EPOCH) to integer nanoseconds, rounded to the microsecond."""
    if t is None:
        return None
    return (EPOCH * 1_000_000 + round(t * 1_000_000)) * 1000


def _endpoints(spec: str):
    left, right = (s.strip() for s in spec.split(">"))
    sip, sport = left.rsplit(":", 1)
    dip, dport = right.rsplit(":", 1)
    return sip, int(sport), dip, int(dport)


def _base(spec, proto, t, duration):
    sip, sport, dip, dport = _endpoints(spec)
    row = {f.name: None for f in FLOW_SCHEMA}
    row.update(
        proto=proto, ip_version=4, src_ip=sip, src_port=sport, dst_ip=dip, dst_port=dport,
        ts_start=ns(t), ts_end=ns(t + duration), duration=duration,
    )  # fmt: skip
    for side in ("src", "dst"):
        for flag in ("syn", "fin", "rst", "ack", "psh", "urg", "ece", "cwr"):
            row[f"{side}_{flag}"] = 0
    return row


def tcp(spec: str, kind: str, t: float = 0.0, *, rtt_server: float = 0.01, rtt_client: float = 0.001,
        retries: int = 0, retry_gap: float = 1.0, duration: float | None = None,
        src_bytes: int = 100, dst_bytes: int = 1000) -> dict:  # fmt: skip
    """One TCP flow: ``kind`` from KINDS; SYN retries ``retry_gap`` s apart before the answered SYN.

    The SYN-ACK answers the last SYN, ``rtt_server`` s after it; the ACK follows ``rtt_client`` s later.
    """
    state, history = KINDS[kind]
    syn_first = t
    syn_last = t + retries * retry_gap
    answered = kind in ("complete", "established", "incomplete", "aborted")
    synack = syn_last + rtt_server if answered else None
    ack = synack + rtt_client if kind in ("complete", "established") else None
    end_guess = (ack or synack or syn_last) + (1.0 if kind in ("complete", "established") else 0.0)
    if kind == "rejected":
        end_guess = syn_last + rtt_server
    row = _base(spec, "tcp", t, duration if duration is not None else end_guess - t)
    row.update(conn_state=state, history=history)
    if kind == "midstream":
        row.update(src_pkts=5, dst_pkts=5, src_ack=5, dst_ack=5, syn_count=0)
    else:
        nsyn = retries + 1
        row.update(syn_count=nsyn, src_syn=nsyn, syn_ts=ns(syn_first), syn_last_ts=ns(syn_last),
                   synack_ts=ns(synack), ack_ts=ns(ack))  # fmt: skip
        src_pkts, dst_pkts = nsyn, 0
        if answered:
            row.update(dst_syn=1, dst_ack=1)
            dst_pkts += 1
        if ack is not None:
            src_pkts += 3
            dst_pkts += 2
            row.update(src_ack=3, dst_ack=3, src_fin=1, dst_fin=1)
            row.update(src_payload_bytes=src_bytes, dst_payload_bytes=dst_bytes)
        if kind == "rejected":
            row.update(dst_rst=1, dst_ack=1)
            dst_pkts += 1
        if kind in ("syn_rst", "aborted"):
            row.update(src_rst=1)
            src_pkts += 1
        if kind == "syn_fin":
            row.update(src_fin=1)
            src_pkts += 1
        row.update(src_pkts=src_pkts, dst_pkts=dst_pkts)
    row["src_ip_bytes"] = 40 * row["src_pkts"] + (row["src_payload_bytes"] or 0)
    row["dst_ip_bytes"] = 40 * row["dst_pkts"] + (row["dst_payload_bytes"] or 0)
    row["src_payload_bytes"] = row["src_payload_bytes"] or 0
    row["dst_payload_bytes"] = row["dst_payload_bytes"] or 0
    return row


def udp(spec: str, answered: bool = True, t: float = 0.0, *, duration: float = 0.05,
        src_pkts: int = 1, dst_pkts: int = 1, payload: int = 50) -> dict:  # fmt: skip
    row = _base(spec, "udp", t, duration if answered else 0.0)
    dst_pkts = dst_pkts if answered else 0
    row.update(conn_state="SF" if answered else "S0", history="Dd" if answered else "D",
               src_pkts=src_pkts, dst_pkts=dst_pkts, src_payload_bytes=payload * src_pkts,
               dst_payload_bytes=payload * dst_pkts, src_ip_bytes=(28 + payload) * src_pkts,
               dst_ip_bytes=(28 + payload) * dst_pkts, syn_count=0)  # fmt: skip
    return row


def frame(rows: list[dict]) -> pd.DataFrame:
    """Rows -> a DataFrame typed exactly as FLOW_SCHEMA (via Arrow, as FlowTable.to_pandas gives)."""
    cols = {f.name: [r[f.name] for r in rows] for f in FLOW_SCHEMA}
    for name in ("ts_start", "ts_end", "syn_ts", "syn_last_ts", "synack_ts", "ack_ts"):
        cols[name] = pa.array(cols[name], type=pa.int64()).cast(FLOW_SCHEMA.field(name).type)
    table = pa.table({f.name: pa.array(cols[f.name], type=f.type) if f.name not in (
        "ts_start", "ts_end", "syn_ts", "syn_last_ts", "synack_ts", "ack_ts") else cols[f.name]
        for f in FLOW_SCHEMA}, schema=FLOW_SCHEMA)  # fmt: skip
    return table.to_pandas()


# --- synthetic clients for the ephemeral-port classifier -------------------------------------------


def client_flows(client: str, ports, dsts, times, kind: str = "complete", duration: float = 0.5) -> list[dict]:
    """One complete TCP connection per (port, destination "ip:port", start time)."""
    return [
        tcp(f"{client}:{int(p)} > {d}", kind, float(t), duration=duration) for p, d, t in zip(ports, dsts, times)
    ]


def global_counter(n: int, start: int, lo: int, hi: int, step: int = 1) -> np.ndarray:
    """BSD / Windows XP: one counter for every connection, wrapping inside [lo, hi]."""
    return lo + (start - lo + step * np.arange(n)) % (hi - lo + 1)


def linux_per_destination(rng, n: int, ndst: int, lo: int = 32768, hi: int = 60999):
    """Linux >= 4.2 with 2022 hardening: per-destination counters at unrelated offsets, random small
    even increments (2..16); destinations visited round-robin. Returns (ports, destination index)."""
    dst_idx = np.arange(n) % ndst
    offsets = rng.integers(lo, hi, size=ndst) // 2 * 2
    ports = np.empty(n, dtype=np.int64)
    cur = offsets.astype(np.int64)
    for i, d in enumerate(dst_idx):  # test data generation, not flowkit code
        cur[d] = lo + (cur[d] - lo + 2 + 2 * rng.integers(0, 8)) % (hi - lo + 1)
        ports[i] = cur[d]
    return ports, dst_idx


def uniform_random(rng, n: int, lo: int, hi: int) -> np.ndarray:
    """RFC 6056 algorithm 1: every port drawn uniformly from [lo, hi]."""
    return rng.integers(lo, hi + 1, size=n)
