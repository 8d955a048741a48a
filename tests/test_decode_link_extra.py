"""Link layers beyond Ethernet/SLL/PPP: PBB, VN-Tag, 802.3 LLC/SNAP, Cisco HDLC, 802.11,
radiotap and NFLOG, on both the ``fast`` and the ``dpkt`` engine.

Every packet is built here byte by byte, so the expected columns (and where the IP
header starts) come from how it was built. Both engines must give those values and
agree with each other on every column; a cut at any byte never raises and reads
TRUNCATED until the link, IP and TCP headers are all captured.
"""
from __future__ import annotations

import socket
import struct
import subprocess

import dpkt
import numpy as np
import pytest

from conftest import CORPUS, require_tool
from flowkit.capture import read_chunks
from flowkit.capture.records import RecordChunk
from flowkit.decode import dpkt_engine, fast
from flowkit.decode.schema import ACK, PACKET_SCHEMA, Status

A4, B4 = "10.1.2.3", "192.0.2.77"
A6, B6 = "2001:db8::a", "2001:db8::b"
MACS = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01"
SNAP_IP4 = b"\xaa\xaa\x03\x00\x00\x00\x08\x00"
SNAP_IP6 = b"\xaa\xaa\x03\x00\x00\x00\x86\xdd"


# ---------------------------------------------------------------- building packets


def mapped(a: str) -> bytes:
    return bytes(10) + b"\xff\xff" + socket.inet_pton(socket.AF_INET, a)


def tcp4(sport: int, dport: int, seq: int = 7000, payload: bytes = b"hello") -> bytes:
    """IPv4 + TCP (no options): 40 header bytes, then ``payload``."""
    seg = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq, ack=1, flags=ACK, win=512, off=5, data=payload)
    ip = dpkt.ip.IP(src=socket.inet_pton(socket.AF_INET, A4), dst=socket.inet_pton(socket.AF_INET, B4),
                    p=6, ttl=61, id=4242, data=bytes(seg))
    raw = bytearray(bytes(ip))
    raw[0] = 0x45
    raw[2:4] = struct.pack(">H", 40 + len(payload))
    return bytes(raw)


def udp6(sport: int, dport: int, payload: bytes = b"query") -> bytes:
    dgram = dpkt.udp.UDP(sport=sport, dport=dport, ulen=8 + len(payload), data=payload)
    return bytes(dpkt.ip6.IP6(src=socket.inet_pton(socket.AF_INET6, A6), dst=socket.inet_pton(socket.AF_INET6, B6),
                              nxt=17, hlim=9, plen=8 + len(payload), data=bytes(dgram)))


def vlan(vid: int, etype: int) -> bytes:
    return struct.pack(">HH", vid, etype)


def pbb(inner_etype: int, isid: int = 0x1EBB30) -> bytes:
    """0x88e7 payload: I-TAG (flags + 24-bit I-SID), inner destination/source MACs, type."""
    return struct.pack(">I", isid) + MACS + struct.pack(">H", inner_etype)


def vntag(etype: int) -> bytes:
    return b"\x80\x01\x00\x33" + struct.pack(">H", etype)


def wlan(fc0: int, fc1: int, qos: bytes = b"", htc: bytes = b"") -> bytes:
    """802.11 header: frame control, duration, 3 (or 4 with ToDS+FromDS) addresses, sequence."""
    addrs = b"\x10" * 18 + (b"\x20" * 6 if fc1 & 3 == 3 else b"")
    return bytes([fc0, fc1]) + b"\x00\x01" + addrs[:18] + b"\x30\x00" + addrs[18:] + qos + htc


def radiotap(flags: int = 0) -> bytes:
    """8-byte fixed radiotap header + Flags (present bit 1) + Rate (bit 2): 10 bytes, LE length."""
    return struct.pack("<BBHI", 0, 0, 10, 0b110) + bytes([flags, 0x0C])


