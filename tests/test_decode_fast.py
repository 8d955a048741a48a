"""The fast engine on packets built here with dpkt: every column against what was built."""
from __future__ import annotations

import ipaddress
import struct

import dpkt
import numpy as np
import pytest

from flowkit.capture.records import RecordChunk
from flowkit.decode.fast import decode_chunk
from flowkit.decode.schema import (
    ACK,
    CWR,
    ECE,
    FIN,
    FRAG_DF,
    FRAG_IS_FRAGMENT,
    FRAG_MF,
    NS,
    OPT_MSS,
    OPT_SACK,
    OPT_SACK_PERM,
    OPT_TS,
    OPT_WSCALE,
    PACKET_SCHEMA,
    PSH,
    RST,
    SYN,
    URG,
    Status,
)

SRC4, DST4 = "192.0.2.10", "198.51.100.7"
SRC6, DST6 = "2001:db8::1", "fe80::abcd:1"
MAC_A, MAC_B = b"\x00\x11\x22\x33\x44\x55", b"\x66\x77\x88\x99\xaa\xbb"


# ---- building packets -------------------------------------------------------------

def make_chunk(packets: list[bytes], linktype=1, wirelen=None, gap: int = 0) -> RecordChunk:
    """A RecordChunk over the given packet bytes (``gap`` junk bytes between packets)."""
    junk = b"\xee" * gap
    data = np.frombuffer(junk.join(packets) + junk, np.uint8).copy()
    caplen = np.array([len(p) for p in packets], np.uint32)
    start = np.zeros(len(packets), np.int64)
    if len(packets):
        start[1:] = np.cumsum(caplen[:-1].astype(np.int64) + gap)
    n = len(packets)
    return RecordChunk(
        data=data,
        start=start,
        caplen=caplen,
        wirelen=caplen.copy() if wirelen is None else np.asarray(wirelen, np.uint32),
        ts=np.arange(n, dtype=np.int64) * 1_000_000_007 + 1_600_000_000_000_000_000,
        linktype=np.broadcast_to(np.asarray(linktype, np.uint16), (n,)).copy(),
        iface=(np.arange(n) % 3).astype(np.uint16),
        file_offset=start + 24,
        index=np.arange(n, dtype=np.int64) + 1000,
    )


def decode(packets, linktype=1, **kw) -> list[dict]:
    return decode_chunk(make_chunk(list(packets), linktype, **kw)).to_pylist()


def one(packet: bytes, linktype=1) -> dict:
    return decode([packet], linktype)[0]


def addr16(text: str) -> bytes:
    ip = ipaddress.ip_address(text)
    return (b"\0" * 10 + b"\xff\xff" + ip.packed) if ip.version == 4 else ip.packed


def tcp(sport=40000, dport=443, seq=1, ack=2, flags=ACK, win=1024, opts=b"", data=b"", off=None) -> bytes:
    off = (20 + len(opts)) // 4 if off is None else off
    t = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags & 0xFF, win=win,
                     opts=opts, off=off, data=data)
    raw = bytearray(bytes(t))
    raw[12] |= (flags >> 8) & 1  # NS lives in the low bit of byte 12
    return bytes(raw)


def udp(sport=5353, dport=53, data=b"") -> bytes:
    return bytes(dpkt.udp.UDP(sport=sport, dport=dport, ulen=8 + len(data), data=data))


def ip4(proto: int, payload: bytes, src=SRC4, dst=DST4, ttl=64, ip_id=4321, off=0, opts=b"",
        total=None) -> bytes:
    ip = dpkt.ip.IP(src=ipaddress.ip_address(src).packed, dst=ipaddress.ip_address(dst).packed,
                    p=proto, ttl=ttl, id=ip_id, opts=opts, data=payload)
    raw = bytearray(bytes(ip))
    raw[0] = 0x40 | (20 + len(opts)) // 4  # version and IHL, stated explicitly
    raw[2:4] = struct.pack(">H", 20 + len(opts) + len(payload))
    raw[6:8] = struct.pack(">H", off)  # flags and fragment offset
    if total is not None:
        raw[2:4] = struct.pack(">H", total)
    return bytes(raw)


