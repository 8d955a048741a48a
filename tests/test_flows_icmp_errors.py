"""ICMP errors tied to the flow whose header they quote, from captures built with dpkt.

Truth: how each capture was built (which probe, which error quoting which header, sent by
whom), RFC 792 / RFC 4443 (an error quotes the offending IP header and at least 8 bytes
after it), and tshark on a corpus capture. The error stays its own ICMP flow, as in Zeek.
"""
from __future__ import annotations

import socket

import dpkt
import pytest

import flowkit
from pcapgen import write_ip_pcap
from flowkit.analysis import exposure
from flowkit.decode.schema import Status, Tunnel
from flowkit.flows import FlowOptions, accumulate

CLIENT, SERVER, ROUTER = "10.0.0.1", "192.0.2.10", "198.51.100.1"
CLIENT6, SERVER6, ROUTER6 = "2001:db8::1", "2001:db8:1::10", "2001:db8:2::1"


def _a(text):
    return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)


def ip(src, dst, proto, body: bytes):
    if ":" in src:
        pkt = dpkt.ip6.IP6(src=_a(src), dst=_a(dst), nxt=proto, hlim=64, plen=len(body))
        pkt.data = body
        return pkt
    pkt = dpkt.ip.IP(src=_a(src), dst=_a(dst), p=proto, ttl=64, data=body)
    pkt.len = 20 + len(body)
    return pkt


def udp(src, sport, dst, dport, payload=b"q" * 20):
    body = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    body.ulen = 8 + len(payload)
    return ip(src, dst, 17, bytes(body))


def tcp(src, sport, dst, dport, flags, seq=1000, ack=0):
    return ip(src, dst, 6, bytes(dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, win=8192)))


def icmp_error(sender, to, type_, code, offending, quoted: int | None = None):
    """An ICMP(v6) error from ``sender`` quoting ``offending`` (its IP header and the first
    ``quoted`` bytes after it; default 8, RFC 792's minimum)."""
    raw = bytes(offending)
    hl = 40 if ":" in sender else (raw[0] & 0x0F) * 4
    raw = raw[: hl + (8 if quoted is None else quoted)]
    body = bytes([type_, code, 0, 0, 0, 0, 0, 0]) + raw
    return ip(sender, to, 58 if ":" in sender else 1, body)


def write(tmp_path, packets, gap=0.5, name="c.pcap"):
    return write_ip_pcap(tmp_path / name, packets, gap)


def rows(table):
    df = table.to_pandas()
    return {(r.proto, r.src_ip, r.src_port, r.dst_ip, r.dst_port): r for r in df.itertuples()}


def _all_ways(path):
    """The flow table by the one-pass driver (unlimited and with a tiny budget) and by the
    mergeable one cut after every packet: they must agree."""
    one = flowkit.flows(str(path), memory=None).to_pandas()
    tiny = flowkit.flows(str(path), memory=1).to_pandas()
    batches = list(flowkit.packets(str(path)))
    whole = flowkit.packets(str(path)).to_arrow()
    state = None
    for i in range(whole.num_rows):
        part = accumulate([whole.slice(i, 1).to_batches()[0]], FlowOptions())
        state = part if state is None else state.merge(part)
    merged = state.finalize().to_pandas()
    assert batches
    cols = list(one.columns)
    assert tiny[cols].equals(one[cols])
    assert merged[cols].reset_index(drop=True).equals(one[cols].reset_index(drop=True))
    return one


PROBE = udp(CLIENT, 40000, SERVER, 161)


def test_port_unreachable_ties_to_the_udp_probe(tmp_path):
    path = write(tmp_path, [PROBE, icmp_error(SERVER, CLIENT, 3, 3, PROBE)])
    df = _all_ways(path)
    by = {(r.proto, r.src_ip, r.src_port, r.dst_ip, r.dst_port): r for r in df.itertuples()}
    probe = by[("udp", CLIENT, 40000, SERVER, 161)]
    assert (probe.src_pkts, probe.dst_pkts) == (1, 0)  # the quote is no packet of the flow
    assert (probe.icmp_errors, probe.icmp_error_type, probe.icmp_error_code, probe.icmp_error_src) == (
        1, 3, 3, SERVER)
    error = by[("icmp", SERVER, 3, CLIENT, 3)]  # still its own one-way ICMP flow, as Zeek keys it
    assert (error.src_pkts, error.icmp_errors) == (1, 0)
    assert error.src_payload_bytes == 20 + 8  # the quoted header and 8 bytes
    x = exposure(df)
    assert x[["dst_ip", "dst_port", "proto", "state", "reason"]].values.tolist() == [
        [SERVER, 161, "udp", "closed", "port-unreach"]]