def nflog(family: int, packet: bytes, version: int = 0) -> bytes:
    """NFLOG header, a 5-byte prefix TLV (padded to 8), a hwtype TLV, then the payload TLV."""
    prefix = struct.pack("<HH", 9, 10) + b"drop\0" + b"\0\0\0"
    hwtype = struct.pack("<HH", 6, 5) + b"\x00\x01" + b"\0\0"
    return bytes([family, version]) + b"\x00\x07" + prefix + hwtype + struct.pack("<HH", 4 + len(packet), 9) + packet


# ---------------------------------------------------------------- running both engines


def chunk(packets: list[bytes], linktype, wirelen=None) -> RecordChunk:
    data = np.frombuffer(b"".join(packets), np.uint8).copy()
    caplen = np.array([len(p) for p in packets], np.uint32)
    start = np.zeros(len(packets), np.int64)
    if len(packets):
        start[1:] = np.cumsum(caplen[:-1].astype(np.int64))
    n = len(packets)
    wire = caplen.copy() if wirelen is None else np.asarray(wirelen, np.uint32)
    return RecordChunk(data, start, caplen, wire, np.arange(n, dtype=np.int64),
                       np.broadcast_to(np.asarray(linktype, np.uint16), (n,)).copy(),
                       np.zeros(n, np.uint16), start, np.arange(n, dtype=np.int64))


def both(packets: list[bytes], linktype, wirelen=None) -> list[dict]:
    """Decode with both engines, assert they agree on every column, return the rows."""
    c = chunk(packets, linktype, wirelen)
    a, b = fast.decode_chunk(c), dpkt_engine.decode_chunk(c)
    assert a.schema == b.schema == PACKET_SCHEMA
    for name in PACKET_SCHEMA.names:
        assert a.column(name).equals(b.column(name)), (name, a.column(name).to_pylist(), b.column(name).to_pylist())
    return a.to_pylist()


# ---------------------------------------------------------------- templates with known values

# (name, linktype, bytes, offset of the IP header, expected columns)
IP4_TCP = dict(status=Status.OK, ip_version=4, src_ip=mapped(A4), dst_ip=mapped(B4), ip_proto=6, ttl=61,
               ip_id=4242, ip_len=45, seq=7000, payload_len=5)
IP6_UDP = dict(status=Status.OK, ip_version=6, src_ip=socket.inet_pton(socket.AF_INET6, A6), ip_proto=17,
               ttl=9, ip_len=53, udp_len=13, payload_len=5)

ETH_PBB_HDR = 14 + 4 + 18 + 4  # outer Ethernet, B-VLAN, PBB, inner C-VLAN
LLC_ETH = MACS + struct.pack(">H", 8 + 45) + SNAP_IP4  # 802.3 length field: LLC/SNAP follows

