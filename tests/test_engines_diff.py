"""Differential tests: the decode engines agree packet by packet, column by column.

* ``fast`` (C) and ``dpkt`` (per-packet reference) must be identical on every
  column, bit for bit: on a broad mix of packets built here with dpkt (every link type,
  tag stacks, IPv6 extension headers, fragments, TCP options, malformed headers, every
  truncation point, random bytes) and on every capture of ../shared/corpus.
* Both are also checked against the values the mix was built with (truth from
  construction, not from either engine).
* ``fast`` and ``pyshark`` (Wireshark's dissectors) agree on the columns Wireshark
  exposes the same way, on the packets both dissect the same way (docs/engines.md).
"""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path

import dpkt
import numpy as np
import pyarrow as pa
import pytest

import flowkit
from flowkit.capture import RecordChunk, read_chunks
from flowkit.decode import pyshark_engine
from conftest import CORPUS, corpus_files, require_tool
from flowkit.decode.schema import (
    ACK, FIN, FRAG_DF, FRAG_IS_FRAGMENT, FRAG_MF, NS, OPT_MSS, OPT_SACK, OPT_SACK_PERM, OPT_TS,
    OPT_WSCALE, PSH, SYN, Status,
)  # fmt: skip
from pcapgen import pcapng_epb, pcapng_idb, pcapng_shb

TS0 = 1_700_000_000_123_456_789  # ns; the mix is written with nanosecond resolution


# ---------------------------------------------------------------- building packets


def v4(a: str) -> bytes:
    return socket.inet_pton(socket.AF_INET, a)


def v6(a: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, a)


def mapped(a: str) -> bytes:
    return bytes(10) + b"\xff\xff" + v4(a)


def tcp(sport=40000, dport=80, flags=SYN, seq=1000, ack=0, win=29200, opts=b"", payload=b"", off=None) -> bytes:
    seg = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq, ack=ack, win=win, opts=opts, data=payload)
    seg.off = off if off is not None else 5 + len(opts) // 4
    seg.flags = flags
    seg.sum = 0x1111  # fixed: the engines never look at checksums
    return bytes(seg)


def udp(sport=5353, dport=53, payload=b"q" * 30, ulen=None) -> bytes:
    d = dpkt.udp.UDP(sport=sport, dport=dport, data=payload, sum=0x2222)
    d.ulen = ulen if ulen is not None else 8 + len(payload)
    return bytes(d)


def icmp(type_=8, code=0, payload=b"p" * 56, rest=b"\x12\x34\x00\x01") -> bytes:
    """Type, code, checksum (dpkt's 4-byte header), 4 bytes rest-of-header, payload."""
    return bytes(dpkt.icmp.ICMP(type=type_, code=code, sum=0x3333)) + rest + payload


def ip4(proto: int, l4: bytes, src="10.0.0.1", dst="192.0.2.9", ttl=64, ident=7, df=False, mf=False,
        offset=0, opts=b"", total=None, hl=None, version=4) -> bytes:  # fmt: skip
    ip = dpkt.ip.IP(src=v4(src), dst=v4(dst), p=proto, ttl=ttl, id=ident, opts=opts, data=l4)
    ip.df, ip.mf, ip.offset = int(df), int(mf), offset
    ip.hl = hl if hl is not None else 5 + len(opts) // 4
    ip.v = version
    ip.len = total if total is not None else 20 + len(opts) + len(l4)
    ip.sum = 0x4444  # non-zero: dpkt keeps our len instead of recomputing it
    return bytes(ip)


def ip6(nxt: int, body: bytes, src="2001:db8::1", dst="2001:db8::2", hlim=55, plen=None, version=6) -> bytes:
    hdr = struct.pack(">IHBB", (version << 28), len(body) if plen is None else plen, nxt, hlim)
    return hdr + v6(src) + v6(dst) + body


def hop_by_hop(nxt: int) -> bytes:
    return bytes([nxt, 0]) + b"\x01\x04" + bytes(4)  # PadN: 8 bytes


def dest_opts(nxt: int) -> bytes:
    return bytes([nxt, 1]) + b"\x01\x0c" + bytes(12)  # 16 bytes


def routing(nxt: int) -> bytes:
    return bytes([nxt, 2, 0, 1]) + bytes(4) + v6("2001:db8::99")  # 24 bytes


def auth_header(nxt: int) -> bytes:
    return bytes([nxt, 4, 0, 0]) + struct.pack(">II", 0x1000, 1) + bytes(12)  # (4+2)*4 = 24 bytes


def fragment6(nxt: int, offset: int, more: bool, ident: int) -> bytes:
    return struct.pack(">BBHI", nxt, 0, (offset << 3) | int(more), ident)


MAC = b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb"


def eth(ethertype: int, payload: bytes, tags=()) -> bytes:
    out = MAC
    for tpid, vid in tags:
        out += struct.pack(">HH", tpid, vid)
    return out + struct.pack(">H", ethertype) + payload


def mpls(payload: bytes, labels=(16, 17)) -> bytes:
    out = b""
    for i, label in enumerate(labels):
        bottom = int(i == len(labels) - 1)
        out += struct.pack(">I", (label << 12) | (bottom << 8) | 64)
    return out + payload


def pppoe(proto: int, payload: bytes) -> bytes:
    return bytes(dpkt.pppoe.PPPoE(session=0x1234, len=len(payload) + 2)) + struct.pack(">H", proto) + payload


def sll(proto: int, payload: bytes) -> bytes:
    return bytes(dpkt.sll.SLL(ethtype=proto, hdr=b"\x00\x11\x22\x33\x44\x55\x00\x00", data=payload))


def sll2(proto: int, payload: bytes) -> bytes:
    return bytes(dpkt.sll2.SLL2(ethtype=proto, intindex=3, data=payload))


def null(family: int, payload: bytes, order: str) -> bytes:
    return struct.pack(order + "I", family) + payload


# ---------------------------------------------------------------- the mix


