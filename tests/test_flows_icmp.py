"""ICMP, ICMPv6 and other IP protocols as Zeek's conn.log has them, from captures built with dpkt.

Truth: what each built packet is (type, code, direction, payload size) and Zeek's keying
rules (src/packet_analysis/protocol/icmp/ICMP.cc: ICMP4_counterpart/ICMP6_counterpart;
unknown_ip_transport: addresses and protocol, ports 0).
"""
from __future__ import annotations

import socket

import dpkt
import pytest

import flowkit

MAC = b"\x00\x11\x22\x33\x44\x55"


def _eth(ip, v6=False):
    return bytes(dpkt.ethernet.Ethernet(src=MAC, dst=MAC, type=0x86DD if v6 else 0x0800, data=ip))


def icmp4(src, dst, type_, code, payload=b""):
    body = dpkt.icmp.ICMP(type=type_, code=code, data=dpkt.icmp.ICMP.Echo(id=1, seq=1, data=payload))
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=1, ttl=64, data=body)
    ip.len = 20 + len(bytes(body))
    return _eth(ip)


def icmp6(src, dst, type_, code, payload=b""):
    body = bytes([type_, code, 0, 0, 0, 0, 0, 0]) + payload
    ip = dpkt.ip6.IP6(src=socket.inet_pton(socket.AF_INET6, src), dst=socket.inet_pton(socket.AF_INET6, dst),
                      nxt=58, hlim=255, plen=len(body))
    ip.data = body
    return _eth(ip, v6=True)


def raw4(src, dst, proto, payload):
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=proto, ttl=64, data=payload)
    ip.len = 20 + len(payload)
    return _eth(ip)


def write(tmp_path, frames):
    path = tmp_path / "c.pcap"
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f)
        for i, frame in enumerate(frames):
            w.writepkt(frame, ts=1000.0 + i * 0.5)
    return path


def table(tmp_path, frames):
    ft = flowkit.flows(str(write(tmp_path, frames)))
    return ft, ft.to_pandas().sort_values(["ts_start", "flow_id"]).reset_index(drop=True)


def test_echo_request_and_reply_are_one_connection(tmp_path):
    frames = [icmp4("10.0.0.1", "8.8.8.8", 8, 0, b"x" * 56), icmp4("8.8.8.8", "10.0.0.1", 0, 0, b"x" * 56),
              icmp4("10.0.0.1", "8.8.8.8", 8, 0, b"y" * 56), icmp4("8.8.8.8", "10.0.0.1", 0, 0, b"y" * 56)]
    ft, df = table(tmp_path, frames)
    assert len(df) == 1
    r = df.iloc[0]
    assert (r.proto, r.ip_proto, r.src_ip, r.src_port, r.dst_ip, r.dst_port) == ("icmp", 1, "10.0.0.1", 8, "8.8.8.8", 0)
    # the echo id/seq are the last 4 of the 8 header bytes: the payload is the 56 bytes after them
    assert (r.src_pkts, r.dst_pkts, r.src_payload_bytes, r.dst_payload_bytes) == (2, 2, 112, 112)
    assert (r.src_ip_bytes, r.dst_ip_bytes) == (2 * (20 + 8 + 56), 2 * (20 + 8 + 56))
    assert (r.conn_state, r.history) == ("OTH", "")
    assert r.duration == pytest.approx(1.5)
    assert ft.stats.counts["icmp"] == 4


def test_reply_seen_first_keeps_its_sender_as_originator(tmp_path):
    ft, df = table(tmp_path, [icmp4("8.8.8.8", "10.0.0.1", 0, 0, b"z"), icmp4("10.0.0.1", "8.8.8.8", 8, 0, b"z")])
    assert len(df) == 1
    r = df.iloc[0]
    assert (r.src_ip, r.src_port, r.dst_port, r.src_pkts, r.dst_pkts) == ("8.8.8.8", 0, 8, 1, 1)


def test_one_way_types_keep_their_direction(tmp_path):
    frames = [icmp4("10.0.0.1", "10.0.0.2", 3, 3, b"q" * 28), icmp4("10.0.0.2", "10.0.0.1", 3, 3, b"q" * 28),
              icmp4("10.0.0.1", "10.0.0.2", 3, 3, b"q" * 28), icmp4("10.0.0.1", "10.0.0.2", 11, 0, b"q" * 28)]
    ft, df = table(tmp_path, frames)
    got = sorted(zip(df.src_ip, df.src_port, df.dst_ip, df.dst_port, df.src_pkts, df.dst_pkts))
    # dest-unreachable port-unreachable (3/3) each way, and time-exceeded (11/0): code as resp port
    assert got == [("10.0.0.1", 3, "10.0.0.2", 3, 2, 0), ("10.0.0.1", 11, "10.0.0.2", 0, 1, 0),
                   ("10.0.0.2", 3, "10.0.0.1", 3, 1, 0)]


