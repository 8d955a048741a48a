"""The fast engine on cut and random input: never raises, status always meaningful.

Each template below is built here with its header boundary known from how it was
built: a cut before that boundary must read TRUNCATED, a cut at or after it OK.
"""
from __future__ import annotations

import struct

import dpkt
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowkit.capture.records import RecordChunk
from flowkit.decode.fast import decode_chunk
from flowkit.decode.schema import PACKET_SCHEMA, Status
from flowkit.ledger import Ledger

MAC = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02"
A4, B4 = bytes([10, 1, 2, 3]), bytes([10, 4, 5, 6])
A6, B6 = bytes(15) + b"\x01", b"\x20\x01" + bytes(13) + b"\x02"


def make_chunk(packets: list[bytes], linktypes, wirelen=None) -> RecordChunk:
    """Packets as captured; ``wirelen`` their length on the wire (default: as captured)."""
    data = np.frombuffer(b"".join(packets), np.uint8).copy()
    caplen = np.array([len(p) for p in packets], np.uint32)
    start = np.zeros(len(packets), np.int64)
    if len(packets):
        start[1:] = np.cumsum(caplen[:-1].astype(np.int64))
    n = len(packets)
    wire = caplen.copy() if wirelen is None else np.asarray(wirelen, np.uint32)
    return RecordChunk(data, start, caplen, wire, np.zeros(n, np.int64),
                       np.broadcast_to(np.asarray(linktypes, np.uint16), (n,)).copy(),
                       np.zeros(n, np.uint16), start, np.arange(n, dtype=np.int64))