@dataclass
class Case:
    name: str
    linktype: int
    data: bytes
    expect: dict = field(default_factory=dict)  # columns the construction determines
    wirelen: int | None = None


SYN_OPTS = b"\x02\x04\x05\xb4" + b"\x01" + b"\x03\x03\x07" + b"\x04\x02" + b"\x08\x0a" + struct.pack(">II", 11, 22) + b"\x00" * 4  # fmt: skip
SACK_OPTS = b"\x01\x01\x05\x0a" + struct.pack(">II", 5000, 6000)
TCP_SYN = tcp(opts=SYN_OPTS)
SYN_EXPECT = dict(ip_proto=6, src_port=40000, dst_port=80, tcp_flags=SYN, seq=1000, ack=0, window=29200,
                  tcp_hdr_len=44, tcp_opts=OPT_MSS | OPT_WSCALE | OPT_SACK_PERM | OPT_TS, mss=1460, wscale=7,
                  tsval=11, tsecr=22, payload_len=0)  # fmt: skip
TCP_DATA = tcp(sport=443, dport=51000, flags=ACK | PSH | NS, seq=0xFFFFFFF0, ack=0x80000001, win=1234,
               opts=SACK_OPTS, payload=b"d" * 100)  # fmt: skip
DATA_EXPECT = dict(ip_proto=6, src_port=443, dst_port=51000, tcp_flags=ACK | PSH | NS, seq=0xFFFFFFF0,
                   ack=0x80000001, window=1234, tcp_hdr_len=32, tcp_opts=OPT_SACK, payload_len=100)  # fmt: skip
UDP = udp()
UDP_EXPECT = dict(ip_proto=17, src_port=5353, dst_port=53, udp_len=38, payload_len=30)
OK4 = dict(status=Status.OK, ip_version=4, src_ip=mapped("10.0.0.1"), dst_ip=mapped("192.0.2.9"))
OK6 = dict(status=Status.OK, ip_version=6, src_ip=v6("2001:db8::1"), dst_ip=v6("2001:db8::2"))


def _link_cases() -> list[Case]:
    p4 = ip4(6, TCP_SYN)
    p6 = ip6(17, UDP)
    t4 = {**OK4, **SYN_EXPECT, "ip_len": len(p4), "ttl": 64, "ip_id": 7}
    u6 = {**OK6, **UDP_EXPECT, "ip_len": len(p6), "ttl": 55}
    cases = [
        Case("eth-ipv4-tcp-syn", 1, eth(0x0800, p4), t4),
        Case("eth-ipv6-udp", 1, eth(0x86DD, p6), u6),
        Case("vlan", 1, eth(0x0800, p4, [(0x8100, 100)]), {**t4, "vlan": 100, "inner_vlan": 0}),
        Case("qinq", 1, eth(0x86DD, p6, [(0x88A8, 200), (0x8100, 300)]), {**u6, "vlan": 200, "inner_vlan": 300}),
        Case("three-tags", 1, eth(0x0800, p4, [(0x9100, 1), (0x8100, 2), (0x8100, 4095)]), {**t4, "vlan": 1, "inner_vlan": 2}),
        Case("five-tags", 1, eth(0x0800, p4, [(0x8100, 5)] * 5), dict(status=Status.NON_IP, vlan=5, inner_vlan=5, ip_version=0)),
        Case("mpls-ipv4", 1, eth(0x8847, mpls(p4)), t4),
        Case("mpls-ipv6-in-vlan", 1, eth(0x8847, mpls(p6, [99]), [(0x8100, 7)]), {**u6, "vlan": 7}),
        Case("mpls-not-ip", 1, eth(0x8847, mpls(b"\x00" * 30)), dict(status=Status.NON_IP)),
        Case("pppoe-ipv4", 1, eth(0x8864, pppoe(0x0021, p4)), t4),
        Case("pppoe-ipv6", 1, eth(0x8864, pppoe(0x0057, p6)), u6),
        Case("pppoe-lcp", 1, eth(0x8864, pppoe(0xC021, b"\x01" * 10)), dict(status=Status.NON_IP)),
        Case("pppoe-discovery", 1, eth(0x8863, b"\x11\x09" + bytes(20)), dict(status=Status.NON_IP)),
        Case("arp", 1, eth(0x0806, bytes(dpkt.arp.ARP())), dict(status=Status.NON_IP, ip_version=0)),
        Case("lldp", 1, eth(0x88CC, b"\x02\x07" + bytes(20)), dict(status=Status.NON_IP)),
        Case("ieee8023-length", 1, eth(46, b"\xaa\xaa\x03" + bytes(43)), dict(status=Status.NON_IP)),
        Case("sll-ipv4", 113, sll(0x0800, p4), t4),
        Case("sll-ipv6", 113, sll(0x86DD, p6), u6),
        Case("sll-vlan", 113, sll(0x8100, struct.pack(">HH", 42, 0x0800) + p4), {**t4, "vlan": 42}),
        Case("sll-arp", 113, sll(0x0806, bytes(dpkt.arp.ARP())), dict(status=Status.NON_IP)),
        Case("sll2-ipv4", 276, sll2(0x0800, p4), t4),
        Case("sll2-ipv6", 276, sll2(0x86DD, p6), u6),
        Case("null-le-ipv4", 0, null(2, p4, "<"), t4),
        Case("null-be-ipv4", 0, null(2, p4, ">"), t4),
        Case("null-le-ipv6-24", 0, null(24, p6, "<"), u6),
        Case("null-be-ipv6-28", 0, null(28, p6, ">"), u6),
        Case("null-le-ipv6-30", 0, null(30, p6, "<"), u6),
        Case("null-other-family", 0, null(7, p4, "<"), dict(status=Status.NON_IP)),
        Case("loop-ipv4", 108, null(2, p4, ">"), t4),
        Case("loop-ipv6", 108, null(30, p6, ">"), u6),
        Case("loop-little-endian-is-not-ip", 108, null(2, p4, "<"), dict(status=Status.NON_IP)),
        Case("raw101-ipv4", 101, p4, t4),
        Case("raw101-ipv6", 101, p6, u6),
        Case("raw12-ipv4", 12, p4, t4),
        Case("raw14-ipv6", 14, p6, u6),
        Case("raw-bad-version", 101, b"\x50" + p4[1:], dict(status=Status.MALFORMED, ip_version=0)),
        Case("ipv4-link", 228, p4, t4),
        Case("ipv6-link", 229, p6, u6),
        Case("ipv4-link-holding-ipv6", 228, p6, dict(status=Status.MALFORMED, ip_version=4)),
        Case("ppp-ac-ipv4", 9, b"\xff\x03\x00\x21" + p4, t4),
        Case("ppp-ipv6", 9, b"\x00\x57" + p6, u6),
        Case("ppp-compressed-ipv4", 9, b"\x21" + p4, t4),
        Case("ppp-hdlc-ipv4", 50, b"\xff\x03\x00\x21" + p4, t4),
        Case("ppp-lcp", 9, b"\xff\x03\xc0\x21" + bytes(10), dict(status=Status.NON_IP)),
        Case("unsupported-link", 11, b"\x08\x00" + p4, dict(status=Status.UNSUPPORTED_LINK, ip_version=0)),
        Case("unsupported-link-802.15.4", 230, bytes(40), dict(status=Status.UNSUPPORTED_LINK)),
    ]
    return cases


