"""Where each packet's captured payload is (PacketTable.with_payload): the bytes that were written."""
from __future__ import annotations

import dpkt
import numpy as np

import flowkit
import servicegen as g
from pcapgen import pcap_bytes, write_pcap


def _pairs(path, **kw):
    return list(flowkit.packets(str(path), **kw).with_payload())


def _payloads(path, **kw):
    out = []
    for batch, where in _pairs(path, **kw):
        assert len(where) == batch.num_rows
        out += [where.packet(i) for i in range(batch.num_rows)]
    return out


def test_tcp_and_udp_payloads_are_the_bytes_written(tmp_path):
    frames = [g.frame("10.0.0.1", 40000, "10.0.0.2", 80, b"GET / HTTP/1.1\r\n\r\n"),
              g.frame("10.0.0.2", 80, "10.0.0.1", 40000, b"", flags=0x10),
              g.frame("2001:db8::1", 5000, "2001:db8::2", 53, b"\x12\x34query", tcp=False)]
    path = write_pcap(tmp_path / "p.pcap", [(1.0 + i, f) for i, f in enumerate(frames)])
    assert _payloads(path) == [b"GET / HTTP/1.1\r\n\r\n", b"", b"\x12\x34query"]


def test_ethernet_padding_is_not_payload(tmp_path):
    frm = g.frame("10.0.0.1", 5000, "10.0.0.2", 53, b"ab", tcp=False)
    assert len(frm) < 60
    path = write_pcap(tmp_path / "p.pcap", [(1.0, frm + b"\xee" * (60 - len(frm)))])
    assert _payloads(path) == [b"ab"]


def test_a_snapshot_length_cut_keeps_what_was_captured(tmp_path):
    frm = g.frame("10.0.0.1", 40000, "10.0.0.2", 80, b"0123456789" * 10)
    header = 14 + 20 + 20
    path = tmp_path / "p.pcap"
    path.write_bytes(pcap_bytes([(1.0, frm[: header + 25], len(frm))], snaplen=header + 25))
    assert _payloads(path) == [b"0123456789" * 2 + b"01234"]


def test_fragments_carry_no_payload(tmp_path):
    udp = dpkt.udp.UDP(sport=5000, dport=53, data=b"x" * 40)
    udp.ulen = 48
    ip = dpkt.ip.IP(src=bytes([10, 0, 0, 1]), dst=bytes([10, 0, 0, 2]), p=17, data=bytes(udp)[:24], mf=1)
    ip.len = 20 + 24
    frm = bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=0x0800, data=ip))
    path = write_pcap(tmp_path / "p.pcap", [(1.0, frm)])
    assert _payloads(path) == [b""]


def test_a_filter_keeps_payloads_aligned(tmp_path):
    frames = [g.frame("10.0.0.1", 40000 + i, "10.0.0.2", 80 + i % 2, bytes([65 + i]) * 3) for i in range(6)]
    path = write_pcap(tmp_path / "p.pcap", [(1.0 + i, f) for i, f in enumerate(frames)])
    assert _payloads(path, filter="dst port 81") == [b"BBB", b"DDD", b"FFF"]


def test_plain_iteration_is_unchanged(tmp_path):
    frames = [g.frame("10.0.0.1", 40000, "10.0.0.2", 80, b"abc")]
    path = write_pcap(tmp_path / "p.pcap", [(1.0, f) for f in frames])
    batches = list(flowkit.packets(str(path)))
    pairs = _pairs(path)
    assert len(batches) == len(pairs) == 1
    assert batches[0].equals(pairs[0][0])
    assert np.asarray(pairs[0][1].caplen).tolist() == [3]


def test_payloads_kept_across_reads_stay_the_bytes_written(tmp_path):
    # chunks of 64 KiB: the reader reuses a buffer only once no Payload references it
    sent = [b"%05d" % i + bytes([i % 251]) * 600 for i in range(3000)]
    frames = [(1.0 + i / 1000, g.frame("10.0.0.1", 5000, "10.0.0.2", 53, p, tcp=False)) for i, p in enumerate(sent)]
    path = write_pcap(tmp_path / "p.pcap", frames)
    pairs = _pairs(path, chunk_bytes=1 << 16)
    assert len(pairs) > 20
    assert [w.packet(i) for _, w in pairs for i in range(len(w))] == sent


def test_inner_rows_point_at_the_inner_payload(tmp_path):
    # built with dpkt/struct (test_decode_tunnels): a VXLAN-wrapped UDP datagram and a GRE-wrapped TCP segment,
    # each outer payload being the whole tunnel; the inner rows' payloads are the innermost bytes written
    from test_decode_tunnels import INNER_TCP, INNER_UDP, eth, gre, ip4, udp

    vxlan = udp(51000, 4789, b"\x08\x00\x00\x00\x00\x00\x2a\x00" + eth(INNER_UDP))
    frames = [eth(ip4(17, vxlan)), eth(ip4(47, gre(0x0800, INNER_TCP)))]
    path = write_pcap(tmp_path / "p.pcap", [(1.0 + i, f) for i, f in enumerate(frames)])
    (batch, where), = _pairs(path)
    assert batch.column("tunnel_depth").to_pylist() == [0, 1, 0, 1]
    assert [where.packet(i) for i in range(4)] == [vxlan[8:], b"q" * 12, b"", b"hi"]
    # without decapsulation only the outer rows, payloads unchanged
    (batch, where), = _pairs(path, decap=False)
    assert [where.packet(i) for i in range(batch.num_rows)] == [vxlan[8:], b""]


def test_a_reassembled_datagram_records_no_payload(tmp_path):
    # its bytes are spread over several records: nothing contiguous to point at (docs/packets.md)
    from test_decode_reassembly import D, frag4

    path = write_pcap(tmp_path / "p.pcap", [(1.0, frag4(D, 0, 512, True)), (2.0, frag4(D, 512, 520, False))])
    (batch, where), = _pairs(path)
    assert batch.column("payload_len").to_pylist() == [512 - 8, len(D) - 8]  # the second row: the whole datagram
    assert np.asarray(where.caplen).tolist() == [0, 0]


def test_engines_without_payload_positions_yield_none(tmp_path):
    frames = [g.frame("10.0.0.1", 40000, "10.0.0.2", 80, b"abc")]
    path = write_pcap(tmp_path / "p.pcap", [(1.0, f) for f in frames])
    assert [w for _, w in _pairs(path, engine="dpkt")] == [None]
