"""Tunnels: every encapsulation Zeek decodes gives one row per layer, in both engines.

Packets are built here with dpkt and struct from the RFCs / Zeek's analyzers (the
truth is how each packet was made): the outer row is the captured packet, each inner
row carries its own five-tuple, its depth, the tunnel type and the five-tuple of the
row that encloses it.
"""
from __future__ import annotations

import ipaddress
import json
import struct

import dpkt
import numpy as np
import pytest

import flowkit
from flowkit.decode import dpkt_engine, fast
from flowkit.decode.schema import MAX_TUNNEL_DEPTH, Status, Tunnel
from pcapgen import write_pcap
from test_decode_fast import make_chunk

MAC = b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb"
ENGINES = {"fast": fast, "dpkt": dpkt_engine}


def a16(text: str) -> bytes:
    ip = ipaddress.ip_address(text)
    return (bytes(10) + b"\xff\xff" + ip.packed) if ip.version == 4 else ip.packed


def eth(payload: bytes, etype=0x0800) -> bytes:
    return MAC + struct.pack(">H", etype) + payload


def ip4(proto: int, payload: bytes, src="10.0.0.1", dst="10.0.0.2", ident=1, off=0) -> bytes:
    raw = bytearray(bytes(dpkt.ip.IP(src=ipaddress.ip_address(src).packed, dst=ipaddress.ip_address(dst).packed,
                                     p=proto, ttl=64, id=ident, data=payload)))
    raw[2:4] = struct.pack(">H", 20 + len(payload))
    raw[6:8] = struct.pack(">H", off)
    return bytes(raw)


def ip6(nxt: int, payload: bytes, src="2001:db8::1", dst="2001:db8::2") -> bytes:
    return bytes(dpkt.ip6.IP6(src=ipaddress.ip_address(src).packed, dst=ipaddress.ip_address(dst).packed,
                              nxt=nxt, hlim=64, plen=len(payload), data=payload))


def udp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(sport=40000, dport=80, payload=b"") -> bytes:
    return bytes(dpkt.tcp.TCP(sport=sport, dport=dport, seq=7, flags=dpkt.tcp.TH_SYN, off=5, data=payload))


INNER_TCP = ip4(6, tcp(40000, 80, b"hi"), src="192.168.1.10", dst="192.168.1.20")
INNER_TCP6 = ip6(6, tcp(40001, 443))
INNER_UDP = ip4(17, udp(5353, 53, b"q" * 12), src="172.16.0.1", dst="172.16.0.2")


def gre(proto: int, payload: bytes, flags: int = 0, version: int = 0, words: int = 0) -> bytes:
    """GRE header: flags/version, protocol, then ``words`` 4-byte optional fields."""
    return struct.pack(">HH", flags | version, proto) + bytes(4 * words) + payload


def decode(packets, engine="fast", decap=True, linktype=1) -> list[dict]:
    return ENGINES[engine].decode_chunk(make_chunk(list(packets), linktype), decap=decap).to_pylist()


def check_inner(rows, depth, ttype, src, dst, sport, dport, proto, parent):
    """Row ``depth`` is the inner packet as built; its tunnel_* columns name row depth-1."""
    r = rows[depth]
    assert r["status"] == Status.OK
    assert (r["tunnel_depth"], r["tunnel_type"]) == (depth, ttype)
    assert (r["src_ip"], r["dst_ip"], r["src_port"], r["dst_port"], r["ip_proto"]) == (a16(src), a16(dst), sport,
                                                                                        dport, proto)
    p = rows[depth - 1]
    assert (r["tunnel_src_ip"], r["tunnel_dst_ip"], r["tunnel_src_port"], r["tunnel_dst_port"],
            r["tunnel_proto"]) == (p["src_ip"], p["dst_ip"], p["src_port"], p["dst_port"], p["ip_proto"]) == parent
    assert r["index"] == p["index"] and r["ts"] == p["ts"]  # the same record


OUTER4 = (a16("10.0.0.1"), a16("10.0.0.2"))