def _ip_cases() -> list[Case]:
    d4 = ip4(6, TCP_DATA, src="172.16.5.4", dst="10.9.8.7", ttl=3, ident=0xBEEF, df=True)
    u4 = ip4(17, UDP)
    ic = ip4(1, icmp())
    gre = ip4(47, b"g" * 24)
    opts4 = ip4(6, TCP_SYN, opts=b"\x94\x04\x00\x00")  # router alert, ihl 6
    first = ip4(17, UDP[:16], mf=True, ident=99)  # first fragment: 16 of the datagram's 38 bytes
    later = ip4(17, b"x" * 24, offset=2, ident=98)  # of another datagram: neither completes
    part1 = ip4(17, UDP[:24], mf=True, ident=97)  # a datagram in two fragments, completed by the second
    part2 = ip4(17, UDP[24:], offset=3, ident=97)
    ext_chain = hop_by_hop(43) + routing(60) + dest_opts(51) + auth_header(6) + TCP_DATA
    frag6_first = fragment6(17, 0, True, 0xCAFE) + UDP
    frag6_later = fragment6(17, 185, False, 0xCAFE) + b"y" * 48
    atomic = fragment6(17, 0, False, 5) + UDP
    ic6 = bytes(dpkt.icmp6.ICMP6(type=128, code=0, sum=1)) + b"e" * 20
    return [
        Case("ipv4-tcp-data-df", 1, eth(0x0800, d4), dict(
            status=Status.OK, ip_version=4, src_ip=mapped("172.16.5.4"), dst_ip=mapped("10.9.8.7"),
            ttl=3, ip_id=0xBEEF, frag=FRAG_DF, ip_len=len(d4), **DATA_EXPECT)),  # fmt: skip
        Case("ipv4-udp", 1, eth(0x0800, u4), {**OK4, **UDP_EXPECT, "ip_len": len(u4)}),
        Case("ipv4-icmp", 1, eth(0x0800, ic), {**OK4, "ip_proto": 1, "icmp_type": 8, "icmp_code": 0, "payload_len": 56}),
        Case("ipv4-icmp-unreach", 1, eth(0x0800, ip4(1, icmp(3, 3, u4[:28], rest=bytes(4)))), {**OK4, "icmp_type": 3, "icmp_code": 3, "src_port": 0, "payload_len": 28}),
        Case("ipv4-gre", 1, eth(0x0800, gre), {**OK4, "ip_proto": 47, "payload_len": 24, "src_port": 0}),
        Case("ipv4-options", 1, eth(0x0800, opts4), {**OK4, **SYN_EXPECT, "ip_len": len(opts4)}),
        # a first fragment is held, its transport header read (as tcpdump filters see it)
        Case("ipv4-first-fragment", 1, eth(0x0800, first), {**OK4, "status": Status.FRAGMENT, "ip_proto": 17,
             "src_port": 5353, "dst_port": 53, "frag": FRAG_MF | FRAG_IS_FRAGMENT, "frag_offset": 0, "ip_id": 99,
             "udp_len": 38, "payload_len": 8}),  # fmt: skip
        Case("ipv4-fragment-held", 1, eth(0x0800, part1), {**OK4, "status": Status.FRAGMENT, "src_port": 5353,
             "frag": FRAG_MF | FRAG_IS_FRAGMENT, "ip_id": 97, "payload_len": 16}),  # fmt: skip
        Case("ipv4-fragment-completes", 1, eth(0x0800, part2), {**OK4, **UDP_EXPECT, "frag": FRAG_IS_FRAGMENT,
             "frag_offset": 0, "ip_id": 97, "ip_len": 20 + len(UDP)}),  # fmt: skip
        Case("ipv4-later-fragment", 1, eth(0x0800, later), {**OK4, "status": Status.FRAGMENT, "ip_proto": 17,
             "src_port": 0, "dst_port": 0, "frag": FRAG_IS_FRAGMENT, "frag_offset": 2, "payload_len": 24}),  # fmt: skip
        Case("ipv6-tcp-ext-chain", 1, eth(0x86DD, ip6(0, ext_chain)), {**OK6, **DATA_EXPECT, "ip_len": 40 + len(ext_chain)}),
        Case("ipv6-first-fragment", 1, eth(0x86DD, ip6(44, frag6_first)), {**OK6, **UDP_EXPECT,
             "status": Status.FRAGMENT, "ip_id": 0xCAFE,
             "frag": FRAG_MF | FRAG_IS_FRAGMENT, "frag_offset": 0}),  # fmt: skip
        Case("ipv6-later-fragment", 1, eth(0x86DD, ip6(0, hop_by_hop(44) + frag6_later)), {**OK6,
             "status": Status.FRAGMENT, "ip_proto": 17, "ip_id": 0xCAFE, "frag": FRAG_IS_FRAGMENT,
             "frag_offset": 185, "src_port": 0, "payload_len": 48}),  # fmt: skip
        Case("ipv6-atomic-fragment", 1, eth(0x86DD, ip6(44, atomic)), {**OK6, **UDP_EXPECT, "frag": 0, "ip_id": 5}),
        Case("ipv6-two-fragment-headers", 1, eth(0x86DD, ip6(44, fragment6(44, 0, True, 1) + fragment6(17, 0, False, 2) + UDP)),
             {**OK6, "status": Status.FRAGMENT, "ip_proto": 44, "src_port": 0, "frag": FRAG_MF | FRAG_IS_FRAGMENT,
              "ip_id": 1}),  # the first fragment header makes it a fragment; fmt: skip
        Case("ipv6-icmp6", 1, eth(0x86DD, ip6(58, ic6)), {**OK6, "ip_proto": 58, "icmp_type": 128, "payload_len": 16}),
        Case("ipv6-no-next-header", 1, eth(0x86DD, ip6(0, hop_by_hop(59) + b"z" * 8)), {**OK6, "ip_proto": 59, "payload_len": 8}),
        Case("ipv6-esp", 1, eth(0x86DD, ip6(50, b"e" * 40)), {**OK6, "ip_proto": 50, "payload_len": 40}),
        # header arithmetic the engines must refuse
        Case("ipv4-version-6", 1, eth(0x0800, ip4(6, TCP_SYN, version=6)), dict(status=Status.MALFORMED, ip_version=4, ip_proto=6)),
        Case("ipv4-ihl-4", 1, eth(0x0800, ip4(6, TCP_SYN, hl=4)), dict(status=Status.MALFORMED, src_port=0)),
        Case("ipv4-total-below-header", 1, eth(0x0800, ip4(6, TCP_SYN, total=10)), dict(status=Status.MALFORMED, ip_len=10)),
        Case("ipv6-version-4", 1, eth(0x86DD, ip6(17, UDP, version=4)), dict(status=Status.MALFORMED, ip_version=6)),
        Case("ipv6-ext-past-payload", 1, eth(0x86DD, ip6(0, dest_opts(17) + UDP, plen=10)), dict(status=Status.MALFORMED)),
        Case("ipv6-ext-too-deep", 1, eth(0x86DD, ip6(60, b"".join(dest_opts(60) for _ in range(8)) + dest_opts(17) + UDP)),
             dict(status=Status.MALFORMED, ip_proto=60)),  # fmt: skip
        Case("tcp-offset-4", 1, eth(0x0800, ip4(6, tcp(off=4))), dict(status=Status.MALFORMED, src_port=40000, tcp_hdr_len=16)),
        Case("tcp-offset-past-ip-length", 1, eth(0x0800, ip4(6, tcp(off=15) + bytes(20))),
             dict(status=Status.MALFORMED, tcp_hdr_len=60, payload_len=0)),  # fmt: skip
        Case("tcp-ip-length-too-short", 1, eth(0x0800, ip4(6, TCP_SYN, total=30)), dict(status=Status.MALFORMED, src_port=40000)),
        Case("udp-ip-length-too-short", 1, eth(0x0800, ip4(17, UDP, total=25)), dict(status=Status.MALFORMED, dst_port=53)),
        Case("icmp-ip-length-too-short", 1, eth(0x0800, ip4(1, icmp(), total=22)), dict(status=Status.MALFORMED, icmp_type=8)),
        Case("ipv4-tso-total-length-zero", 1, eth(0x0800, ip4(6, tcp(flags=ACK, payload=b"o" * 100), total=0)),
             {**OK4, "ip_len": 140, "payload_len": 100}),  # fmt: skip
        Case("ipv4-length-beyond-wire", 1, eth(0x0800, ip4(17, UDP, total=200)), dict(status=Status.MALFORMED, ip_len=200)),
        Case("ipv6-length-beyond-wire", 1, eth(0x86DD, ip6(17, UDP, plen=500)), dict(status=Status.MALFORMED, ip_len=540)),
        Case("udp-length-field-lies", 1, eth(0x0800, ip4(17, udp(ulen=999))), {**OK4, "udp_len": 999, "payload_len": 30}),
        # TCP option lists that end early or carry odd sizes
        Case("tcp-opt-zero-size", 1, eth(0x0800, ip4(6, tcp(opts=b"\x02\x04\x05\xb4\x08\x00" + bytes(6)))),
             {**OK4, "tcp_opts": OPT_MSS, "mss": 1460, "tsval": 0}),  # fmt: skip
        Case("tcp-opt-bad-mss-size", 1, eth(0x0800, ip4(6, tcp(opts=b"\x02\x03\x05\x01\x01\x03\x03\x02" + bytes(4)))),
             {**OK4, "tcp_opts": OPT_WSCALE, "mss": 0, "wscale": 2}),  # fmt: skip
        Case("tcp-opt-eol-first", 1, eth(0x0800, ip4(6, tcp(opts=b"\x00\x02\x04\x05\xb4" + bytes(3)))), {**OK4, "tcp_opts": 0}),
        Case("tcp-opt-past-header", 1, eth(0x0800, ip4(6, tcp(opts=b"\x01\x01\x08\x0a" + bytes(4)))), {**OK4, "tcp_opts": 0}),
        Case("tcp-fin-only-snaplen-cut", 1, eth(0x0800, ip4(6, tcp(flags=FIN, payload=b"f" * 500)))[:54],
             {**OK4, "tcp_flags": FIN, "payload_len": 500}, wirelen=554),  # fmt: skip
    ]