def test_icmpv6_pairs_and_one_way(tmp_path):
    frames = [icmp6("fe80::1", "fe80::2", 135, 0, b"\0" * 20), icmp6("fe80::2", "fe80::1", 136, 0, b"\0" * 20),
              icmp6("fe80::1", "ff02::16", 143, 0, b"\0" * 12), icmp6("2001:db8::1", "2001:db8::2", 128, 0, b"p" * 8)]
    ft, df = table(tmp_path, frames)
    got = sorted(zip(df.proto, df.ip_proto, df.src_ip, df.src_port, df.dst_port, df.src_pkts, df.dst_pkts,
                     df.src_payload_bytes))
    assert got == [("icmp", 58, "2001:db8::1", 128, 129, 1, 0, 8), ("icmp", 58, "fe80::1", 135, 136, 1, 1, 20),
                   ("icmp", 58, "fe80::1", 143, 0, 1, 0, 12)]


def test_other_protocols_are_address_pairs(tmp_path):
    sctp = b"\x0b\x59\x0b\x59" + b"\0" * 28  # SCTP common header + a chunk; ports are not SCTP's key in Zeek
    frames = [raw4("10.0.0.1", "10.0.0.2", 132, sctp), raw4("10.0.0.2", "10.0.0.1", 132, sctp),
              raw4("10.0.0.9", "224.0.0.5", 89, b"\x02\x01" + b"\0" * 42), raw4("10.0.0.1", "10.0.0.2", 47, b"\0" * 4)]
    ft, df = table(tmp_path, frames)
    got = sorted(zip(df.proto, df.ip_proto, df.src_ip, df.dst_ip, df.src_port, df.dst_port, df.src_pkts, df.dst_pkts,
                     df.src_payload_bytes, df.conn_state, df.history))
    assert got == [("gre", 47, "10.0.0.1", "10.0.0.2", 0, 0, 1, 0, 0, "OTH", ""),
                   ("ospf", 89, "10.0.0.9", "224.0.0.5", 0, 0, 1, 0, 0, "OTH", ""),
                   ("sctp", 132, "10.0.0.1", "10.0.0.2", 0, 0, 1, 1, 0, "OTH", "")]
    assert ft.stats.counts["other_ip"] == 4


def test_zeek_format_writes_what_zeek_writes(tmp_path):
    frames = [icmp4("10.0.0.1", "8.8.8.8", 8, 0, b"x" * 56), icmp4("8.8.8.8", "10.0.0.1", 0, 0, b"x" * 56),
              raw4("10.0.0.9", "224.0.0.5", 89, b"\0" * 44)]
    ft = flowkit.flows(str(write(tmp_path, frames)))
    out = tmp_path / "conn.log"
    ft.write(str(out))
    lines = out.read_text().splitlines()
    fields = next(x for x in lines if x.startswith("#fields")).split("\t")[1:]
    rows = [dict(zip(fields, x.split("\t"))) for x in lines if not x.startswith("#")]
    by_proto = {r["proto"]: r for r in rows}
    assert set(by_proto) == {"icmp", "unknown_transport"}
    icmp, other = by_proto["icmp"], by_proto["unknown_transport"]
    assert (icmp["duration"], icmp["orig_bytes"], icmp["resp_bytes"]) == ("0.500000", "56", "56")
    assert (icmp["local_orig"], icmp["local_resp"], icmp["ip_proto"]) == ("T", "F", "1")
    # one packet: Zeek's set_conn leaves duration and sizes unset; 224.0.0.5 reads local in Zeek's logs
    assert (other["duration"], other["orig_bytes"], other["resp_bytes"]) == ("-", "-", "-")
    assert (other["ip_proto"], other["id.orig_p"], other["conn_state"], other["history"]) == ("89", "0", "OTH", "-")
    assert (other["orig_pkts"], other["orig_ip_bytes"], other["local_orig"], other["local_resp"]) == ("1", "64", "T", "T")
