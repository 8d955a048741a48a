"""verify_checksums: flows as Zeek writes them without -C, from dpkt-built captures with
deliberately wrong checksums.

Truth: which checksums the test broke, and Zeek's rules (packet_analysis/protocol/ip/IP.cc:
a bad IPv4 header checksum drops the packet before any connection; tcp/TCP.cc, udp/UDP.cc:
a bad TCP/UDP checksum leaves the packet out of the counts and adds C/c at the 1st, 10th,
100th... one; IPv4 UDP checksum 0 means none, IPv6 UDP is always checked; icmp/ICMP.cc: a
bad ICMP checksum is left out with no letter). Zeek's own baselines are in
test_conformance_zeek.py (core.tcp.bad-checksum-syn, core.udp-corrupt).
"""
from __future__ import annotations

import socket
import struct

import dpkt
import pytest

import flowkit
from pcapgen import write_ip_pcap
from flowkit.flows import FlowOptions, accumulate

A, B = "10.0.0.1", "10.0.0.2"
A6, B6 = "2001:db8::1", "2001:db8::2"
BAD = 0xBEEF  # a checksum no test packet below sums to


def _a(text):
    return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)


def ip4(src, dst, proto, body, bad_header=False):
    pkt = dpkt.ip.IP(src=_a(src), dst=_a(dst), p=proto, ttl=64, data=body)
    pkt.len = 20 + len(bytes(body))
    if bad_header:
        pkt.sum = BAD
    return pkt


def tcp(src, sport, dst, dport, flags, seq=1000, ack=0, bad=False, payload=b""):
    body = dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, win=8192, data=payload)
    if bad:
        body.sum = BAD  # dpkt fills the checksum only while it is 0
    return ip4(src, dst, 6, body)


def udp(src, sport, dst, dport, payload=b"x" * 12, bad=False, zero=False):
    body = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    body.ulen = 8 + len(payload)
    if ":" in src:  # IPv6: the checksum is written here (RFC 8200 pseudo-header), dpkt would compute it
        raw = bytearray(bytes(body))
        raw[6:8] = b"\0\0"
        pseudo = _a(src) + _a(dst) + struct.pack(">I", len(raw)) + b"\0\0\0\x11"
        value = (0xFFFF - _csum(pseudo + bytes(raw))) or 0xFFFF
        raw[6:8] = struct.pack(">H", BAD if bad else 0 if zero else value)
        pkt = dpkt.ip6.IP6(src=_a(src), dst=_a(dst), nxt=17, hlim=64, plen=len(raw))
        pkt.data = bytes(raw)
        return pkt
    if bad:
        body.sum = BAD
    pkt = ip4(src, dst, 17, body)
    if zero:  # no checksum (IPv4 allows it): written after dpkt's own
        raw = bytearray(bytes(pkt))
        raw[26:28] = b"\0\0"
        return dpkt.ip.IP(bytes(raw))
    return pkt


