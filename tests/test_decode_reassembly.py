"""IP fragment reassembly, both engines: the datagram counts once, with its full length.

Fragments are cut here from datagrams built with dpkt (truth = how they were cut and
sent): the row of the fragment that completes a datagram is the whole datagram; the
others are FRAGMENT rows; overlaps keep the bytes that arrived first; datagrams not
completed within the timeout, past the memory bound or by the end are given up and
counted as ``fragment_incomplete`` in the ledger, which still sums to the records read.
"""
from __future__ import annotations

import ipaddress
import struct

import dpkt
import numpy as np
import pytest

import flowkit
from flowkit.decode import dpkt_engine, fast
from flowkit.decode.schema import FRAG_IS_FRAGMENT, Status, Tunnel
from pcapgen import write_pcap
from test_decode_fast import make_chunk
from test_decode_tunnels import INNER_TCP, a16, eth, gre, ip6, udp

ENGINES = {"fast": fast, "dpkt": dpkt_engine}
SRC, DST = "10.1.0.1", "10.1.0.2"
PAYLOAD = bytes(range(256)) * 4  # 1024 bytes, every 8-byte unit different


def datagram(sport=5000, dport=53, payload=PAYLOAD) -> bytes:
    """A UDP datagram (header + payload) to be fragmented."""
    return udp(sport, dport, payload)


def frag4(data: bytes, offset: int, length: int, more: bool, ident=7, proto=17) -> bytes:
    """An IPv4 fragment holding data[offset:offset+length] (offset in bytes, a multiple of 8)."""
    body = data[offset : offset + length]
    ip = bytearray(bytes(dpkt.ip.IP(src=ipaddress.ip_address(SRC).packed, dst=ipaddress.ip_address(DST).packed,
                                    p=proto, ttl=64, id=ident, data=body)))
    ip[2:4] = struct.pack(">H", 20 + len(body))
    ip[6:8] = struct.pack(">H", (0x2000 if more else 0) | offset // 8)
    return eth(bytes(ip))


def frag6(data: bytes, offset: int, length: int, more: bool, ident=0xABCDEF, nxt=17, hop=False) -> bytes:
    body = bytes([nxt, 0]) + struct.pack(">HI", offset | int(more), ident) + data[offset : offset + length]
    if hop:  # a hop-by-hop header before the fragment header (part of the unfragmentable part)
        return eth(ip6(0, bytes([44, 0]) + bytes(6) + body), 0x86DD)
    return eth(ip6(44, body), 0x86DD)


def rows_of(packets, engine, ts=None, wirelen=None, **kw) -> list[dict]:
    chunk = make_chunk(list(packets), wirelen=wirelen)
    if ts is not None:
        chunk.ts = np.asarray(ts, np.int64)
    dec = ENGINES[engine].Decoder(**kw)
    out = dec.decode(chunk).to_pylist()
    return out, dec


def whole_ok(row, ip_len, sport=5000, dport=53, payload=len(PAYLOAD), ident=7):
    assert row["status"] == Status.OK and row["frag"] == FRAG_IS_FRAGMENT and row["frag_offset"] == 0
    assert (row["ip_len"], row["ip_id"], row["ip_proto"]) == (ip_len, ident, 17)
    assert (row["src_port"], row["dst_port"], row["udp_len"], row["payload_len"]) == (sport, dport, 8 + payload,
                                                                                      payload)


D = datagram()  # 1032 bytes: fragments of 512, 512 and 8


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0), (2, 0, 1)])
def test_any_order_completes_at_the_last_arrival(engine, order):
    parts = [frag4(D, 0, 512, True), frag4(D, 512, 512, True), frag4(D, 1024, 8, False)]
    rows, dec = rows_of([parts[k] for k in order], engine)
    assert [r["status"] for r in rows[:2]] == [Status.FRAGMENT] * 2
    whole_ok(rows[2], 20 + len(D))
    assert dec.finish() == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_duplicates_and_overlaps_keep_the_first_bytes(engine):
    # a second copy of the first 16 bytes with other ports arrives after the first: ignored
    forged = datagram(sport=6666, dport=7777)
    parts = [frag4(D, 0, 512, True), frag4(forged, 0, 16, True), frag4(D, 0, 512, True),
             frag4(D, 512, 520, False)]
    rows, _ = rows_of(parts, engine)
    assert [r["status"] for r in rows[:3]] == [Status.FRAGMENT] * 3
    whole_ok(rows[3], 20 + len(D))
    # the forged copy first: then its bytes are the ones kept
    rows, _ = rows_of([parts[1], parts[0], parts[3]], engine)
    whole_ok(rows[2], 20 + len(D), sport=6666, dport=7777)


@pytest.mark.parametrize("engine", ENGINES)
def test_ipv6_reassembly_keeps_the_unfragmentable_part(engine):
    rows, _ = rows_of([frag6(D, 0, 512, True, hop=True), frag6(D, 512, 520, False)], engine)
    a, b = rows
    assert a["status"] == Status.FRAGMENT and a["ip_id"] == 0xABCDEF
    # the headers of the first fragment (40 + 8 hop-by-hop) and the whole UDP datagram
    assert b["status"] == Status.OK and b["ip_len"] == 40 + 8 + len(D) and b["ip_proto"] == 17
    assert (b["src_port"], b["dst_port"], b["payload_len"], b["frag"]) == (5000, 53, len(PAYLOAD), FRAG_IS_FRAGMENT)
    assert b["src_ip"] == a16("2001:db8::1") and b["ip_id"] == 0xABCDEF