def _truncation_cases() -> list[Case]:
    """Every cut of a few packets: each header boundary is a different status."""
    full = [
        ("eth-ipv4-tcp", 1, eth(0x0800, ip4(6, TCP_SYN, opts=b"\x01\x01\x01\x00"))),
        ("eth-qinq-mpls-ipv6-ext-udp", 1, eth(0x8847, mpls(ip6(0, hop_by_hop(44) + fragment6(17, 0, True, 1) + UDP)), [(0x88A8, 1), (0x8100, 2)])),
        ("pppoe-ipv4-icmp", 1, eth(0x8864, pppoe(0x0021, ip4(1, icmp())))),
        ("sll2-ipv6-tcp", 276, sll2(0x86DD, ip6(6, TCP_DATA))),
        ("ppp-ipv4-udp", 9, b"\xff\x03\x00\x21" + ip4(17, UDP)),
        ("null-ipv6-ah-tcp", 0, null(24, ip6(51, auth_header(6) + TCP_SYN), "<")),
    ]
    cases = []
    for name, lt, data in full:
        for cut in range(len(data)):
            cases.append(Case(f"{name}-cut{cut}", lt, data[:cut], wirelen=len(data)))
    # known boundaries of the first packet (Ethernet 14, IPv4 24 with options, TCP 44)
    eth_tcp = full[0][2]
    cases += [
        Case("cut-in-ethernet", 1, eth_tcp[:13], dict(status=Status.TRUNCATED, ip_version=0), wirelen=len(eth_tcp)),
        Case("cut-in-ipv4", 1, eth_tcp[:14 + 19], dict(status=Status.TRUNCATED, ip_version=4, ip_proto=0), wirelen=len(eth_tcp)),
        Case("cut-in-ipv4-options", 1, eth_tcp[:14 + 22], dict(status=Status.TRUNCATED, ip_proto=6, src_port=0), wirelen=len(eth_tcp)),
        Case("cut-after-ports", 1, eth_tcp[:14 + 24 + 4], dict(status=Status.TRUNCATED, src_port=40000, dst_port=80, seq=0), wirelen=len(eth_tcp)),
        Case("cut-in-tcp-options", 1, eth_tcp[:14 + 24 + 30], dict(status=Status.TRUNCATED, seq=1000, tcp_opts=0), wirelen=len(eth_tcp)),
        Case("cut-after-tcp-header", 1, eth_tcp[:14 + 24 + 44], dict(status=Status.OK, tcp_opts=SYN_EXPECT["tcp_opts"]), wirelen=len(eth_tcp)),
    ]  # fmt: skip
    return cases