def test_admin_prohibited_from_a_router_is_filtered_with_the_reason(tmp_path):
    syn = tcp(CLIENT, 40001, SERVER, 22, dpkt.tcp.TH_SYN)
    path = write(tmp_path, [PROBE, icmp_error(ROUTER, CLIENT, 3, 13, PROBE), syn,
                            icmp_error(ROUTER, CLIENT, 3, 10, syn)])
    df = _all_ways(path)
    by = {(r.proto, r.src_port, r.dst_port): r for r in df.itertuples()}
    assert (by[("udp", 40000, 161)].icmp_error_code, by[("udp", 40000, 161)].icmp_error_src) == (13, ROUTER)
    assert (by[("tcp", 40001, 22)].icmp_errors, by[("tcp", 40001, 22)].icmp_error_code) == (1, 10)
    x = exposure(df).set_index(["dst_port", "proto"])
    assert (x.loc[(161, "udp"), "state"], x.loc[(161, "udp"), "reason"]) == ("filtered", "admin-prohibited")
    assert (x.loc[(22, "tcp"), "state"], x.loc[(22, "tcp"), "reason"]) == ("filtered", "host-prohibited")
    assert x["icmp_errors"].to_dict() == {(161, "udp"): 1, (22, "tcp"): 1}


def test_icmpv6_errors(tmp_path):
    probe, other = udp(CLIENT6, 40000, SERVER6, 53), udp(CLIENT6, 40001, SERVER6, 123)
    path = write(tmp_path, [probe, icmp_error(SERVER6, CLIENT6, 1, 4, probe, quoted=8), other,
                            icmp_error(ROUTER6, CLIENT6, 1, 1, other, quoted=8)])
    df = _all_ways(path)
    by = {(r.proto, r.src_port, r.dst_port): r for r in df.itertuples()}
    assert (by[("udp", 40000, 53)].icmp_error_type, by[("udp", 40000, 53)].icmp_error_code) == (1, 4)
    assert by[("udp", 40001, 123)].icmp_error_src == ROUTER6
    assert by[("icmp", 1, 4)].ip_proto == 58
    x = exposure(df).set_index("dst_port")
    assert (x.loc[53, "state"], x.loc[53, "reason"]) == ("closed", "port-unreach")
    assert (x.loc[123, "state"], x.loc[123, "reason"]) == ("filtered", "admin-prohibited")


def test_a_quote_of_no_flow_and_a_truncated_quote_tie_nothing(tmp_path):
    ghost = udp(CLIENT, 45000, SERVER, 9999)  # never sent: only quoted
    path = write(tmp_path, [PROBE, icmp_error(SERVER, CLIENT, 3, 3, ghost),
                            icmp_error(SERVER, CLIENT, 3, 3, PROBE, quoted=2)])  # ports cut
    df = _all_ways(path)
    assert sorted(df["proto"]) == ["icmp", "udp"]  # the quote opened no flow
    assert df["icmp_errors"].sum() == 0
    assert df.loc[df.proto == "icmp", "src_pkts"].tolist() == [2]
    pk = flowkit.packets(str(path)).to_pandas()
    quotes = pk[pk.tunnel_type == Tunnel.ICMP_QUOTE]
    assert quotes["status"].tolist() == [Status.OK, Status.TRUNCATED]


def test_a_late_error_after_the_timeout_ties_nothing(tmp_path):
    path = write(tmp_path, [PROBE, icmp_error(SERVER, CLIENT, 3, 3, PROBE)], gap=61.0)  # UDP timeout 60 s
    df = _all_ways(path)
    assert df["icmp_errors"].sum() == 0


def test_errors_are_counted_and_the_last_kept(tmp_path):
    path = write(tmp_path, [PROBE, icmp_error(ROUTER, CLIENT, 11, 0, PROBE), PROBE,
                            icmp_error(SERVER, CLIENT, 3, 3, PROBE)])
    r = _all_ways(path).set_index("proto").loc["udp"]
    assert (r.icmp_errors, r.icmp_error_type, r.icmp_error_code, r.icmp_error_src) == (2, 3, 3, SERVER)