def ip6(nxt: int, payload: bytes, src=SRC6, dst=DST6, hlim=55, plen=None) -> bytes:
    return bytes(dpkt.ip6.IP6(src=ipaddress.ip_address(src).packed, dst=ipaddress.ip_address(dst).packed,
                              nxt=nxt, hlim=hlim, plen=len(payload) if plen is None else plen,
                              data=payload))


def eth(payload: bytes, etype=0x0800) -> bytes:
    return MAC_B + MAC_A + struct.pack(">H", etype) + payload


# ---- schema and bookkeeping columns ---------------------------------------------

def test_schema_and_bookkeeping_columns():
    pkts = [eth(ip4(6, tcp())), eth(ip4(17, udp()))]
    chunk = make_chunk(pkts, wirelen=[1500, 60])
    batch = decode_chunk(chunk)
    assert batch.schema == PACKET_SCHEMA
    rows = batch.to_pylist()
    assert [r["index"] for r in rows] == [1000, 1001]
    assert [r["caplen"] for r in rows] == [len(p) for p in pkts]
    assert [r["wirelen"] for r in rows] == [1500, 60]
    assert [r["iface"] for r in rows] == [0, 1]
    assert [r["linktype"] for r in rows] == [1, 1]
    ts = batch.column("ts").cast("int64").to_pylist()
    assert ts == chunk.ts.tolist()


def test_empty_chunk():
    batch = decode_chunk(make_chunk([]))
    assert batch.num_rows == 0 and batch.schema == PACKET_SCHEMA


# ---- IPv4 / TCP -------------------------------------------------------------------

TCP_OPTS = (
    b"\x02\x04\x05\xb4"  # MSS 1460
    b"\x01"  # NOP
    b"\x03\x03\x07"  # window scale 7
    b"\x04\x02"  # SACK permitted
    b"\x08\x0a\x11\x22\x33\x44\x55\x66\x77\x88"  # timestamps
    b"\x05\x0a\x00\x00\x00\x01\x00\x00\x00\x02"  # one SACK block
    b"\x00\x00"  # end of list + padding
)


def test_ipv4_tcp_every_column():
    seg = tcp(sport=51234, dport=8080, seq=0xFFFFFFF0, ack=0x80000001,
              flags=SYN | ACK | NS | ECE | CWR, win=65535, opts=TCP_OPTS, data=b"x" * 33)
    r = one(eth(ip4(6, seg, ttl=17, ip_id=0xBEEF)))
    assert r["status"] == Status.OK
    assert r["ip_version"] == 4
    assert r["src_ip"] == addr16(SRC4) and r["dst_ip"] == addr16(DST4)
    assert r["ip_proto"] == 6 and r["ttl"] == 17 and r["ip_id"] == 0xBEEF
    assert r["ip_len"] == 20 + len(seg)
    assert r["frag"] == 0 and r["frag_offset"] == 0
    assert (r["src_port"], r["dst_port"]) == (51234, 8080)
    assert r["seq"] == 0xFFFFFFF0 and r["ack"] == 0x80000001
    assert r["tcp_flags"] == SYN | ACK | NS | ECE | CWR
    assert r["window"] == 65535
    assert r["tcp_hdr_len"] == 20 + len(TCP_OPTS)
    assert r["tcp_opts"] == OPT_MSS | OPT_WSCALE | OPT_SACK_PERM | OPT_TS | OPT_SACK
    assert (r["mss"], r["wscale"], r["tsval"], r["tsecr"]) == (1460, 7, 0x11223344, 0x55667788)
    assert r["payload_len"] == 33
    assert r["vlan"] == r["inner_vlan"] == 0
    assert r["udp_len"] == r["icmp_type"] == r["icmp_code"] == 0