def _random_cases(seed: int = 20261124, per_link: int = 150) -> list[Case]:
    """Random bytes and bit-flipped real packets on every link type: the engines must still agree."""
    rng = np.random.default_rng(seed)
    links = (0, 1, 9, 12, 14, 50, 101, 108, 113, 228, 229, 276)
    base = [c for c in _link_cases() + _ip_cases() if c.linktype in links]
    cases = []
    for lt in links:
        for i in range(per_link):
            n = int(rng.integers(0, 120))
            cases.append(Case(f"random-{lt}-{i}", lt, rng.integers(0, 256, n, dtype=np.uint8).tobytes()))
    for i in range(len(links) * per_link):
        c = base[int(rng.integers(0, len(base)))]
        b = bytearray(c.data)
        for _ in range(int(rng.integers(1, 4))):
            pos = int(rng.integers(0, max(len(b), 1)))
            if b:
                b[pos] ^= 1 << int(rng.integers(0, 8))
        cases.append(Case(f"flipped-{c.name}-{i}", c.linktype, bytes(b[: int(rng.integers(0, len(b) + 1))])))
    return cases


def packet_mix() -> list[Case]:
    return _link_cases() + _ip_cases() + _truncation_cases() + _random_cases()


def write_mix(path: Path, cases: list[Case]) -> Path:
    """One pcapng, one interface per link type (nanosecond resolution), cases in order."""
    linktypes = sorted({c.linktype for c in cases})
    iface = {lt: i for i, lt in enumerate(linktypes)}
    out = [pcapng_shb()] + [pcapng_idb(lt, tsresol=9, snaplen=0) for lt in linktypes]
    for i, c in enumerate(cases):
        out.append(pcapng_epb(iface[c.linktype], TS0 + i * 1001, c.data, tsresol=9, wirelen=c.wirelen))
    path.write_bytes(b"".join(out))
    return path


# ---------------------------------------------------------------- comparing


def first_difference(a: pa.Table, b: pa.Table, columns=None, rows: np.ndarray | None = None):
    """(column, row, value_a, value_b) of the first difference, or None."""
    assert a.num_rows == b.num_rows, f"{a.num_rows} packets vs {b.num_rows}"
    for name in columns or a.schema.names:
        x, y = a.column(name).combine_chunks(), b.column(name).combine_chunks()
        if rows is not None:
            x, y = x.take(pa.array(rows)), y.take(pa.array(rows))
        if x.equals(y):
            continue
        ne = np.flatnonzero(~np.asarray(pa.compute.equal(x, y).to_numpy(zero_copy_only=False), dtype=bool))
        i = int(ne[0])
        row = int(rows[i]) if rows is not None else i
        return name, row, x[i].as_py(), y[i].as_py()
    return None


def assert_same(a: pa.Table, b: pa.Table, label: str, names=("fast", "dpkt"), columns=None, rows=None) -> None:
    diff = first_difference(a, b, columns, rows)
    if diff is not None:
        name, row, va, vb = diff
        pytest.fail(
            f"{label}: column {name!r} differs first at packet {row}: "
            f"{names[0]}={va!r} {names[1]}={vb!r} (status {a.column('status')[row].as_py()})"
        )


@pytest.fixture(scope="module")
def mix(tmp_path_factory) -> tuple[Path, list[Case]]:
    cases = packet_mix()
    return write_mix(tmp_path_factory.mktemp("mix") / "mix.pcapng", cases), cases