TEMPLATES = [
    ("pbb-vlan", 1, MACS + b"\x81\x00" + vlan(0x2FD3, 0x88E7) + pbb(0x8100) + vlan(4020, 0x0800) + tcp4(49601, 49416),
     ETH_PBB_HDR, dict(IP4_TCP, vlan=4051, inner_vlan=4020, src_port=49601, dst_port=49416)),
    ("pbb-ipv6", 1, MACS + b"\x88\xe7" + pbb(0x86DD) + udp6(5353, 53), 14 + 18,
     dict(IP6_UDP, vlan=0, src_port=5353, dst_port=53)),
    ("vntag-vlan", 1, MACS + b"\x89\x26" + vntag(0x8100) + vlan(11, 0x0800) + tcp4(1000, 80), 14 + 6 + 4,
     dict(IP4_TCP, vlan=11, inner_vlan=0, src_port=1000, dst_port=80)),
    ("vlan-vntag-vlan", 1, MACS + b"\x81\x00" + vlan(250, 0x8926) + vntag(0x8100) + vlan(251, 0x0800) + tcp4(443, 56000),
     14 + 4 + 6 + 4, dict(IP4_TCP, vlan=250, inner_vlan=251, src_port=443, dst_port=56000)),
    ("llc-snap-ipv4", 1, LLC_ETH + tcp4(2000, 25), 22, dict(IP4_TCP, src_port=2000, dst_port=25)),
    ("vlan-llc-snap-ipv6", 1, MACS + b"\x81\x00" + vlan(7, 61) + SNAP_IP6 + udp6(1, 2), 26,
     dict(IP6_UDP, vlan=7, src_port=1, dst_port=2)),
    ("c-hdlc-ipv4", 104, b"\x0f\x00\x08\x00" + tcp4(3000, 22), 4,
     dict(IP4_TCP, src_port=3000, dst_port=22)),
    ("c-hdlc-ipv6", 104, b"\x8f\x00\x86\xdd" + udp6(3001, 23), 4,
     dict(IP6_UDP, src_port=3001, dst_port=23)),
    ("wlan-data-tods", 105, wlan(0x08, 0x01) + SNAP_IP4 + tcp4(4000, 80), 32,
     dict(IP4_TCP, src_port=4000, dst_port=80)),
    ("wlan-qos-fromds", 105, wlan(0x88, 0x02, qos=b"\x05\x00") + SNAP_IP6 + udp6(4001, 53), 34,
     dict(IP6_UDP, src_port=4001, dst_port=53)),
    ("wlan-qos-htc", 105, wlan(0x88, 0x82, qos=b"\x00\x00", htc=b"\x01\x02\x03\x04") + SNAP_IP4 + tcp4(4002, 80),
     38, dict(IP4_TCP, src_port=4002, dst_port=80)),
    ("wlan-4addr", 105, wlan(0x08, 0x03) + SNAP_IP4 + tcp4(4003, 80), 38,
     dict(IP4_TCP, src_port=4003, dst_port=80)),
    ("wlan-4addr-qos-htc", 105, wlan(0x88, 0x83, qos=b"\x00\x00", htc=bytes(4)) + SNAP_IP4 + tcp4(4004, 80),
     44, dict(IP4_TCP, src_port=4004, dst_port=80)),
    # the order bit without QoS means no HT control field
    ("wlan-order-no-qos", 105, wlan(0x08, 0x81) + SNAP_IP4 + tcp4(4005, 80), 32,
     dict(IP4_TCP, src_port=4005, dst_port=80)),
    ("radiotap-fcs", 127, radiotap(0x10) + wlan(0x88, 0x01, qos=b"\x00\x00") + SNAP_IP4 + tcp4(4006, 80) + b"FCS!",
     10 + 26 + 8, dict(IP4_TCP, src_port=4006, dst_port=80)),
    ("radiotap", 127, radiotap() + wlan(0x08, 0x02) + SNAP_IP6 + udp6(5353, 5353), 10 + 24 + 8,
     dict(IP6_UDP, src_port=5353, dst_port=5353)),
    ("nflog-ipv4", 239, nflog(2, tcp4(5000, 8080)), 4 + 12 + 8 + 4, dict(IP4_TCP, src_port=5000, dst_port=8080)),
    ("nflog-ipv6", 239, nflog(10, udp6(5001, 53)), 4 + 12 + 8 + 4, dict(IP6_UDP, src_port=5001, dst_port=53)),
]


@pytest.mark.parametrize("name,linktype,packet,ip_at,expected", TEMPLATES, ids=[t[0] for t in TEMPLATES])
def test_templates_decode_to_the_values_they_were_built_with(name, linktype, packet, ip_at, expected):
    row = both([packet], linktype)[0]
    for column, value in expected.items():
        assert row[column] == value, (name, column, row[column], value)
    # the IP header really starts where the template put it
    assert packet[ip_at] >> 4 == expected["ip_version"]


def test_all_templates_in_one_mixed_chunk():
    # several link types in one chunk take the per-link-type path of the fast engine
    rows = both([t[2] for t in TEMPLATES], [t[1] for t in TEMPLATES])
    assert [r["src_port"] for r in rows] == [t[4]["src_port"] for t in TEMPLATES]
    assert all(r["status"] == Status.OK for r in rows)


# ---------------------------------------------------------------- not IP, or impossible