def tcp(opts=b"", data=b"payload"):
    return bytes(dpkt.tcp.TCP(sport=1025, dport=80, flags=dpkt.tcp.TH_ACK, opts=opts,
                              off=(20 + len(opts)) // 4, data=data))


def udp(data=b"payload"):
    return bytes(dpkt.udp.UDP(sport=53, dport=33000, ulen=8 + len(data), data=data))


def ip4(p, payload, opts=b"", off=0):
    ip = bytearray(bytes(dpkt.ip.IP(src=A4, dst=B4, p=p, opts=opts, data=payload)))
    ip[0] = 0x40 | (20 + len(opts)) // 4
    ip[2:4] = struct.pack(">H", 20 + len(opts) + len(payload))
    ip[6:8] = struct.pack(">H", off)
    return bytes(ip)


def ip6(nxt, payload):
    return bytes(dpkt.ip6.IP6(src=A6, dst=B6, nxt=nxt, hlim=64, plen=len(payload), data=payload))


TS_OPTS = b"\x01\x01\x08\x0a" + bytes(8)
HOP = bytes([17, 0]) + bytes(6)  # hop-by-hop, 8 bytes, then UDP
FRAG_FIRST = bytes([6, 0]) + struct.pack(">HI", 1, 77)  # offset 0, M set, then TCP
ICMP = b"\x08\x00\x00\x00\x00\x01\x00\x02" + b"ping"

# (name, linktype, packet bytes, bytes needed for every header flowkit reads)
TEMPLATES = [
    ("eth-ip4-tcp-opts", 1, MAC + b"\x08\x00" + ip4(6, tcp(TS_OPTS)), 14 + 20 + 32),
    ("eth-qinq-ip6-hop-udp", 1,
     MAC + b"\x88\xa8\x00\x0a\x81\x00\x00\x0b\x86\xdd" + ip6(0, HOP + udp()), 14 + 8 + 40 + 8 + 8),
    ("eth-mpls2-ip4-icmp", 1,
     MAC + b"\x88\x47" + struct.pack(">II", 16 << 12, (17 << 12) | 0x100) + ip4(1, ICMP), 14 + 8 + 20 + 8),
    ("eth-pppoe-ip4-udp", 1,
     MAC + b"\x88\x64" + b"\x11\x00\x00\x01\x00\x00" + b"\x00\x21" + ip4(17, udp()), 14 + 8 + 20 + 8),
    # a fragment is held for reassembly only when captured whole
    ("sll-ip6-frag-tcp", 113, bytes(14) + b"\x86\xdd" + ip6(44, FRAG_FIRST + tcp()), 16 + 40 + 8 + 20 + 7),
    ("sll2-ip4-udp", 276, b"\x08\x00" + bytes(18) + ip4(17, udp()), 20 + 20 + 8),
    ("null-ip4-udp", 0, struct.pack("<I", 2) + ip4(17, udp()), 4 + 20 + 8),
    ("loop-ip6-tcp", 108, struct.pack(">I", 24) + ip6(6, tcp()), 4 + 40 + 20),
    ("ppp-ip4-tcp", 9, b"\xff\x03\x00\x21" + ip4(6, tcp()), 4 + 20 + 20),
    ("raw-ip4-opts-udp", 101, ip4(17, udp(), opts=b"\x01" * 8), 28 + 8),
    ("ipv4-link-gre", 228, ip4(47, b"\x00\x00\x08\x00" + bytes(20)), 20),
    ("eth-ip4-later-fragment", 1, MAC + b"\x08\x00" + ip4(17, bytes(40), off=5), 14 + 20 + 40),
]


@pytest.mark.parametrize("name, linktype, packet, needed", TEMPLATES, ids=[t[0] for t in TEMPLATES])
def test_every_cut_length(name, linktype, packet, needed):
    cuts = [packet[:k] for k in range(len(packet) + 1)]
    # cut by the snapshot length: the wire still carried the whole packet
    batch = decode_chunk(make_chunk(cuts, linktype, wirelen=[len(packet)] * len(cuts)))
    batch = batch.filter(pa.array(batch.column("tunnel_depth").to_numpy() == 0))  # one row per record
    status = batch.column("status").to_numpy()
    complete = Status.FRAGMENT if "frag" in name else Status.OK
    expected = np.where(np.arange(len(cuts)) < needed, Status.TRUNCATED, complete)
    assert status.tolist() == expected.tolist()
    # a cut packet never shows more than it holds: the full decode is the most
    full = batch.slice(len(cuts) - 1).to_pylist()[0]
    for row in batch.to_pylist():
        for col in ("src_port", "dst_port", "seq", "tsval", "icmp_type"):
            assert row[col] in (0, full[col])


def test_ledger_accounts_for_every_cut():
    cuts = [t[2][:k] for t in TEMPLATES for k in range(len(t[2]) + 1)]
    lts = [t[1] for t in TEMPLATES for _ in range(len(t[2]) + 1)]
    wire = [len(t[2]) for t in TEMPLATES for _ in range(len(t[2]) + 1)]
    batch = decode_chunk(make_chunk(cuts, lts, wire))
    ledger = Ledger()
    ledger.add_batch(batch.column("status").to_numpy(), batch.column("ip_proto").to_numpy(),
                     batch.column("tunnel_depth").to_numpy())
    ledger.check()
    assert ledger.packets == len(cuts)
    assert ledger.counts["truncated"] == sum(t[3] for t in TEMPLATES)


LINKTYPES = st.sampled_from([0, 1, 9, 12, 14, 50, 101, 108, 113, 228, 229, 276, 127, 65535])


def check_invariants(batch) -> None:
    assert batch.schema == PACKET_SCHEMA
    cols = {name: batch.column(name).to_numpy(zero_copy_only=False) for name in
            ("status", "ip_version", "ip_proto", "ip_len", "payload_len", "tcp_hdr_len",
             "src_port", "caplen", "frag_offset", "tunnel_depth")}
    status = cols["status"]
    assert np.isin(status, [int(s) for s in Status]).all()
    ip = np.isin(status, [Status.OK, Status.FRAGMENT])
    assert np.isin(cols["ip_version"][ip], [4, 6]).all()
    assert (cols["payload_len"][ip] <= cols["ip_len"][ip]).all()
    tcp_ok = (status == Status.OK) & (cols["ip_proto"] == 6)
    assert (cols["tcp_hdr_len"][tcp_ok] >= 20).all()
    assert (cols["payload_len"][tcp_ok] + cols["tcp_hdr_len"][tcp_ok] <= cols["ip_len"][tcp_ok]).all()
    # later fragments have no ports (a first fragment has its own)
    no_ports = ~np.isin(cols["ip_proto"], [6, 17]) | ((status == Status.FRAGMENT) & (cols["frag_offset"] > 0))
    assert (cols["src_port"][no_ports] == 0).all()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(LINKTYPES, st.binary(max_size=120)), min_size=1, max_size=20))
def test_random_bytes_never_raise(packets):
    batch = decode_chunk(make_chunk([p for _, p in packets], [lt for lt, _ in packets]))
    assert int((batch.column("tunnel_depth").to_numpy() == 0).sum()) == len(packets)  # one outer row per record
    check_invariants(batch)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_real_headers_never_raise(data):
    """Valid templates with random bytes overwritten and random cuts: deep paths, bad values."""
    pkts, lts = [], []
    for _ in range(data.draw(st.integers(1, 12))):
        _, lt, packet, _ = data.draw(st.sampled_from(TEMPLATES))
        raw = bytearray(packet)
        for _ in range(data.draw(st.integers(0, 4))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        pkts.append(bytes(raw[: data.draw(st.integers(0, len(raw)))]))
        lts.append(lt)
    check_invariants(decode_chunk(make_chunk(pkts, lts)))