@pytest.mark.parametrize("flags", [FIN, SYN, RST, PSH, ACK, URG, ECE, CWR, NS, FIN | PSH | ACK | URG])
def test_tcp_flag_bits(flags):
    assert one(eth(ip4(6, tcp(flags=flags))))["tcp_flags"] == flags


def test_tcp_options_one_at_a_time():
    cases = [
        (b"\x02\x04\x21\x34", OPT_MSS, {"mss": 0x2134}),
        (b"\x01\x03\x03\x0e", OPT_WSCALE, {"wscale": 14}),
        (b"\x04\x02\x00\x00", OPT_SACK_PERM, {}),
        (b"\x01\x01\x08\x0a" + struct.pack(">II", 7, 9), OPT_TS, {"tsval": 7, "tsecr": 9}),
        (b"\x01\x01\x05\x12" + bytes(16), OPT_SACK, {}),
        (b"\x00\x02\x04\x05\xb4\x00\x00\x00", 0, {"mss": 0}),  # after end-of-list: ignored
        (b"\x02\x00\x02\x04", 0, {}),  # option length 0 is bad: walk stops, packet stays OK
        (b"\x01\x01\x08\x0a\x00\x00\x00\x00", 0, {}),  # timestamp running past the header
    ]
    pkts = [eth(ip4(6, tcp(opts=o, data=b"abc"))) for o, _, _ in cases]
    for r, (opts, bits, values) in zip(decode(pkts), cases):
        assert r["status"] == Status.OK
        assert r["tcp_hdr_len"] == 20 + len(opts)
        assert r["tcp_opts"] == bits, opts
        for k, v in values.items():
            assert r[k] == v
        assert r["payload_len"] == 3


def test_ipv4_options_shift_the_transport_header():
    for opts in (b"\x01\x01\x01\x00", b"\x07\x0b\x04" + bytes(8) + b"\x00", b"\x01" * 40):
        seg = udp(sport=1111, dport=2222, data=b"q" * 10)
        r = one(eth(ip4(17, seg, opts=opts)))
        assert r["status"] == Status.OK
        assert r["ip_len"] == 20 + len(opts) + len(seg)
        assert (r["src_port"], r["dst_port"], r["udp_len"]) == (1111, 2222, 18)
        assert r["payload_len"] == 10


def test_ethernet_padding_does_not_count_as_payload():
    frame = eth(ip4(6, tcp(data=b"")))
    frame += b"\0" * (60 - len(frame))  # minimum Ethernet frame
    r = one(frame)
    assert r["caplen"] == 60 and r["ip_len"] == 40 and r["payload_len"] == 0


def test_snaplen_cut_payload_is_ok_and_counts_wire_bytes():
    frame = eth(ip4(6, tcp(opts=b"\x01\x01\x08\x0a" + bytes(8), data=b"z" * 1000)))
    hdrs = 14 + 20 + 32
    r = decode([frame[: hdrs + 10]], wirelen=[len(frame)])[0]
    assert r["status"] == Status.OK
    assert r["payload_len"] == 1000 and r["ip_len"] == 20 + 32 + 1000
    assert r["tcp_opts"] == OPT_TS


# ---- UDP, ICMP, other protocols -------------------------------------------------------

def test_ipv4_udp():
    r = one(eth(ip4(17, udp(sport=68, dport=67, data=b"d" * 300))))
    assert r["status"] == Status.OK and r["ip_proto"] == 17
    assert (r["src_port"], r["dst_port"], r["udp_len"], r["payload_len"]) == (68, 67, 308, 300)
    assert r["tcp_flags"] == r["seq"] == r["tcp_hdr_len"] == 0


def test_udp_payload_comes_from_ip_length_not_udp_length():
    seg = bytearray(udp(data=b"a" * 20))
    seg[4:6] = struct.pack(">H", 9999)  # lying UDP length
    r = one(eth(ip4(17, bytes(seg))))
    assert r["udp_len"] == 9999 and r["payload_len"] == 20