NOT_DECODED = [
    ("pbb-arp", 1, MACS + b"\x88\xe7" + pbb(0x0806) + bytes(28), Status.NON_IP),
    ("vntag-arp", 1, MACS + b"\x89\x26" + vntag(0x0806) + bytes(28), Status.NON_IP),
    ("llc-stp", 1, MACS + struct.pack(">H", 38) + b"\x42\x42\x03" + bytes(35), Status.NON_IP),
    ("snap-cisco-oui", 1, MACS + struct.pack(">H", 40) + b"\xaa\xaa\x03\x00\x00\x0c\x20\x00" + bytes(32),
     Status.NON_IP),
    ("type-1501", 1, MACS + struct.pack(">H", 1501) + SNAP_IP4 + tcp4(1, 2), Status.NON_IP),
    ("c-hdlc-slarp", 104, b"\x8f\x00\x80\x35" + bytes(20), Status.NON_IP),
    ("c-hdlc-length", 104, b"\x0f\x00\x00\x30" + SNAP_IP4 + tcp4(1, 2), Status.NON_IP),
    ("sll-llc", 113, bytes(14) + b"\x00\x04" + SNAP_IP4 + tcp4(1, 2), Status.NON_IP),
    ("wlan-beacon", 105, wlan(0x80, 0x00) + bytes(40), Status.NON_IP),
    ("wlan-ack", 105, b"\xd4\x00\x00\x00" + bytes(6), Status.NON_IP),
    ("wlan-null-data", 105, wlan(0x48, 0x01), Status.NON_IP),
    ("wlan-protected", 105, wlan(0x08, 0x41) + SNAP_IP4 + tcp4(1, 2), Status.NON_IP),
    ("wlan-amsdu", 105, wlan(0x88, 0x01, qos=b"\x80\x00") + SNAP_IP4 + tcp4(1, 2), Status.NON_IP),
    ("wlan-no-snap", 105, wlan(0x08, 0x01) + b"\xe0\xe0\x03" + bytes(40), Status.NON_IP),
    ("radiotap-short-length", 127, struct.pack("<BBHI", 0, 0, 4, 0) + wlan(0x08, 1) + SNAP_IP4 + tcp4(1, 2),
     Status.MALFORMED),
    ("nflog-other-family", 239, nflog(7, tcp4(1, 2)), Status.NON_IP),
    ("nflog-version-1", 239, nflog(2, tcp4(1, 2), version=1), Status.MALFORMED),
    ("nflog-tlv-shorter-than-header", 239, b"\x02\x00\x00\x00" + struct.pack("<HH", 2, 10) + bytes(40),
     Status.MALFORMED),
    ("nflog-no-payload-tlv", 239, b"\x02\x00\x00\x00" + struct.pack("<HH", 8, 10) + b"abcd", Status.TRUNCATED),
    # Zeek's nflog-bad-tlv-len.pcap: a TLV claiming 256 bytes in a 12-byte record
    ("nflog-tlv-past-end", 239, bytes.fromhex("020000000001010000000000"), Status.TRUNCATED),
]


@pytest.mark.parametrize("name,linktype,packet,status", NOT_DECODED, ids=[t[0] for t in NOT_DECODED])
def test_frames_without_readable_ip(name, linktype, packet, status):
    row = both([packet], linktype)[0]
    assert row["status"] == status
    assert row["ip_version"] == 0 and row["src_port"] == 0


def test_a_fifth_vlan_tag_behind_vntag_and_pbb_is_not_followed():
    four = vlan(1, 0x8926) + vntag(0x8100) + vlan(2, 0x88E7) + pbb(0x8100) + vlan(3, 0x8100) + vlan(4, 0x0800)
    ok, deep = both([MACS + b"\x81\x00" + four + tcp4(9, 10),
                     MACS + b"\x81\x00" + vlan(0, 0x8100) + four + tcp4(9, 10)], 1)
    assert (ok["status"], ok["vlan"], ok["inner_vlan"], ok["src_port"]) == (Status.OK, 1, 2, 9)
    assert deep["status"] == Status.NON_IP


# ---------------------------------------------------------------- truncation at every byte


def _one_per_link_type():
    seen, out = set(), []
    for name, linktype, packet, ip_at, expected in TEMPLATES:
        key = (linktype, name.split("-")[0])
        if key not in seen:
            seen.add(key)
            out.append((name, linktype, packet, ip_at, expected))
    return out