@pytest.mark.parametrize("engine", ENGINES)
def test_datagrams_are_told_apart_by_id_addresses_and_protocol(engine):
    other = frag4(D, 512, 520, False, ident=8)
    rows, dec = rows_of([frag4(D, 0, 512, True), other, frag4(D, 512, 520, False, proto=6),
                         frag4(D, 512, 520, False)], engine)
    assert [r["status"] for r in rows] == [Status.FRAGMENT] * 3 + [Status.OK]
    assert dec.finish() == 2  # ident 8 and protocol 6 never completed


@pytest.mark.parametrize("engine", ENGINES)
def test_timeout_gives_up_and_later_fragments_start_anew(engine):
    second = 10**9
    parts = [frag4(D, 0, 512, True), frag4(D, 512, 520, False), frag4(D, 512, 520, False)]
    rows, dec = rows_of(parts, engine, ts=[0, 301 * second, 302 * second])
    # 301 s later the first fragment is gone (5 minutes): the last fragment waits alone
    assert [r["status"] for r in rows] == [Status.FRAGMENT] * 3
    assert dec.take_given_up() == 1
    rows, dec = rows_of(parts[:2], engine, ts=[0, 299 * second])
    whole_ok(rows[1], 20 + len(D))
    rows, dec = rows_of(parts[:2], engine, ts=[0, 2 * second], frag_timeout_ns=second)
    assert rows[1]["status"] == Status.FRAGMENT and dec.finish() == 2


@pytest.mark.parametrize("engine", ENGINES)
def test_memory_bound_gives_up_the_oldest(engine):
    # each pending datagram counts 2048 bytes plus its data space (512 + 2048 here): 4608
    firsts = [frag4(D, 0, 512, True, ident=k) for k in range(5)]
    lasts = [frag4(D, 512, 520, False, ident=k) for k in (2, 3, 4)]
    rows, dec = rows_of(firsts + lasts, engine, frag_max_bytes=3 * 4608)
    # three fit: the two oldest were given up when the fourth and fifth arrived
    assert dec.take_given_up() == 2
    assert [r["status"] for r in rows[5:]] == [Status.OK] * 3
    assert dec.finish() == 0
    rows, dec = rows_of(firsts + lasts, engine, frag_max_bytes=5 * 4608)
    assert dec.take_given_up() == 0 and dec.finish() == 2


@pytest.mark.parametrize("engine", ENGINES)
def test_bad_fragments(engine):
    too_long = frag4(D, 0, 512, False)  # offset 65528 + 512 bytes: past 65535
    too_long = too_long[:20] + struct.pack(">H", 8191) + too_long[22:]
    cut = frag4(D, 0, 512, True)[:200]  # cut by the snapshot length: cannot be reassembled
    rows, dec = rows_of([too_long, cut], engine, wirelen=[len(too_long), 14 + 20 + 512])
    assert [r["status"] for r in rows] == [Status.MALFORMED, Status.TRUNCATED]
    assert rows[1]["src_port"] == 5000  # the first fragment's transport header was there
    assert dec.finish() == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_a_tunnel_inside_a_fragmented_datagram(engine):
    tunnel = gre(0x0800, INNER_TCP)
    rows, _ = rows_of([frag4(tunnel, 0, 24, True, proto=47), frag4(tunnel, 24, len(tunnel) - 24, False, proto=47)],
                      engine)
    assert [(r["status"], r["tunnel_depth"]) for r in rows] == [(Status.FRAGMENT, 0), (Status.OK, 0), (Status.OK, 1)]
    assert rows[1]["ip_len"] == 20 + len(tunnel) and rows[2]["tunnel_type"] == Tunnel.GRE
    assert (rows[2]["src_port"], rows[2]["dst_port"]) == (40000, 80)


@pytest.mark.parametrize("engine", ENGINES)
def test_without_reassembly_every_fragment_is_a_row(engine):
    rows, dec = rows_of([frag4(D, 0, 512, True), frag4(D, 512, 520, False)], engine, reassemble=False)
    assert [r["status"] for r in rows] == [Status.FRAGMENT] * 2
    assert rows[0]["src_port"] == 5000 and rows[1]["src_port"] == 0
    assert dec.finish() == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_ledger_sums_to_records_across_chunks(engine, tmp_path):
    """Fragments split over chunks and files still meet; what never completes is counted apart."""
    packets = []
    for k in range(40):
        packets += [frag4(D, 0, 512, True, ident=k), frag4(D, 512, 520, False, ident=k)]
    packets.append(frag4(D, 512, 520, False, ident=999))  # its first fragment never comes
    stamps = [1_700_000_000 + k / 100 for k in range(len(packets))]
    path = write_pcap(tmp_path / "frags.pcap", list(zip(stamps, packets)))
    table = flowkit.packets(path, engine, chunk_bytes=4096)  # a datagram's two fragments often in two chunks
    rows = table.to_arrow()
    stats = table.stats
    stats.check()
    assert stats.packets == len(packets) == rows.num_rows
    assert (stats.counts["udp"], stats.counts["fragment"], stats.counts["fragment_incomplete"]) == (40, 40, 1)
    ok = rows.column("status").to_numpy() == Status.OK
    assert (rows.column("ip_len").to_numpy()[ok] == 20 + len(D)).all()
    # flows count the datagram once with its full length, as Zeek does
    flows = flowkit.flows(path, engine=engine).to_pandas()
    assert len(flows) == 1 and int(flows.src_pkts[0]) == 40
    assert int(flows.src_ip_bytes[0]) == 40 * (20 + len(D)) and int(flows.src_payload_bytes[0]) == 40 * len(PAYLOAD)