@pytest.fixture(scope="module")
def mix_tables(mix) -> dict[str, tuple[pa.Table, object]]:
    path, _ = mix
    out = {}
    for engine in ("fast", "dpkt"):
        # several chunks; one row per record (an ICMP error's quoted header is compared on the corpus)
        t = flowkit.packets(path, engine, chunk_bytes=64 << 10, decap=False)
        out[engine] = (t.to_arrow(), t.stats)
    return out


def test_mix_covers_every_status_and_link(mix, mix_tables):
    _, cases = mix
    table, stats = mix_tables["dpkt"]
    assert table.num_rows == len(cases) == stats.packets
    stats.check()
    # BAD_CHECKSUM exists only when checksums are verified (test_decode_checksums.py)
    assert set(table.column("status").to_pylist()) == {int(s) for s in Status if s != Status.BAD_CHECKSUM}
    assert set(table.column("linktype").to_pylist()) == {c.linktype for c in cases}


def test_fast_and_dpkt_identical_on_the_mix(mix, mix_tables):
    _, cases = mix
    a, sa = mix_tables["fast"]
    b, sb = mix_tables["dpkt"]
    diff = first_difference(a, b)
    if diff is not None:
        name, row, va, vb = diff
        pytest.fail(f"mix case {cases[row].name!r} (packet {row}): column {name!r} fast={va!r} dpkt={vb!r}")
    assert sa.to_dict() == sb.to_dict()


@pytest.mark.parametrize("engine", ["fast", "dpkt"])
def test_engines_give_the_values_the_mix_was_built_with(engine, mix, mix_tables):
    _, cases = mix
    table, _ = mix_tables[engine]
    cols = {name: table.column(name).to_pylist() for name in table.schema.names}
    checked = 0
    for i, case in enumerate(cases):
        assert cols["index"][i] == i
        assert cols["caplen"][i] == len(case.data)
        assert cols["wirelen"][i] == (case.wirelen or len(case.data))
        assert cols["linktype"][i] == case.linktype
        assert cols["ts"][i].value == TS0 + i * 1001
        for name, want in case.expect.items():
            got = cols[name][i]
            assert got == want, f"{engine}: case {case.name!r}: {name} = {got!r}, built with {want!r}"
            checked += 1
    assert checked > 400


# ---------------------------------------------------------------- the corpus

CORPUS_FILES = corpus_files("zeek/traces") + corpus_files("nfstream")


def _ids(paths):
    return [str(p.relative_to(CORPUS)) for p in paths]


@pytest.mark.corpus
@pytest.mark.parametrize("path", CORPUS_FILES, ids=_ids(CORPUS_FILES))
def test_fast_and_dpkt_identical_on_corpus(path):
    fast = flowkit.packets(path, "fast")
    ref = flowkit.packets(path, "dpkt")
    a, b = fast.to_arrow(), ref.to_arrow()
    assert_same(a, b, str(path.relative_to(CORPUS)))
    fast.stats.check()
    assert fast.stats.to_dict() == ref.stats.to_dict()
    outer = a.column("tunnel_depth").to_numpy() == 0
    assert fast.stats.packets == int(outer.sum())  # no filter: every record is one row at depth 0
    assert (np.diff(a.column("index").to_numpy()[outer]) == 1).all()


def test_corpus_present_or_reported():
    if not CORPUS_FILES:
        pytest.skip(f"corpus not found at {CORPUS} (expected ../shared/corpus beside the checkout)")
    assert len(CORPUS_FILES) > 100


# ---------------------------------------------------------------- fast vs Wireshark

# Columns Wireshark exposes with flowkit's meaning (docs/engines.md).
WIRESHARK_COLUMNS = ("index", "ts", "caplen", "wirelen", "linktype", "vlan", "ip_version", "src_ip", "dst_ip",
                     "ip_len", "ttl", "ip_proto", "src_port", "dst_port")  # fmt: skip
WIRESHARK_TCP = ("tcp_flags", "seq", "ack", "window", "tcp_hdr_len", "payload_len", "mss", "wscale", "tsval", "tsecr")
WIRESHARK_UDP = ("udp_len",)


def comparable_rows(fast: pa.Table, shark: pa.Table, proto: int) -> np.ndarray:
    """Packets both dissect alike: decoded by flowkit, not fragments, same transport in both
    (Wireshark decapsulates tunnels and reads ICMP-quoted headers; flowkit stops at the outer one),
    and whose IP datagram fits in the frame's wire length."""
    st = fast.column("status").to_numpy()
    p = fast.column("ip_proto").to_numpy()
    sp = shark.column("ip_proto").to_numpy()
    frag = fast.column("frag").to_numpy()
    # Wireshark trusts the frame length over an IP length claiming more bytes than the wire carried
    wirelen = fast.column("wirelen").to_numpy()
    fits = fast.column("ip_len").to_numpy() <= wirelen
    fits &= wirelen <= 0x7FFFFFFF  # Wireshark caps frame lengths at 2^31 - 1 (fuzzed record headers)
    whole = (frag & FRAG_IS_FRAGMENT) == 0  # DF alone is fine
    return np.flatnonzero((st == Status.OK) & (p == proto) & (sp == proto) & whole & fits)


# Corpus files where one column differs by design (reason also in docs/engines.md).
PYSHARK_COLUMN_EXCEPTIONS = {
    # Its PPPoE length field (42) is shorter than the IP total length (46): Wireshark trims the
    # datagram to the PPPoE length, so tcp.len is 0 where flowkit counts 6 bytes from the IP length.
    "zeek/traces/pppoe-over-qinq.pcap": ("payload_len",),
    # Its Cisco FabricPath frames end with the IP datagram (all captured): Wireshark's FabricPath
    # dissector takes the last 4 bytes for an FCS, so what lies there differs (tcp.len 1 where the
    # IP length gives 5; a window-scale option at the end of a SYN's options is not seen).
    "nfstream/ajp.pcap": ("payload_len", "mss", "wscale", "tsval", "tsecr"),
}