CUT_TEMPLATES = _one_per_link_type() + [t for t in TEMPLATES if t[0] in ("wlan-4addr-qos-htc", "radiotap-fcs")]


@pytest.mark.parametrize("name,linktype,packet,ip_at,expected", CUT_TEMPLATES, ids=[t[0] for t in CUT_TEMPLATES])
def test_cut_at_every_byte(name, linktype, packet, ip_at, expected):
    # header bytes needed, from construction: link, IP (20/40), TCP (20) or UDP (8)
    need = ip_at + (40 if expected["ip_version"] == 4 else 48)
    cuts = [packet[:n] for n in range(len(packet) + 1)]
    rows = both(cuts, linktype, wirelen=[len(packet)] * len(cuts))
    for n, row in enumerate(rows):
        assert row["status"] == (Status.OK if n >= need else Status.TRUNCATED), (name, n, row["status"])
        assert row["ip_version"] == (expected["ip_version"] if n >= ip_at else 0), (name, n)
        if n >= need:
            assert (row["src_port"], row["dst_port"]) == (expected["src_port"], expected["dst_port"])


# ---------------------------------------------------------------- both engines on damaged bytes


def test_engines_agree_on_mutated_and_random_frames():
    rng = np.random.default_rng(11)
    for linktype in (1, 104, 105, 127, 239):
        bases = [t[2] for t in TEMPLATES + [(n, lt, p, 0, {}) for n, lt, p, _ in NOT_DECODED] if t[1] == linktype]
        packets = []
        for _ in range(1500):
            base = bytearray(bases[rng.integers(len(bases))])
            for _ in range(rng.integers(1, 4)):  # flip a few bytes, mostly in the headers
                base[rng.integers(min(len(base), 60))] = rng.integers(256)
            packets.append(bytes(base[: rng.integers(len(base) + 1)]))
        packets += [rng.bytes(rng.integers(0, 80)) for _ in range(500)]
        rows = both(packets, linktype)
        assert {r["status"] for r in rows} >= {Status.OK, Status.TRUNCATED}, linktype


# ---------------------------------------------------------------- the Zeek traces, against Wireshark

TRACES = [
    ("pbb.pcap", 10),
    ("vntag.pcap", 3),
    ("vntag_vlan_sandwich_clean.pcap", 1),
    ("radiotap.pcap", 3),
    ("wlanmon.pcap", 3),
]


@pytest.mark.corpus
@pytest.mark.parametrize("trace,ip_packets", TRACES)
def test_zeek_traces_match_wireshark(corpus, trace, ip_packets):
    tshark = require_tool("tshark")
    path = CORPUS / "zeek" / "traces" / trace
    fields = ["ip.src", "ipv6.src", "ip.dst", "ipv6.dst", "tcp.srcport", "udp.srcport", "tcp.dstport", "udp.dstport"]
    out = subprocess.run([tshark, "-r", str(path), "-T", "fields", "-E", "occurrence=l"]
                         + [a for f in fields for a in ("-e", f)], capture_output=True, text=True, check=True)
    want = []
    for line in out.stdout.splitlines():
        v = line.split("\t")
        src, dst = v[0] or v[1], v[2] or v[3]
        sport, dport = int(v[4] or v[5] or 0), int(v[6] or v[7] or 0)
        want.append((src, dst, sport, dport) if src else None)
    rows = [r for c in read_chunks(str(path)) for r in both_chunk(c)]
    assert len(rows) == len(want)
    got = []
    for r in rows:
        if r["ip_version"] == 0:
            got.append(None)
            continue
        got.append((_text(r["src_ip"], r["ip_version"]), _text(r["dst_ip"], r["ip_version"]),
                    r["src_port"], r["dst_port"]))
    assert got == want
    assert sum(g is not None for g in got) == ip_packets


def _text(addr: bytes, version: int) -> str:
    return socket.inet_ntop(socket.AF_INET, addr[12:]) if version == 4 else socket.inet_ntop(socket.AF_INET6, addr)


def both_chunk(c: RecordChunk) -> list[dict]:
    a, b = fast.decode_chunk(c), dpkt_engine.decode_chunk(c)
    assert a.equals(b)
    return a.to_pylist()
