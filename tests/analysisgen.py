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

# the handshake outcome each kind must be classified as (the truth the analysis tests use)
OUTCOME_OF = {
    "complete": "complete",
    "established": "complete",
    "rejected": "rejected",
    "unanswered": "unanswered",
    "syn_fin": "unanswered",
    "syn_rst": "unanswered",
    "incomplete": "incomplete",
    "aborted": "incomplete",
    "midstream": "midstream",
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
        ts_start=ns(t), ts_end=ns(t + duration), duration=duration, service="", server_name="", icmp_errors=0,
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


def icmp_error(row: dict, icmp_type: int, code: int, sender: str) -> dict:
    """``row`` as drawn an ICMP error (its flow table columns, docs/schema.md)."""
    return {**row, "icmp_errors": 1, "icmp_error_type": icmp_type, "icmp_error_code": code, "icmp_error_src": sender}


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


# --- captures written with dpkt, for end-to-end tests through flowkit.flows ------------------------

from decimal import Decimal  # noqa: E402
from pathlib import Path  # noqa: E402

import dpkt  # noqa: E402
import socket  # noqa: E402

SYN, ACK, FIN, RST, PSH = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_FIN, dpkt.tcp.TH_RST, dpkt.tcp.TH_PUSH


def _tcp_packet(src, sport, dst, dport, flags, seq=0, ack=0, payload=b""):
    seg = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq % 2**32, ack=ack % 2**32, flags=flags, win=65535,
                       data=payload)  # fmt: skip
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=dpkt.ip.IP_PROTO_TCP, ttl=64, data=seg)
    ip.len = 20 + len(bytes(seg))
    eth = dpkt.ethernet.Ethernet(src=b"\x02\x00\x00\x00\x00\x01", dst=b"\x02\x00\x00\x00\x00\x02",
                                 type=dpkt.ethernet.ETH_TYPE_IP, data=ip)  # fmt: skip
    return bytes(eth)


def _udp_packet(src, sport, dst, dport, payload=b"x" * 20):
    u = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    u.ulen = 8 + len(payload)
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=dpkt.ip.IP_PROTO_UDP, ttl=64, data=u)
    ip.len = 20 + u.ulen
    eth = dpkt.ethernet.Ethernet(src=b"\x02\x00\x00\x00\x00\x01", dst=b"\x02\x00\x00\x00\x00\x02",
                                 type=dpkt.ethernet.ETH_TYPE_IP, data=ip)  # fmt: skip
    return bytes(eth)


class Capture:
    """Packets with exact microsecond timestamps (integer us since EPOCH), written sorted by time."""

    def __init__(self):
        self.packets: list[tuple[int, int, bytes]] = []  # (us, order, bytes)

    def add(self, us: int, frame_bytes: bytes):
        self.packets.append((int(us), len(self.packets), frame_bytes))

    def connection(self, client: str, cport: int, server: str, sport: int, kind: str, t_us: int, *,
                   rtt_server_us: int = 10_000, rtt_client_us: int = 1_000, retries: int = 0,
                   retry_gap_us: int = 1_000_000) -> int:  # fmt: skip
        """One TCP exchange of analysisgen.KINDS; returns the time (us) of its last packet."""
        c, s = 1000, 5000  # initial sequence numbers
        if kind == "midstream":
            for i in range(3):
                self.add(t_us + 2 * i * 1000, _tcp_packet(client, cport, server, sport, ACK | PSH, c + 10 * i, s, b"x" * 10))
                self.add(t_us + (2 * i + 1) * 1000, _tcp_packet(server, sport, client, cport, ACK, s, c + 10 * (i + 1)))
            return t_us + 5000
        for r in range(retries + 1):
            self.add(t_us + r * retry_gap_us, _tcp_packet(client, cport, server, sport, SYN, c))
        t = t_us + retries * retry_gap_us
        if kind in ("unanswered",):
            return t
        if kind == "syn_fin":
            self.add(t + 500_000, _tcp_packet(client, cport, server, sport, FIN, c + 1))
            return t + 500_000
        if kind == "syn_rst":
            self.add(t + 500_000, _tcp_packet(client, cport, server, sport, RST, c + 1))
            return t + 500_000
        if kind == "rejected":
            self.add(t + rtt_server_us, _tcp_packet(server, sport, client, cport, RST | ACK, 0, c + 1))
            return t + rtt_server_us
        t += rtt_server_us
        self.add(t, _tcp_packet(server, sport, client, cport, SYN | ACK, s, c + 1))
        if kind == "incomplete":
            return t
        if kind == "aborted":
            self.add(t + rtt_client_us, _tcp_packet(client, cport, server, sport, RST, c + 1))
            return t + rtt_client_us
        t += rtt_client_us
        self.add(t, _tcp_packet(client, cport, server, sport, ACK, c + 1, s + 1))
        if kind == "established":
            return t
        self.add(t + 100, _tcp_packet(client, cport, server, sport, ACK | PSH, c + 1, s + 1, b"GET /\r\n"))
        self.add(t + 200, _tcp_packet(server, sport, client, cport, ACK | PSH, s + 1, c + 8, b"OK\r\n"))
        self.add(t + 300, _tcp_packet(client, cport, server, sport, FIN | ACK, c + 8, s + 5))
        self.add(t + 400, _tcp_packet(server, sport, client, cport, FIN | ACK, s + 5, c + 9))
        self.add(t + 500, _tcp_packet(client, cport, server, sport, ACK, c + 9, s + 6))
        return t + 500

    def udp(self, client, cport, server, sport, t_us, answered=True):
        self.add(t_us, _udp_packet(client, cport, server, sport))
        if answered:
            self.add(t_us + 2000, _udp_packet(server, sport, client, cport))

    def write(self, path: Path) -> Path:
        with open(path, "wb") as f:
            w = dpkt.pcap.Writer(f)
            for us, _, buf in sorted(self.packets):
                w.writepkt(buf, Decimal(EPOCH) + Decimal(us) / Decimal(1_000_000))
        return path