def _csum(data: bytes) -> int:
    """RFC 1071 one's-complement sum, folded."""
    data += b"\0" * (len(data) % 2)
    s = sum(struct.unpack(f">{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def echo(src, dst, bad=False):
    body = dpkt.icmp.ICMP(type=8, code=0, data=dpkt.icmp.ICMP.Echo(id=1, seq=1, data=b"p" * 16))
    if bad:
        body.sum = BAD
    return ip4(src, dst, 1, body)


def write(tmp_path, packets, gap=0.1):
    return write_ip_pcap(tmp_path / "c.pcap", packets, gap)


def verified(path):
    """Flows with checksums verified, the same by both drivers and any memory budget."""
    one = flowkit.flows(str(path), verify_checksums=True, memory=None)
    tiny = flowkit.flows(str(path), verify_checksums=True, memory=1).to_pandas()
    options = FlowOptions(verify_checksums=True)
    batches = list(flowkit.packets(str(path), verify_checksums=True, chunk_bytes=1))
    state = None
    for b in batches:
        for i in range(b.num_rows):
            part = accumulate([b.slice(i, 1)], options)
            state = part if state is None else state.merge(part)
    df = one.to_pandas()
    cols = list(df.columns)
    assert tiny[cols].equals(df[cols])
    assert state.finalize().to_pandas()[cols].reset_index(drop=True).equals(df[cols].reset_index(drop=True))
    return df, one.stats


def test_a_bad_syn_makes_a_connection_without_packets(tmp_path):
    path = write(tmp_path, [tcp(A, 40000, B, 80, dpkt.tcp.TH_SYN, bad=True)])
    df, stats = verified(path)
    r = df.iloc[0]
    assert (r.src_pkts, r.dst_pkts, r.history, r.conn_state, r.duration) == (0, 0, "C", "OTH", 0.0)
    assert stats.counts["tcp"] == 1 and stats.checksum_errors == {"tcp": 1, "udp": 0, "icmp": 0}
    plain = flowkit.flows(str(path)).to_pandas().iloc[0]  # default: as zeek -C
    assert (plain.src_pkts, plain.history, plain.conn_state) == (1, "S", "S0")


def test_tcp_letters_both_ways_scaled(tmp_path):
    packets = [tcp(A, 40000, B, 80, dpkt.tcp.TH_SYN, seq=1),
               tcp(B, 80, A, 40000, dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK, seq=500, ack=2),
               tcp(A, 40000, B, 80, dpkt.tcp.TH_ACK, seq=2, ack=501)]
    packets += [tcp(A, 40000, B, 80, dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH, seq=2, ack=501, payload=b"d" * 10, bad=True)
                for _ in range(10)]  # C at the 1st and the 10th
    packets += [tcp(B, 80, A, 40000, dpkt.tcp.TH_ACK, seq=501, ack=2, bad=True)]
    df, _ = verified(write(tmp_path, packets))
    r = df.iloc[0]
    assert (r.history, r.src_pkts, r.dst_pkts, r.src_payload_bytes) == ("ShACCc", 2, 1, 0)


def test_udp_letters_and_counts(tmp_path):
    packets = [udp(A, 5000, B, 53)] + [udp(B, 53, A, 5000, bad=True)] * 12 + [udp(A, 5000, B, 53, bad=True)]
    df, stats = verified(write(tmp_path, packets))
    r = df.iloc[0]
    assert (r.src_pkts, r.dst_pkts, r.history, r.conn_state) == (1, 0, "DccC", "S0")
    assert (r.src_payload_bytes, r.dst_payload_bytes) == (12, 0)
    assert stats.checksum_errors["udp"] == 13


def test_udp_checksum_zero_is_none_in_ipv4_and_bad_in_ipv6(tmp_path):
    packets = [udp(A, 5000, B, 7000, zero=True), udp(A6, 5000, B6, 7000, zero=True), udp(A6, 5001, B6, 7000)]
    df, _ = verified(write(tmp_path, packets))
    by = {(r.ip_version, r.src_port): (r.src_pkts, r.history) for r in df.itertuples()}
    assert by == {(4, 5000): (1, "D"), (6, 5000): (0, "C"), (6, 5001): (1, "D")}


def test_a_bad_ip_header_drops_the_packet(tmp_path):
    packets = [tcp(A, 40000, B, 80, dpkt.tcp.TH_SYN), ip4(B, A, 6, dpkt.tcp.TCP(sport=80, dport=40000,
               flags=dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK, seq=9, ack=1001), bad_header=True)]
    df, stats = verified(write(tmp_path, packets))
    r = df.iloc[0]
    assert (len(df), r.src_pkts, r.dst_pkts, r.history) == (1, 1, 0, "S")
    assert (stats.counts["bad_checksum"], stats.counts["tcp"], stats.packets) == (1, 1, 2)
    stats.check()
    pk = flowkit.packets(str(write(tmp_path, packets)))
    assert [int(s) for s in pk.to_arrow().column("status").to_pylist()] == [0, 0]  # not verified: decoded


def test_a_bad_icmp_checksum_leaves_a_connection_without_packets_or_letters(tmp_path):
    df, stats = verified(write(tmp_path, [echo(A, B, bad=True), echo(A, B)]))
    r = df.iloc[0]
    assert (len(df), r.src_pkts, r.history) == (1, 1, "")
    assert stats.checksum_errors["icmp"] == 1


def test_fragments_are_checked_one_by_one_and_the_datagram_once(tmp_path):
    whole = bytes(udp(A, 5000, B, 7000, payload=bytes(range(256)) * 6))  # correct checksums
    body = whole[20:]
    frags = []
    for off in range(0, len(body), 800):
        part = body[off:off + 800]
        more = off + 800 < len(body)
        f = dpkt.ip.IP(src=_a(A), dst=_a(B), p=17, ttl=64, id=77, offset=off // 8, mf=int(more), data=part)
        f.len = 20 + len(part)
        frags.append(f)
    df, stats = verified(write(tmp_path, frags))
    r = df.iloc[0]
    assert (r.src_pkts, r.history, stats.counts["bad_checksum"]) == (1, "D", 0)


@pytest.mark.parametrize("engine", ["fast", "dpkt"])
def test_engines_agree(tmp_path, engine):
    packets = [tcp(A, 40000, B, 80, dpkt.tcp.TH_SYN, bad=True), udp(A, 5000, B, 53, bad=True), echo(A, B, bad=True),
               udp(A6, 5000, B6, 53, zero=True), ip4(A, B, 6, dpkt.tcp.TCP(sport=1, dport=2), bad_header=True),
               tcp(A, 40000, B, 80, dpkt.tcp.TH_SYN)]
    t = flowkit.packets(str(write(tmp_path, packets)), engine, verify_checksums=True).to_arrow()
    assert t.column("bad_checksum").to_pylist() == [1, 1, 1, 1, 0, 0]
    assert t.column("status").to_pylist() == [0, 0, 0, 0, 6, 0]


def test_cli(tmp_path, run):
    path = write(tmp_path, [tcp(A, 40000, B, 80, dpkt.tcp.TH_SYN, bad=True),
                            ip4(A, B, 6, dpkt.tcp.TCP(sport=1, dport=2), bad_header=True)])
    rc, out, err = run("flows", path, "--verify-checksums", "--stats", "--json")
    assert rc == 0
    assert '"history":"C"' in out
    assert "bad_checksum" in err and "tcp 1" in err
    assert ("checksums verified: 1 with a bad IPv4 header checksum (dropped); 1 with a bad transport checksum "
            "(tcp 1; in their flows, not counted)") in err
    rc, out, err = run("flows", path, "--stats", "--json")
    assert rc == 0 and '"history":"S"' in out and "bad_checksum" not in err
    rc, out, err = run("packets", path, "--verify-checksums", "--json", "--fields", "index,status,bad_checksum")
    assert rc == 0
    assert out.splitlines() == ['{"index":0,"status":0,"bad_checksum":1}', '{"index":1,"status":6,"bad_checksum":0}']


CORPUS_WITH_BAD = ("mysql-8.pcap", "skype_udp.pcap", "IEC104.pcap", "dtls2.pcap", "iec60780-5-104.pcap",
                   "nats.pcap", "cassandra.pcap", "http_ipv6.pcap", "6in4tunnel.pcap", "coap_mqtt.pcap")


@pytest.mark.corpus
def test_verdicts_match_tshark_on_corpus_captures(corpus):
    """Per captured packet, flowkit's verdicts equal Wireshark's checksum validation: IPv4 header
    bad (status BAD_CHECKSUM), else TCP/UDP bad (bad_checksum), on nfstream captures that have
    both kinds. Zeek (and flowkit) check a TCP/UDP checksum only over a message captured whole."""
    import subprocess

    from conftest import require_tool

    tshark = require_tool("tshark")
    compared = bad_seen = 0
    for name in CORPUS_WITH_BAD:
        path = corpus / "nfstream" / name
        out = subprocess.run(
            [tshark, "-r", str(path), "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-o",
             "udp.check_checksum:TRUE", "-T", "fields", "-e", "ip.checksum.status", "-e", "tcp.checksum.status",
             "-e", "udp.checksum.status"], capture_output=True, text=True, check=True).stdout.splitlines()
        t = flowkit.packets(str(path), verify_checksums=True).to_arrow()
        outer = t.column("tunnel_depth").to_numpy() == 0
        status = t.column("status").to_numpy()[outer]
        bad = t.column("bad_checksum").to_numpy()[outer]
        proto = t.column("ip_proto").to_numpy()[outer]
        whole = (t.column("caplen").to_numpy() == t.column("wirelen").to_numpy())[outer]
        assert len(out) == len(status), name
        for i, line in enumerate(out):
            ip, tcp_, udp_ = (f.split(",")[0] for f in line.split("\t"))
            assert (ip == "0") == (status[i] == 6), (name, i + 1)  # 0: Wireshark's "Bad"
            l4 = tcp_ or udp_
            if ip != "0" and l4 in ("0", "1") and proto[i] in (6, 17) and whole[i]:
                assert (l4 == "0") == (bad[i] == 1), (name, i + 1)
                compared += 1
                bad_seen += l4 == "0"
    assert compared > 3000 and bad_seen > 400