CASES = [
    # name, packet, tunnel type, the inner five-tuple as built, the parent five-tuple as built
    ("4in4", eth(ip4(4, INNER_TCP)), Tunnel.IP, ("192.168.1.10", "192.168.1.20", 40000, 80, 6), (*OUTER4, 0, 0, 4)),
    ("6in4", eth(ip4(41, INNER_TCP6)), Tunnel.IP, ("2001:db8::1", "2001:db8::2", 40001, 443, 6), (*OUTER4, 0, 0, 41)),
    ("4in6", eth(ip6(4, INNER_UDP, "fd00::1", "fd00::2"), 0x86DD), Tunnel.IP,
     ("172.16.0.1", "172.16.0.2", 5353, 53, 17), (a16("fd00::1"), a16("fd00::2"), 0, 0, 4)),
    ("6in6", eth(ip6(41, INNER_TCP6, "fd00::1", "fd00::2"), 0x86DD), Tunnel.IP,
     ("2001:db8::1", "2001:db8::2", 40001, 443, 6), (a16("fd00::1"), a16("fd00::2"), 0, 0, 41)),
    ("gre-ip", eth(ip4(47, gre(0x0800, INNER_TCP))), Tunnel.GRE,
     ("192.168.1.10", "192.168.1.20", 40000, 80, 6), (*OUTER4, 0, 0, 47)),
    # checksum, key and sequence present: 12 bytes of optional fields
    ("gre-csum-key-seq", eth(ip4(47, gre(0x86DD, INNER_TCP6, flags=0xB000, words=3))), Tunnel.GRE,
     ("2001:db8::1", "2001:db8::2", 40001, 443, 6), (*OUTER4, 0, 0, 47)),
    ("gre-ethernet", eth(ip4(47, gre(0x6558, eth(INNER_UDP, 0x0800), flags=0x2000, words=1))), Tunnel.GRE,
     ("172.16.0.1", "172.16.0.2", 5353, 53, 17), (*OUTER4, 0, 0, 47)),
    ("erspan-I", eth(ip4(47, gre(0x88BE, eth(INNER_UDP)))), Tunnel.GRE,
     ("172.16.0.1", "172.16.0.2", 5353, 53, 17), (*OUTER4, 0, 0, 47)),
    ("erspan-II", eth(ip4(47, gre(0x88BE, bytes(8) + eth(INNER_UDP), flags=0x1000, words=1))), Tunnel.GRE,
     ("172.16.0.1", "172.16.0.2", 5353, 53, 17), (*OUTER4, 0, 0, 47)),
    ("erspan-III", eth(ip4(47, gre(0x22EB, bytes(12) + eth(INNER_UDP), flags=0x1000, words=1))), Tunnel.GRE,
     ("172.16.0.1", "172.16.0.2", 5353, 53, 17), (*OUTER4, 0, 0, 47)),
    ("erspan-III-subheader", eth(ip4(47, gre(0x22EB, bytes(11) + b"\x01" + bytes(8) + eth(INNER_UDP)))),
     Tunnel.GRE, ("172.16.0.1", "172.16.0.2", 5353, 53, 17), (*OUTER4, 0, 0, 47)),
    # PPTP: enhanced GRE v1, key present (payload length + call id), sequence, then PPP
    ("pptp", eth(ip4(47, gre(0x880B, b"\xff\x03\x00\x21" + INNER_TCP, flags=0x3000, version=1, words=2))),
     Tunnel.GRE, ("192.168.1.10", "192.168.1.20", 40000, 80, 6), (*OUTER4, 0, 0, 47)),
    # Aruba: an 802.11 QoS data frame (ToDS) with LLC/SNAP
    ("aruba", eth(ip4(47, gre(0x8200, b"\x88\x01" + bytes(22) + b"\x00\x00"
                                 + b"\xaa\xaa\x03\x00\x00\x00\x08\x00" + INNER_UDP))), Tunnel.GRE,
     ("172.16.0.1", "172.16.0.2", 5353, 53, 17), (*OUTER4, 0, 0, 47)),
    ("gre-in-udp", eth(ip4(17, udp(50000, 4754, gre(0x0800, INNER_TCP)))), Tunnel.GRE,
     ("192.168.1.10", "192.168.1.20", 40000, 80, 6), (*OUTER4, 50000, 4754, 17)),
    ("vxlan", eth(ip4(17, udp(51000, 4789, b"\x08\x00\x00\x00\x00\x00\x2a\x00" + eth(INNER_UDP)))), Tunnel.VXLAN,
     ("172.16.0.1", "172.16.0.2", 5353, 53, 17), (*OUTER4, 51000, 4789, 17)),
    # the tunnel port as the source (a reply): Zeek forwards on the responder's port
    ("vxlan-reply", eth(ip4(17, udp(4789, 51000, b"\x08\x00\x00\x00\x00\x00\x2a\x00" + eth(INNER_UDP)))),
     Tunnel.VXLAN, ("172.16.0.1", "172.16.0.2", 5353, 53, 17), (*OUTER4, 4789, 51000, 17)),
    # Geneve with 8 bytes of options (length 2 words), Ethernet payload
    ("geneve-options", eth(ip4(17, udp(52000, 6081, b"\x02\x00\x65\x58" + b"\x00\x00\x01\x00"
                                              + b"\x01\x02\x03\x01\xaa\xbb\xcc\xdd" + eth(INNER_UDP)))),
     Tunnel.GENEVE, ("172.16.0.1", "172.16.0.2", 5353, 53, 17), (*OUTER4, 52000, 6081, 17)),
    ("geneve-ipv4", eth(ip4(17, udp(52000, 6081, b"\x00\x00\x08\x00\x00\x00\x01\x00" + INNER_TCP))),
     Tunnel.GENEVE, ("192.168.1.10", "192.168.1.20", 40000, 80, 6), (*OUTER4, 52000, 6081, 17)),
    # GTPv1-U G-PDU: version 1, PT, E flag with one 4-byte extension header (PDU session container)
    ("gtpu", eth(ip4(17, udp(2152, 2152, b"\x34\xff" + struct.pack(">HI", 8 + len(INNER_TCP), 0x1234)
                                          + b"\x00\x00\x00\x85" + b"\x01\x00\x01\x00" + INNER_TCP))),
     Tunnel.GTPV1, ("192.168.1.10", "192.168.1.20", 40000, 80, 6), (*OUTER4, 2152, 2152, 17)),
    ("teredo", eth(ip4(17, udp(3544, 61000, b"\x00\x00" + bytes(6) + INNER_TCP6))), Tunnel.TEREDO,
     ("2001:db8::1", "2001:db8::2", 40001, 443, 6), (*OUTER4, 3544, 61000, 17)),
    # Teredo on another port, detected by a 2001:0::/32 address as Zeek does
    ("teredo-detected", eth(ip4(17, udp(40000, 50123, ip6(6, tcp(1, 2), "2001:0:4136:e378::1", "2001:db8::9")))),
     Tunnel.TEREDO, ("2001:0:4136:e378::1", "2001:db8::9", 1, 2, 6), (*OUTER4, 40000, 50123, 17)),
    # AYIYA: identity length 2^4 = 16, signature 20 bytes (5 words), forward opcode, next header IPv6
    ("ayiya", eth(ip4(17, udp(5072, 5072, bytes([0x41, 0x52, 0x11, 41]) + bytes(4) + bytes(16) + bytes(20)
                                          + INNER_TCP6))),
     Tunnel.AYIYA, ("2001:db8::1", "2001:db8::2", 40001, 443, 6), (*OUTER4, 5072, 5072, 17)),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name, packet, ttype, inner, parent", CASES, ids=[c[0] for c in CASES])
def test_one_tunnel(engine, name, packet, ttype, inner, parent):
    rows = decode([packet], engine)
    assert len(rows) == 2
    assert rows[0]["tunnel_depth"] == 0 and rows[0]["tunnel_type"] == Tunnel.NONE
    assert rows[0]["tunnel_src_ip"] == bytes(16) and rows[0]["tunnel_proto"] == 0
    check_inner(rows, 1, ttype, *inner, parent)
    # decap=False keeps the captured packet alone
    assert decode([packet], engine, decap=False) == rows[:1]


def test_inner_vlan_is_the_inner_frames_own():
    inner = MAC + b"\x81\x00\x00\x2a\x08\x00" + INNER_UDP  # VLAN 42 inside VXLAN
    outer = MAC + b"\x81\x00\x00\x07\x08\x00" + ip4(17, udp(1, 4789, bytes([8]) + bytes(7) + inner))
    for engine in ENGINES:
        rows = decode([outer], engine)
        assert [r["vlan"] for r in rows] == [7, 42]


NOT_DECAPSULATED = [
    ("gre-routing-flag", eth(ip4(47, gre(0x0800, INNER_TCP, flags=0x4000, words=1)))),
    ("gre-reserved-flags", eth(ip4(47, gre(0x0800, INNER_TCP, flags=0x0040)))),
    ("gre-version-2", eth(ip4(47, gre(0x0800, INNER_TCP, version=2)))),
    ("pptp-not-ppp-ip", eth(ip4(47, gre(0x880B, b"\xff\x03\xc0\x21" + bytes(20), flags=0x2000, version=1, words=1)))),
    ("geneve-version-1", eth(ip4(17, udp(1, 6081, b"\x40\x00\x65\x58" + bytes(4) + eth(INNER_UDP))))),
    ("gtp-not-gpdu", eth(ip4(17, udp(2152, 2152, b"\x30\x01" + struct.pack(">HI", len(INNER_TCP), 1) + INNER_TCP)))),
    ("ayiya-not-forward", eth(ip4(17, udp(5072, 5072, bytes([0x01, 0x52, 0x12, 41]) + bytes(6) + INNER_TCP6)))),
    ("teredo-length-mismatch", eth(ip4(17, udp(3544, 9, INNER_TCP6 + b"junk")))),
    ("vxlan-arp-inside", eth(ip4(17, udp(1, 4789, bytes([8]) + bytes(7) + eth(bytes(28), 0x0806))))),
    ("udp-other-port", eth(ip4(17, udp(1, 9999, INNER_TCP)))),
    ("gre-truncated-ethernet", eth(ip4(47, gre(0x6558, bytes(10))))),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name, packet", NOT_DECAPSULATED, ids=[c[0] for c in NOT_DECAPSULATED])
def test_what_zeek_does_not_decapsulate(engine, name, packet):
    rows = decode([packet], engine)
    assert len(rows) == 1 and rows[0]["status"] == Status.OK


def test_bad_inner_ip_still_gets_its_row():
    """An inner packet the tunnel announces as IP but that is cut or impossible: a row with that status."""
    cut = eth(ip4(4, INNER_TCP[:30]))  # the outer IP length says 50: the inner header says 62
    bad = eth(ip4(41, b"\x45" + bytes(39)))  # IPv6 announced, version nibble 4
    for engine in ENGINES:
        rows = decode([cut, bad], engine)
        assert [(r["tunnel_depth"], r["status"]) for r in rows] == [
            (0, Status.OK), (1, Status.MALFORMED), (0, Status.OK), (1, Status.MALFORMED)]


def nest(depth: int) -> bytes:
    """``depth`` IP-in-IP layers around INNER_TCP."""
    packet = INNER_TCP
    for k in range(depth):
        packet = ip4(4, packet, src=f"10.{k}.0.1", dst=f"10.{k}.0.2")
    return eth(packet)


@pytest.mark.parametrize("engine", ENGINES)
def test_nesting_stops_at_zeeks_max_depth(engine):
    for layers in (2, MAX_TUNNEL_DEPTH, MAX_TUNNEL_DEPTH + 1, MAX_TUNNEL_DEPTH + 3):
        rows = decode([nest(layers)], engine)
        assert [r["tunnel_depth"] for r in rows] == list(range(min(layers, MAX_TUNNEL_DEPTH) + 1))
        assert all(r["status"] == Status.OK for r in rows)
    rows = decode([nest(MAX_TUNNEL_DEPTH)], engine)
    check_inner(rows, MAX_TUNNEL_DEPTH, Tunnel.IP, "192.168.1.10", "192.168.1.20", 40000, 80, 6,
                (a16("10.0.0.1"), a16("10.0.0.2"), 0, 0, 4))


@pytest.mark.parametrize("engine", ENGINES)
def test_gre_in_gre_in_vxlan(engine):
    packet = eth(ip4(17, udp(1, 4789, bytes([8]) + bytes(7) + eth(
        ip4(47, gre(0x0800, ip4(47, gre(0x0800, INNER_UDP), src="10.8.0.1", dst="10.8.0.2"),
                    flags=0x2000, words=1), src="10.9.0.1", dst="10.9.0.2")))))
    rows = decode([packet], engine)
    assert [(r["tunnel_depth"], r["tunnel_type"]) for r in rows] == [
        (0, 0), (1, Tunnel.VXLAN), (2, Tunnel.GRE), (3, Tunnel.GRE)]
    check_inner(rows, 3, Tunnel.GRE, "172.16.0.1", "172.16.0.2", 5353, 53, 17,
                (a16("10.8.0.1"), a16("10.8.0.2"), 0, 0, 47))


def test_ledger_counts_records_not_rows(tmp_path):
    packets = [packet for _, packet, *_ in CASES]
    path = write_pcap(tmp_path / "tunnels.pcap", [(1_700_000_000 + k, p) for k, p in enumerate(packets)])
    for engine in ENGINES:
        table = flowkit.packets(path, engine)
        rows = table.to_arrow()
        assert rows.num_rows == 2 * len(packets)
        stats = table.stats
        stats.check()
        assert stats.packets == len(packets)
        outer = np.array([p[23] for p in packets])  # IPv4 protocol byte of each outer packet (IPv6 at 20)
        assert stats.counts["udp"] == int(np.sum(outer == 17))
        assert flowkit.packets(path, engine, decap=False).to_arrow().num_rows == len(packets)


def test_inner_connections_become_flows(tmp_path):
    """As in Zeek's conn.log: the tunnel's own UDP flow and the inner flow are both rows."""
    vx = bytes([8]) + bytes(7)
    packets = [eth(ip4(17, udp(51000, 4789, vx + eth(ip4(6, tcp(40000, 80), "192.168.1.10", "192.168.1.20")))))]
    path = write_pcap(tmp_path / "vxlan.pcap", [(1_700_000_000, packets[0])])
    got = flowkit.flows(path).to_pandas()
    keys = set(zip(got.src_ip, got.src_port, got.dst_ip, got.dst_port))
    assert keys == {("10.0.0.1", 51000, "10.0.0.2", 4789), ("192.168.1.10", 40000, "192.168.1.20", 80)}
    outer_only = flowkit.flows(path, decap=False).to_pandas()
    assert set(zip(outer_only.src_ip, outer_only.src_port)) == {("10.0.0.1", 51000)}


def test_cli_no_decap(run, tmp_path):
    vx = bytes([8]) + bytes(7)
    packet = eth(ip4(17, udp(51000, 4789, vx + eth(ip4(6, tcp(40000, 80), "192.168.1.10", "192.168.1.20")))))
    path = write_pcap(tmp_path / "vxlan.pcap", [(1_700_000_000, packet)])
    rc, out, _ = run("flows", path, "--json", "-q")
    assert rc == 0 and sorted(json.loads(line)["dst_port"] for line in out.splitlines()) == [80, 4789]
    rc, out, _ = run("flows", path, "--json", "-q", "--no-decap")
    assert rc == 0 and [json.loads(line)["dst_port"] for line in out.splitlines()] == [4789]
    rc, out, _ = run("packets", path, "--json", "--no-decap")
    assert rc == 0 and len(out.splitlines()) == 1
    rc, out, _ = run("packets", path, "--json")
    assert rc == 0 and [json.loads(line)["tunnel_type"] for line in out.splitlines()] == [0, Tunnel.VXLAN]