@pytest.mark.parametrize("engine", ["fast", "dpkt"])
def test_the_quote_row(tmp_path, engine):
    syn = tcp(CLIENT, 40001, SERVER, 22, dpkt.tcp.TH_SYN, seq=123456)
    path = write(tmp_path, [syn, icmp_error(ROUTER, CLIENT, 3, 13, syn)])
    pk = flowkit.packets(str(path), engine).to_pandas()
    assert pk["tunnel_depth"].tolist() == [0, 0, 1]
    q = pk.iloc[2]
    assert (q.tunnel_type, q.tunnel_src_ip, q.tunnel_dst_ip, q.tunnel_src_port, q.tunnel_dst_port) == (
        Tunnel.ICMP_QUOTE, ROUTER, CLIENT, 3, 13)
    assert (q.src_ip, q.src_port, q.dst_ip, q.dst_port, q.ip_proto, q.seq, q.status) == (
        CLIENT, 40001, SERVER, 22, 6, 123456, Status.OK)
    assert flowkit.packets(str(path), engine).stats.packets == 2  # records, not rows
    assert len(flowkit.packets(str(path), engine, decap=False).to_arrow()) == 2


def test_closed_udp_ports_of_a_corpus_capture_match_tshark(corpus):
    """nfstream/quic_interop_V: the UDP ports that, never having sent a packet back, answered a
    probe with their own port unreachable (tshark: ICMP 3/3 or ICMPv6 1/4 whose sender is the
    quoted destination, and no UDP packet from that destination port to the quoted source
    before it) are exposure's closed ones."""
    import subprocess

    from conftest import require_tool

    tshark = require_tool("tshark")
    path = corpus / "nfstream" / "quic_interop_V.pcapng"
    out = subprocess.run(
        [tshark, "-r", str(path), "-Y", "udp", "-T", "fields", "-e", "icmp.type", "-e", "icmp.code",
         "-e", "icmpv6.type", "-e", "icmpv6.code", "-e", "ip.src", "-e", "ip.dst", "-e", "ipv6.src",
         "-e", "ipv6.dst", "-e", "udp.srcport", "-e", "udp.dstport"],
        capture_output=True, text=True, check=True).stdout
    sent, want = set(), set()
    for line in out.splitlines():
        t4, c4, t6, c6, v4s, v4d, v6s, v6d, sport, dport = line.split("\t")
        src, dst = (v4s, v4d) if v4s else (v6s, v6d)
        if not (t4 or t6):  # a UDP packet
            sent.add((src, int(sport), dst, int(dport)))
            continue
        if (t4, c4) != ("3", "3") and (t6, c6) != ("1", "4"):
            continue
        sender, qsrc = src.split(",")  # the ICMP's source, then the quoted header's
        qdst = dst.split(",")[1]
        if sender == qdst and (qdst, int(dport), qsrc, int(sport)) not in sent:
            want.add((qdst, int(dport)))
    assert len(want) == 13
    x = exposure(flowkit.flows(str(path)))
    closed = x[x.state == "closed"]
    assert set(zip(closed.dst_ip, closed.dst_port)) == want
    assert set(closed.reason) == {"port-unreach"}


def test_a_packet_filter_keeps_or_drops_the_quote_with_its_icmp_packet(tmp_path):
    """tcpdump sees an ICMP error as one ICMP packet: 'icmp' keeps it with its quote (the flow is
    still tied), 'udp port 161' matches the probe only, not the error quoting it."""
    path = write(tmp_path, [PROBE, icmp_error(SERVER, CLIENT, 3, 3, PROBE)])
    pk = flowkit.packets(str(path), filter="icmp").to_pandas()
    assert pk["tunnel_type"].tolist() == [0, Tunnel.ICMP_QUOTE]
    pk = flowkit.packets(str(path), filter="udp port 161").to_pandas()
    assert pk["tunnel_type"].tolist() == [0] and pk["ip_proto"].tolist() == [17]
    df = flowkit.flows(str(path), packet_filter="udp").to_pandas()
    assert (len(df), df["icmp_errors"].sum()) == (1, 0)