def test_icmp_and_icmpv6():
    echo = bytes(dpkt.icmp.ICMP(type=8, code=0, data=dpkt.icmp.ICMP.Echo(id=1, seq=2, data=b"p" * 56)))
    unreach = bytes(dpkt.icmp6.ICMP6(type=1, code=4, data=bytes(4) + b"orig" * 10))
    r4, r6 = one(eth(ip4(1, echo))), one(eth(ip6(58, unreach), 0x86DD))
    assert (r4["status"], r4["ip_proto"], r4["icmp_type"], r4["icmp_code"]) == (Status.OK, 1, 8, 0)
    assert r4["payload_len"] == len(echo) - 8 == 56
    assert (r6["status"], r6["ip_proto"], r6["icmp_type"], r6["icmp_code"]) == (Status.OK, 58, 1, 4)
    assert r6["payload_len"] == len(unreach) - 8
    for r in (r4, r6):
        assert r["src_port"] == r["dst_port"] == 0


def test_other_ip_protocol():
    gre = b"\x00\x00\x08\x00" + b"g" * 50
    r = one(eth(ip4(47, gre)))
    assert (r["status"], r["ip_proto"], r["payload_len"], r["src_port"]) == (Status.OK, 47, 54, 0)


# ---- IPv6 -------------------------------------------------------------------------------

def test_ipv6_tcp_every_ip_column():
    seg = tcp(sport=2000, dport=22, flags=PSH | ACK, data=b"s" * 77)
    r = one(eth(ip6(6, seg, hlim=3), 0x86DD))
    assert r["status"] == Status.OK and r["ip_version"] == 6
    assert r["src_ip"] == addr16(SRC6) and r["dst_ip"] == addr16(DST6)
    assert (r["ip_proto"], r["ttl"], r["ip_len"]) == (6, 3, 40 + len(seg))
    assert (r["src_port"], r["dst_port"], r["payload_len"]) == (2000, 22, 77)
    assert r["ip_id"] == r["frag"] == 0