def _shark_compare(fast: pa.Table, shark: pa.Table, label: str) -> int:
    n = 0
    skip = PYSHARK_COLUMN_EXCEPTIONS.get(label, ())
    for proto, extra in ((6, WIRESHARK_TCP), (17, WIRESHARK_UDP)):
        rows = comparable_rows(fast, shark, proto)
        n += len(rows)
        columns = tuple(c for c in WIRESHARK_COLUMNS + extra if c not in skip)
        if len(rows):
            assert_same(fast, shark, label, ("fast", "pyshark"), columns, rows)
    # UDP payload: Wireshark counts from the UDP length field, flowkit from the IP length;
    # they must agree whenever the two length fields do.
    rows = comparable_rows(fast, shark, 17)
    udp_len = fast.column("udp_len").to_numpy()[rows].astype(np.int64)
    rows = rows[udp_len - 8 == fast.column("payload_len").to_numpy()[rows]]
    if len(rows) and "payload_len" not in skip:
        assert_same(fast, shark, label, ("fast", "pyshark"), ("payload_len",), rows)
    return n


def test_fast_and_pyshark_agree_on_the_mix(mix):
    require_tool("tshark")
    path, cases = mix
    shark = flowkit.packets(path, "pyshark", chunk_bytes=1 << 30)  # one tshark run
    n = _shark_compare(flowkit.packets(path, "fast", decap=False).to_arrow(), shark.to_arrow(), "mix")
    shark.stats.check()
    assert shark.stats.packets == len(cases)
    assert n > 100


def concat_chunks(chunks: list[RecordChunk]) -> RecordChunk:
    """Many chunks as one (so one tshark run dissects many files: tshark start-up dominates)."""
    shift = np.cumsum([0] + [len(c.data) for c in chunks[:-1]])
    return RecordChunk(
        data=np.concatenate([c.data for c in chunks]),
        start=np.concatenate([c.start + s for c, s in zip(chunks, shift)]),
        **{k: np.concatenate([getattr(c, k) for c in chunks])
           for k in ("caplen", "wirelen", "ts", "linktype", "iface", "file_offset", "index")},
        path="<corpus>",
    )  # fmt: skip


@pytest.fixture(scope="module")
def shark_corpus() -> dict[Path, pa.Table]:
    """Wireshark's view of every corpus packet, from a single tshark run, split back per file."""
    require_tool("tshark")
    if not CORPUS_FILES:
        pytest.skip(f"corpus not found at {CORPUS}")
    chunks, owners = [], []
    for path in CORPUS_FILES:
        for chunk in read_chunks(path):
            if len(chunk):
                chunks.append(chunk)
                owners.append(path)
    table = pa.Table.from_batches([pyshark_engine.decode_chunk(concat_chunks(chunks))])
    out, at = {}, 0
    for chunk, path in zip(chunks, owners):
        part = table.slice(at, len(chunk))
        out[path] = pa.concat_tables([out[path], part]) if path in out else part
        at += len(chunk)
    return out


@pytest.mark.corpus
@pytest.mark.slow
@pytest.mark.parametrize("path", CORPUS_FILES, ids=_ids(CORPUS_FILES))
def test_fast_and_pyshark_agree_on_corpus(path, shark_corpus):
    fast = flowkit.packets(path, "fast", decap=False).to_arrow()  # the captured packets, as tshark's rows
    shark = shark_corpus.get(path)
    if shark is None:
        assert fast.num_rows == 0
        return
    _shark_compare(fast, shark, str(path.relative_to(CORPUS)))


# ---------------------------------------------------------------- property: any bytes, any link

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from flowkit.decode import dpkt_engine, fast as fast_engine  # noqa: E402

LINKS = (0, 1, 9, 12, 14, 50, 101, 104, 105, 108, 113, 127, 228, 229, 239, 276)


def chunk_of(packets: list[tuple[int, bytes, int]]) -> RecordChunk:
    """A RecordChunk straight from (linktype, bytes, wirelen) triples, no file in between."""
    n = len(packets)
    data = b"".join(p[1] for p in packets)
    caplen = np.array([len(p[1]) for p in packets], np.uint32)
    return RecordChunk(
        data=np.frombuffer(data, np.uint8).copy(),
        start=np.concatenate([[0], np.cumsum(caplen[:-1], dtype=np.int64)]).astype(np.int64) if n else np.zeros(0, np.int64),
        caplen=caplen,
        wirelen=np.array([max(p[2], len(p[1])) for p in packets], np.uint32),
        ts=np.arange(n, dtype=np.int64),
        linktype=np.array([p[0] for p in packets], np.uint16),
        iface=np.zeros(n, np.uint16),
        file_offset=np.zeros(n, np.int64),
        index=np.arange(n, dtype=np.int64),
    )  # fmt: skip


# Random bytes behind a valid-looking start, so the walk gets past the first layers often.
PREFIXES = st.sampled_from([b"", MAC + b"\x08\x00\x45", MAC + b"\x86\xdd\x60", MAC + b"\x81\x00\x00\x01\x88\x47",
                            b"\x02\x00\x00\x00\x45", b"\xff\x03\x00\x57\x60", b"\x45\x00", b"\x60\x00"])  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(LINKS), PREFIXES, st.binary(max_size=120), st.integers(0, 400)),
                min_size=1, max_size=12))  # fmt: skip
def test_fast_and_dpkt_agree_on_any_bytes(packets):
    chunk = chunk_of([(lt, prefix + body, wirelen) for lt, prefix, body, wirelen in packets])
    a = pa.Table.from_batches([fast_engine.decode_chunk(chunk)])
    b = pa.Table.from_batches([dpkt_engine.decode_chunk(chunk)])
    assert_same(a, b, "hypothesis")


# ---------------------------------------------------------------- structured random packets