def ext(nxt: int, body_len: int) -> bytes:
    """A generic IPv6 extension header (hop-by-hop, routing, destination options)."""
    size = 8 + body_len  # body_len + 6 must be a multiple of 8 (minus the 2 fixed bytes)
    assert size % 8 == 0
    return bytes([nxt, size // 8 - 1]) + b"\x01" + bytes([size - 3]) + bytes(size - 4)


def ah(nxt: int, icv_words: int) -> bytes:
    size = 12 + 4 * icv_words
    return bytes([nxt, size // 4 - 2]) + bytes(2) + struct.pack(">II", 0x100, 7) + bytes(4 * icv_words)


def frag6(nxt: int, offset: int, more: bool, ident: int) -> bytes:
    return bytes([nxt, 0]) + struct.pack(">HI", (offset << 3) | int(more), ident)


@pytest.mark.parametrize(
    "chain",
    [
        [(0, 0)],
        [(43, 8)],
        [(60, 16)],
        [(51, 1)],
        [(51, 3)],
        [(0, 0), (60, 8), (43, 0), (51, 2), (60, 0)],
    ],
)
def test_ipv6_extension_chain(chain):
    seg = udp(sport=7, dport=9, data=b"u" * 12)
    kinds = [k for k, _ in chain]
    headers = b""
    for i, (kind, size) in enumerate(chain):
        nxt = kinds[i + 1] if i + 1 < len(kinds) else 17
        headers += ah(nxt, size) if kind == 51 else ext(nxt, size)
    r = one(eth(ip6(kinds[0], headers + seg), 0x86DD))
    assert r["status"] == Status.OK
    assert r["ip_proto"] == 17
    assert r["ip_len"] == 40 + len(headers) + len(seg)
    assert (r["src_port"], r["dst_port"], r["payload_len"]) == (7, 9, 12)


def test_ipv6_no_next_header():
    r = one(eth(ip6(0, ext(59, 0) + b"trailing"), 0x86DD))
    assert r["status"] == Status.OK and r["ip_proto"] == 59 and r["src_port"] == 0


def test_ipv6_fragments():
    seg = tcp(sport=3000, dport=80, data=b"f" * 60)  # 80 bytes: 56 in the first fragment, 24 in the last
    first = eth(ip6(44, frag6(6, 0, True, 0xCAFEF00D) + seg[:56]), 0x86DD)
    later = eth(ip6(0, ext(44, 0) + frag6(6, 7, False, 0xCAFEF00D) + seg[56:]), 0x86DD)
    a, b = decode([first, later])
    assert a["status"] == Status.FRAGMENT and a["ip_proto"] == 6  # held until the rest arrives
    assert a["frag"] == FRAG_IS_FRAGMENT | FRAG_MF and a["frag_offset"] == 0
    assert a["ip_id"] == 0xCAFEF00D and (a["src_port"], a["dst_port"]) == (3000, 80)  # as tcpdump sees it
    assert a["payload_len"] == 56 - 20
    # the last fragment completes the datagram: its row is the whole datagram, headers of the first
    assert b["status"] == Status.OK and b["ip_proto"] == 6 and b["frag"] == FRAG_IS_FRAGMENT
    assert b["frag_offset"] == 0 and b["ip_id"] == 0xCAFEF00D and b["src_ip"] == addr16(SRC6)
    assert (b["src_port"], b["dst_port"]) == (3000, 80)
    assert b["ip_len"] == 40 + 80 and b["payload_len"] == 60


# ---- IPv4 fragments ----------------------------------------------------------------------

def test_ipv4_fragments():
    seg = udp(sport=500, dport=4500, data=b"F" * 64)
    first = eth(ip4(17, seg[:32], off=dpkt.ip.IP_MF, ip_id=99))
    later = eth(ip4(17, seg[32:], off=4, ip_id=99))
    last_df = eth(ip4(6, tcp(), off=dpkt.ip.IP_DF))
    a, b, c = decode([first, later, last_df])
    assert a["status"] == Status.FRAGMENT and a["frag"] == FRAG_IS_FRAGMENT | FRAG_MF
    assert (a["src_port"], a["dst_port"], a["udp_len"]) == (500, 4500, 72)  # as tcpdump filters see it
    assert a["payload_len"] == 32 - 8 and a["ip_id"] == 99 and a["src_ip"] == addr16(SRC4)
    # completed by the later fragment: one row with the datagram's full length, as Zeek counts it
    assert b["status"] == Status.OK and b["frag"] == FRAG_IS_FRAGMENT
    assert b["frag_offset"] == 0 and b["ip_proto"] == 17 and b["ip_id"] == 99
    assert (b["src_port"], b["dst_port"], b["udp_len"]) == (500, 4500, 72)
    assert b["ip_len"] == 20 + 72 and b["payload_len"] == 64
    assert c["status"] == Status.OK and c["frag"] == FRAG_DF


# ---- link layers ---------------------------------------------------------------------------

def vlan_frame(tags, payload, etype=0x0800):
    out = MAC_B + MAC_A
    for tpid, vid in tags:
        out += struct.pack(">HH", tpid, (5 << 13) | vid)  # priority bits must be masked off
    return out + struct.pack(">H", etype) + payload


@pytest.mark.parametrize(
    "tags",
    [
        [(0x8100, 10)],
        [(0x88A8, 100), (0x8100, 200)],
        [(0x9100, 4095), (0x8100, 1)],
        [(0x8100, 3), (0x8100, 4), (0x8100, 5)],
        [(0x88A8, 7), (0x8100, 8), (0x8100, 9), (0x8100, 10)],
    ],
)
def test_vlan_stacks(tags):
    r = one(vlan_frame(tags, ip4(6, tcp(sport=1, dport=2, data=b"v"))))
    assert r["status"] == Status.OK
    assert r["vlan"] == tags[0][1]
    assert r["inner_vlan"] == (tags[1][1] if len(tags) > 1 else 0)
    assert (r["src_port"], r["dst_port"], r["payload_len"]) == (1, 2, 1)


def test_vlan_over_ipv6_and_vlan_non_ip():
    a, b = decode([vlan_frame([(0x8100, 42)], ip6(17, udp()), 0x86DD),
                   vlan_frame([(0x8100, 43)], bytes(28), 0x0806)])
    assert a["status"] == Status.OK and a["ip_version"] == 6 and a["vlan"] == 42
    assert b["status"] == Status.NON_IP and b["vlan"] == 43 and b["ip_version"] == 0


def mpls(labels, payload, etype=0x8847):
    out = MAC_B + MAC_A + struct.pack(">H", etype)
    for i, label in enumerate(labels):
        bos = int(i == len(labels) - 1)
        out += struct.pack(">I", (label << 12) | (bos << 8) | 64)
    return out + payload


@pytest.mark.parametrize("labels", [[16], [100, 200, 300], list(range(16, 26))])
def test_mpls_stacks(labels):
    a, b, c = decode([
        mpls(labels, ip4(17, udp(sport=11, dport=12))),
        mpls(labels, ip6(6, tcp(sport=13, dport=14)), 0x8848),
        mpls(labels, bytes(4) + MAC_B + MAC_A + b"\x08\x00" + ip4(17, udp())),  # pseudowire
    ])
    assert (a["status"], a["ip_version"], a["src_port"], a["dst_port"]) == (Status.OK, 4, 11, 12)
    assert (b["status"], b["ip_version"], b["src_port"], b["dst_port"]) == (Status.OK, 6, 13, 14)
    assert c["status"] == Status.NON_IP


def test_vlan_then_mpls():
    frame = vlan_frame([(0x8100, 77)], struct.pack(">I", (5 << 12) | 0x100 | 1) + ip4(1, bytes(8)), 0x8847)
    r = one(frame)
    assert (r["status"], r["vlan"], r["ip_proto"]) == (Status.OK, 77, 1)


def pppoe(proto: int, payload: bytes) -> bytes:
    session = bytes(dpkt.pppoe.PPPoE(v=1, type=1, code=0, session=0x1234, len=2 + len(payload)))
    return MAC_B + MAC_A + b"\x88\x64" + session + struct.pack(">H", proto) + payload


def test_pppoe_session():
    a, b, c = decode([pppoe(0x0021, ip4(6, tcp(sport=80, dport=1))),
                      pppoe(0x0057, ip6(17, udp(sport=2, dport=3))),
                      pppoe(0xC021, bytes(10))])
    assert (a["status"], a["ip_version"], a["src_port"]) == (Status.OK, 4, 80)
    assert (b["status"], b["ip_version"], b["dst_port"]) == (Status.OK, 6, 3)
    assert c["status"] == Status.NON_IP


def test_non_ip_ethertypes():
    arp = bytes(dpkt.arp.ARP())
    rows = decode([eth(arp, 0x0806), eth(bytes(30), 0x88CC), eth(bytes(30), 0x0026)])
    assert [r["status"] for r in rows] == [Status.NON_IP] * 3
    assert all(r["ip_version"] == 0 and r["src_ip"] == bytes(16) for r in rows)


def test_linux_cooked_sll_and_sll2():
    payload = ip4(17, udp(sport=123, dport=123, data=b"n" * 48))
    sll = bytes(dpkt.sll.SLL(type=0, hrd=1, hlen=6, hdr=MAC_A + b"\0\0", ethtype=0x0800)) + payload
    sll2 = struct.pack(">HHIHBB", 0x0800, 0, 2, 1, 0, 6) + MAC_A + b"\0\0" + payload
    sll_v6 = bytes(dpkt.sll.SLL(ethtype=0x86DD)) + ip6(17, udp(sport=9))
    sll_arp = bytes(dpkt.sll.SLL(ethtype=0x0806)) + bytes(28)
    assert len(sll) - len(payload) == 16 and len(sll2) - len(payload) == 20
    a, c, d = decode([sll, sll_v6, sll_arp], 113)
    b = one(sll2, 276)
    for r in (a, b):
        assert (r["status"], r["ip_version"], r["src_port"], r["payload_len"]) == (Status.OK, 4, 123, 48)
    assert (c["status"], c["ip_version"], c["src_port"]) == (Status.OK, 6, 9)
    assert d["status"] == Status.NON_IP


@pytest.mark.parametrize("family, order, version", [
    (2, "<", 4), (2, ">", 4), (24, "<", 6), (28, "<", 6), (30, "<", 6), (30, ">", 6), (28, ">", 6),
])
def test_bsd_null_either_byte_order(family, order, version):
    payload = ip4(6, tcp(sport=5)) if version == 4 else ip6(6, tcp(sport=5))
    r = one(struct.pack(order + "I", family) + payload, 0)
    assert (r["status"], r["ip_version"], r["src_port"]) == (Status.OK, version, 5)


def test_bsd_loop_network_order_and_unknown_family():
    lo = bytes(dpkt.loopback.Loopback(family=2)) + ip4(17, udp(sport=6))
    r = one(struct.pack(">I", 2) + ip4(17, udp(sport=6)), 108)
    assert (r["status"], r["src_port"]) == (Status.OK, 6)
    assert one(struct.pack(">I", 24) + ip6(17, udp()), 108)["ip_version"] == 6
    assert one(struct.pack("<I", 7) + ip4(17, udp()), 0)["status"] == Status.NON_IP
    assert one(lo, 0)["status"] == Status.OK  # dpkt writes host order


@pytest.mark.parametrize("linktype", [12, 14, 101])
def test_raw_ip_by_version_nibble(linktype):
    a, b, c = decode([ip4(6, tcp(dport=25)), ip6(17, udp(dport=53)), b"\x50" + bytes(30)], linktype)
    assert (a["status"], a["ip_version"], a["dst_port"]) == (Status.OK, 4, 25)
    assert (b["status"], b["ip_version"], b["dst_port"]) == (Status.OK, 6, 53)
    assert c["status"] == Status.MALFORMED


def test_raw_ipv4_and_ipv6_link_types():
    assert one(ip4(17, udp(dport=1)), 228)["dst_port"] == 1
    assert one(ip6(17, udp(dport=2)), 229)["dst_port"] == 2
    assert one(ip6(17, udp()), 228)["status"] == Status.MALFORMED  # version mismatch
    assert one(ip4(17, udp()), 229)["status"] == Status.MALFORMED


@pytest.mark.parametrize("linktype", [9, 50])
def test_ppp(linktype):
    pkts = [
        b"\xff\x03\x00\x21" + ip4(6, tcp(sport=31)),
        b"\x00\x21" + ip4(6, tcp(sport=32)),
        b"\xff\x03\x00\x57" + ip6(17, udp(sport=33)),
        b"\x21" + ip4(17, udp(sport=34)),  # protocol-field compression
        b"\xff\x03\xc0\x21" + bytes(12),  # LCP
    ]
    rows = decode(pkts, linktype)
    assert [r["src_port"] for r in rows[:4]] == [31, 32, 33, 34]
    assert [r["ip_version"] for r in rows[:4]] == [4, 4, 6, 4]
    assert [r["status"] for r in rows] == [Status.OK] * 4 + [Status.NON_IP]


def test_unsupported_link_types_mixed_in_one_chunk():
    frame = eth(ip4(6, tcp(sport=9)))
    chunk = make_chunk([frame, frame, frame[14:], frame], linktype=[1, 11, 101, 230])  # ARCnet, 802.15.4: not decoded
    rows = decode_chunk(chunk).to_pylist()
    assert [r["status"] for r in rows] == [Status.OK, Status.UNSUPPORTED_LINK, Status.OK, Status.UNSUPPORTED_LINK]
    assert [r["src_port"] for r in rows] == [9, 0, 9, 0]


# ---- malformed ---------------------------------------------------------------------------

def test_malformed_headers():
    good4 = ip4(6, tcp(data=b"x" * 8))
    bad_version = bytes([0x65]) + good4[1:]
    bad_ihl = bytes([0x44]) + good4[1:]
    short_total = ip4(6, tcp(), total=16)
    bad_doff = ip4(6, tcp(off=4))
    doff_past_ip = ip4(6, tcp(off=15) + bytes(40), total=20 + 30)
    udp_past_ip = ip4(17, udp(), total=24)
    ext_overrun = ip6(0, ext(17, 8) + udp(), plen=10)
    ipv6_bad_version = bytes([0x45]) + ip6(17, udp())[1:]
    rows = decode([eth(p) for p in (bad_version, bad_ihl, short_total, bad_doff, doff_past_ip, udp_past_ip)]
                  + [eth(ext_overrun, 0x86DD), eth(ipv6_bad_version, 0x86DD)])
    assert [r["status"] for r in rows] == [Status.MALFORMED] * 8
    assert rows[3]["src_port"] == 40000  # what was read stays filled


def test_ip_length_beyond_the_wire_is_malformed():
    """Cut by the snapshot length (wirelen > caplen) is TRUNCATED; an IP length larger
    than the frame was on the wire is impossible (Zeek drops these as truncated_IP)."""
    v4, v6 = eth(ip4(6, tcp(data=b"d" * 50))), eth(ip6(17, udp(data=b"d" * 50)), 0x86DD)
    cut4, cut6 = v4[:14 + 20 + 10], v6[:14 + 40 + 4]
    rows = decode([cut4, cut6, cut4, cut6], wirelen=[len(v4), len(v6), len(cut4), len(cut6)])
    assert [r["status"] for r in rows] == [Status.TRUNCATED] * 2 + [Status.MALFORMED] * 2
    lying = eth(ip4(17, udp(data=b"x" * 10), total=20 + 18 + 1))
    assert one(lying)["status"] == Status.MALFORMED


def test_zero_ipv4_total_length_from_segmentation_offload():
    frame = eth(ip4(6, tcp(sport=4, data=b"o" * 3000), total=0))
    r = one(frame)
    assert r["status"] == Status.OK and r["src_port"] == 4
    assert r["ip_len"] == len(frame) - 14 and r["payload_len"] == 3000


def test_deep_ipv6_chain_is_malformed_not_endless():
    headers = b"".join(ext(60, 0) for _ in range(12)) + ext(17, 0)
    r = one(eth(ip6(60, headers + udp()), 0x86DD))
    assert r["status"] == Status.MALFORMED


# ---- buffers, offsets and blocks ------------------------------------------------------------

def test_caplen_guards_against_neighbouring_bytes():
    """A packet cut inside its headers must not borrow the next packet's bytes."""
    full = eth(ip4(6, tcp(sport=1234, dport=80)))
    cut = full[:14 + 20 + 10]
    rows = decode([cut, full, cut[:14 + 12]], gap=7, wirelen=[len(full)] * 3)
    assert rows[0]["status"] == Status.TRUNCATED and rows[1]["status"] == Status.OK
    assert rows[0]["src_port"] == 1234 and rows[0]["seq"] == 0  # ports read, rest absent
    assert rows[2]["status"] == Status.TRUNCATED and rows[2]["ip_version"] == 4
    assert rows[2]["src_ip"] == bytes(16)


def test_large_chunk_of_mixed_versions():
    base = [eth(ip4(6, tcp(sport=s))) for s in (1, 2, 3)] + [eth(ip6(17, udp(sport=4)), 0x86DD)]
    repeat = 16_391  # 65,564 packets: every row lands in its own slot of every column
    pkts = base * repeat
    batch = decode_chunk(make_chunk(pkts))
    ports = batch.column("src_port").to_numpy()
    assert ports.tolist() == [1, 2, 3, 4] * repeat
    assert (batch.column("status").to_numpy() == Status.OK).all()
    assert batch.column("index").to_numpy()[-1] == 1000 + len(pkts) - 1