class RandomPackets:
    """Random but well-formed-looking stacks (link, IP, extension headers, transport), with
    random field values, corruptions and cuts: reaches deep paths random bytes rarely do."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def pick(self, options):
        return options[int(self.rng.integers(0, len(options)))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def n(self, hi: int) -> int:
        return int(self.rng.integers(0, hi))

    def bytes(self, n: int) -> bytes:
        return self.rng.integers(0, 256, n, dtype=np.uint8).tobytes()

    def transport(self) -> tuple[int, bytes]:
        kind = self.n(6)
        if kind == 0:
            opts = self.bytes(self.pick([0, 4, 8, 12, 20, 40]))
            return 6, tcp(flags=self.n(512), opts=opts, payload=self.bytes(self.n(30)), off=self.pick([None, None, self.n(16)]))
        if kind == 1:
            return 17, udp(payload=self.bytes(self.n(30)), ulen=self.pick([None, self.n(65536)]))
        if kind == 2:
            return 1, icmp(self.n(256), self.n(256), self.bytes(self.n(20)), rest=self.bytes(self.n(5)))
        if kind == 3:
            return 58, icmp(self.n(256), 0, self.bytes(self.n(20)))
        if kind == 4:
            return self.n(256), self.bytes(self.n(40))
        return 6, self.bytes(self.n(40))  # a TCP header of random bytes

    def ip(self) -> tuple[int, bytes]:
        proto, l4 = self.transport()
        if self.chance(0.5):
            kw = {}
            if self.chance(0.2):
                kw["total"] = self.n(200)
            if self.chance(0.1):
                kw["hl"] = self.n(16)
            if self.chance(0.1):
                kw["version"] = self.n(16)
            if self.chance(0.2):
                kw["mf"] = True
            if self.chance(0.2):
                kw["offset"] = self.n(3)
            if self.chance(0.1):
                kw["opts"] = self.bytes(self.pick([4, 8, 40]))
            return 4, ip4(proto, l4, **kw)
        ext, nxt = b"", proto
        for _ in range(self.pick([0, 0, 1, 2, 3, 9])):
            kind = self.pick([0, 43, 60, 44, 51])
            make = {0: hop_by_hop, 43: routing, 60: dest_opts, 51: auth_header}.get(kind)
            ext = (make(nxt) if make else fragment6(nxt, self.pick([0, 0, 5]), self.chance(0.5), self.n(1 << 31))) + ext
            nxt = kind
        kw = {}
        if self.chance(0.2):
            kw["plen"] = self.n(300)
        if self.chance(0.05):
            kw["version"] = self.n(16)
        return 6, ip6(nxt, ext + l4, **kw)

    def packet(self) -> tuple[int, bytes, int]:
        version, p = self.ip()
        et = 0x0800 if version == 4 else 0x86DD
        kind = self.n(9)
        if kind == 0:
            tags = [(self.pick([0x8100, 0x88A8, 0x9100]), self.n(4096)) for _ in range(self.pick([0, 1, 2, 5]))]
            lt, data = 1, eth(et, p, tags)
        elif kind == 1:
            lt, data = 1, eth(0x8847, mpls(p, [self.n(1 << 20) for _ in range(1 + self.n(3))]))
        elif kind == 2:
            lt, data = 1, eth(0x8864, pppoe(self.pick([0x21, 0x57, 0xC021]), p))
        elif kind == 3:
            lt = self.pick([113, 276])
            data = (sll if lt == 113 else sll2)(et, p)
        elif kind == 4:
            lt, data = self.pick([0, 108]), null(self.pick([2, 24, 28, 30, 7]), p, self.pick("<>"))
        elif kind == 5:
            lt, data = self.pick([12, 14, 101, 228, 229]), p
        elif kind == 6:
            ac = self.pick([b"\xff\x03", b""])
            lt, data = self.pick([9, 50]), ac + self.pick([b"\x00\x21", b"\x21", b"\x00\x57", b"\x57"]) + p
        elif kind == 7:
            lt, data = 1, eth(et, p)
        else:
            lt, data = 1, eth(self.n(65536), p)
        full = len(data)
        if self.chance(0.3):
            data = data[: self.n(len(data) + 1)]
        return lt, data, self.pick([len(data), full, full + self.n(100)])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_and_dpkt_agree_on_structured_random_packets(seed):
    gen = RandomPackets(seed)
    packets = [gen.packet() for _ in range(4000)]
    chunk = chunk_of(packets)
    a = pa.Table.from_batches([fast_engine.decode_chunk(chunk)])
    b = pa.Table.from_batches([dpkt_engine.decode_chunk(chunk)])
    diff = first_difference(a, b)
    if diff is not None:
        name, row, va, vb = diff
        lt, data, wirelen = packets[row]
        pytest.fail(f"seed {seed} packet {row} (linktype {lt}, wirelen {wirelen}, bytes {data.hex()}): "
                    f"column {name!r} fast={va!r} dpkt={vb!r}")  # fmt: skip
    statuses = set(a.column("status").to_pylist())
    assert {Status.OK, Status.TRUNCATED, Status.MALFORMED, Status.FRAGMENT, Status.NON_IP} <= statuses


@pytest.mark.corpus
@pytest.mark.slow
def test_pyshark_comparison_covers_most_of_the_corpus(shark_corpus):
    """The exclusions leave the bulk of the corpus's TCP and UDP packets compared."""
    tcp = udp = total_tcp = total_udp = 0
    for path, shark in shark_corpus.items():
        fast = flowkit.packets(path, "fast", decap=False).to_arrow()
        tcp += len(comparable_rows(fast, shark, 6))
        udp += len(comparable_rows(fast, shark, 17))
        ok = fast.column("status").to_numpy() == Status.OK
        total_tcp += int((ok & (fast.column("ip_proto").to_numpy() == 6)).sum())
        total_udp += int((ok & (fast.column("ip_proto").to_numpy() == 17)).sum())
    print(f"compared with Wireshark: {tcp} of {total_tcp} TCP, {udp} of {total_udp} UDP packets")
    assert tcp > 0.9 * total_tcp and udp > 0.9 * total_udp
