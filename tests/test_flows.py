"""Flow semantics on captures written here: what happened on the wire -> expected row."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import flowkit
from flowgen import Conversation, batch, pkt, write_pcap


def flows_of(packets, **options):
    return flowkit.flows([batch(packets)], **options).to_pandas()


def one(packets, **options):
    df = flows_of(packets, **options)
    assert len(df) == 1, df
    return df.iloc[0]


def test_normal_connection_counts_bytes_and_history():
    c = Conversation("10.0.0.1", 40000, "10.0.0.2", 80).handshake()
    c.data(True, 120)
    c.ack(False)
    c.data(False, 1400)
    c.data(False, 600)
    c.ack(True)
    c.close()
    row = one(c.packets)
    assert (row.src_ip, row.src_port, row.dst_ip, row.dst_port, row.proto) == ("10.0.0.1", 40000, "10.0.0.2", 80, "tcp")
    client = [p for p in c.packets if p["src_port"] == 40000]
    server = [p for p in c.packets if p["src_port"] == 80]
    assert row.src_pkts == len(client) and row.dst_pkts == len(server)
    assert row.src_ip_bytes == sum(p["ip_len"] for p in client)
    assert row.dst_ip_bytes == sum(p["ip_len"] for p in server)
    assert row.src_payload_bytes == 120 and row.dst_payload_bytes == 2000
    assert row.conn_state == "SF"
    # S h A D a d A(once) F f : pure ACKs and data once per direction
    assert row.history == "ShADadFf"
    assert row.src_syn == 1 and row.dst_syn == 1 and row.src_fin == 1 and row.dst_fin == 1
    assert row.src_ack == len(client) - 1  # every client packet but the SYN carries ACK


def test_retransmission_is_not_double_counted_and_marks_history():
    c = Conversation("10.0.0.1", 40001, "10.0.0.2", 80).handshake()
    d = c.data(True, 500)
    c.retransmit(d)
    c.retransmit(d)
    c.ack(False)
    c.close()
    row = one(c.packets)
    assert row.src_payload_bytes == 500  # from sequence numbers, once
    assert row.src_ip_bytes == sum(p["ip_len"] for p in c.packets if p["src_port"] == 40001)  # all on the wire
    assert "T" in row.history and row.history.count("T") == 1  # 1st retransmission only (then 10th, ...)


def test_rejected_attempt():
    c = Conversation("10.0.0.1", 40002, "10.0.0.2", 81)
    c.syn()
    c.cseq += 1
    c.rst(False, "RA")
    row = one(c.packets)
    assert row.conn_state == "REJ" and row.history == "Sr"


def test_unanswered_syn_retries_one_attempt_then_expiry():
    c = Conversation("10.0.0.1", 40003, "10.0.0.2", 22, step=1.0)
    c.syn()
    c.syn()  # same sequence number one second later: same attempt, no new letter
    c.syn(dt=2.0)
    row = one(c.packets)
    assert row.conn_state == "S0" and row.history == "S"
    assert row.syn_count == 3 and row.src_pkts == 3
    # a retry after Zeek's 5 s attempt timer has removed the attempt starts a new connection
    c.syn(dt=6.0)
    df = flows_of(c.packets)
    assert list(df.src_pkts) == [3, 1] and list(df.conn_state) == ["S0", "S0"]


def test_midstream_connection_is_oriented_by_service_port_and_marked_flipped():
    # first packet seen: server (port 443) to client, no SYN
    pkts = [
        pkt(10.0, "192.0.2.9", 443, "10.0.0.5", 51000, "PA", seq=900, ack=300, payload=50),
        pkt(10.1, "10.0.0.5", 51000, "192.0.2.9", 443, "A", seq=300, ack=950),
    ]
    row = one(pkts)
    assert (row.src_ip, row.src_port, row.dst_port) == ("10.0.0.5", 51000, 443)
    assert row.history == "^dA" and row.conn_state == "OTH"
    assert row.dst_payload_bytes == 50


def test_synack_first_is_flipped():
    c = Conversation("10.0.0.1", 40004, "10.0.0.2", 8080)
    c.synack()
    c.ack()
    row = one(c.packets)
    assert (row.src_ip, row.src_port) == ("10.0.0.1", 40004)
    assert row.history.startswith("^h")


def test_synack_from_an_unlikely_port_is_flipped_once_an_ack_follows():
    # Zeek >= 5.1 (PR #2191): no port flip (9999 is no likely server port), but the ACK right
    # after the SYN-ACK flips it; the history reads as if flipped first (Zeek's core.local-flip
    # baseline: ^hADadFf)
    c = Conversation("10.0.0.1", 40004, "10.0.0.2", 9999)
    c.synack()
    c.ack()
    c.data(True, 10)
    row = one(c.packets)
    assert (row.src_ip, row.src_port, row.dst_port) == ("10.0.0.1", 40004, 9999)
    assert row.history == "^hAD" and (row.src_pkts, row.dst_pkts) == (2, 1)


def test_synack_from_an_unlikely_port_answered_by_rst_keeps_its_sender():
    # a stealth scan's SYN-ACK draws a RST: Zeek keeps the SYN-ACK sender as originator
    c = Conversation("10.0.0.1", 40006, "10.0.0.2", 9999)
    c.synack()
    c.rst(True)
    row = one(c.packets)
    assert (row.src_ip, row.src_port, row.dst_port) == ("10.0.0.2", 9999, 40006)
    assert row.history == "Hr" and (row.src_pkts, row.dst_pkts) == (1, 1)


def test_lone_synack_from_an_unlikely_port_keeps_its_sender():
    c = Conversation("10.0.0.1", 40007, "10.0.0.2", 9999)
    c.synack()
    row = one(c.packets)
    assert (row.src_ip, row.src_port, row.history, row.conn_state) == ("10.0.0.2", 9999, "H", "OTH")


def test_synack_between_two_likely_ports_keeps_its_sender_until_an_ack():
    # WantConnection: both ports likely -> no port flip for a SYN-ACK (only for no-SYN packets)
    c = Conversation("10.0.0.1", 8080, "10.0.0.2", 443)
    c.synack()
    row = one(c.packets)
    assert (row.src_port, row.history) == (443, "H")
    c.ack()
    row = one(c.packets)
    assert (row.src_port, row.history) == (8080, "^hA")


def test_new_syn_after_close_starts_a_new_flow():
    c = Conversation("10.0.0.1", 40005, "10.0.0.2", 80).handshake()
    c.close()
    c.cseq += 10_000  # a new connection uses a new initial sequence number
    c.handshake()
    df = flows_of(c.packets)
    assert len(df) == 2
    assert list(df.conn_state) == ["SF", "S1"]
    assert df.flow_id.nunique() == 2 and df.community_id.nunique() == 1


def test_udp_inactivity_timeout_and_option():
    pkts = [pkt(t, "10.0.0.1", 5353 + 1, "10.0.0.53", 53, proto="udp", payload=40) for t in (0.0, 30.0, 95.0)]
    assert len(flows_of(pkts)) == 2  # 65 s gap > 60 s default
    assert len(flows_of(pkts, udp_timeout=120)) == 1
    assert len(flows_of(pkts, udp_timeout=20)) == 3


def test_udp_request_response():
    pkts = [
        pkt(1.0, "10.0.0.1", 33000, "10.0.0.53", 53, proto="udp", payload=30),
        pkt(1.1, "10.0.0.53", 53, "10.0.0.1", 33000, proto="udp", payload=90),
    ]
    row = one(pkts)
    assert (row.src_port, row.conn_state, row.history) == (33000, "SF", "Dd")
    assert (row.src_payload_bytes, row.dst_payload_bytes) == (30, 90)
    assert (row.src_ip_bytes, row.dst_ip_bytes) == (20 + 8 + 30, 20 + 8 + 90)


def test_tcp_idle_timeout_splits():
    c = Conversation("10.0.0.1", 40006, "10.0.0.2", 80).handshake()
    c.data(True, 10)
    c.data(True, 10, dt=301.0)
    assert len(flows_of(c.packets)) == 2
    assert len(flows_of(c.packets, tcp_timeout=600)) == 1


def test_active_timeout_splits_long_flows():
    pkts = [pkt(float(t), "10.0.0.1", 40000, "10.0.0.9", 9999, proto="udp", payload=1) for t in range(0, 100, 5)]
    df = flows_of(pkts, active_timeout=30)
    assert len(df) == 4  # 0-25, 30-55, 60-85, 90-95
    assert df.src_pkts.sum() == len(pkts)


def test_handshake_timestamps():
    c = Conversation("10.0.0.1", 40007, "10.0.0.2", 443, step=0.5)
    s1 = c.syn()
    s2 = c.syn(dt=1.0, seq=c.cseq)  # retry, same ISN
    sa = c.synack()
    a = c.ack()
    row = one(c.packets)
    ts = lambda p: pd.Timestamp(p["ts"], unit="ns", tz="UTC")  # noqa: E731
    assert row.syn_ts == ts(s1) and row.syn_last_ts == ts(s2)
    assert row.synack_ts == ts(sa) and row.ack_ts == ts(a)
    assert row.syn_count == 2


def test_every_ip_protocol_makes_a_flow_everything_is_in_the_ledger():
    pkts = [
        pkt(1.0, "10.0.0.1", 0, "10.0.0.2", 0, proto="icmp"),  # echo request (type 8, code 0)
        pkt(1.1, "10.0.0.1", 1, "10.0.0.2", 2, proto="udp", payload=3),
        pkt(1.2, "10.0.0.1", 7, "10.0.0.2", 9, proto="tcp", ip_proto=47),  # GRE: ports are not GRE's
    ]
    ft = flowkit.flows([batch(pkts)])
    df = ft.to_pandas().sort_values("ts_start")
    assert list(df.proto) == ["icmp", "udp", "gre"]
    assert list(df.ip_proto) == [1, 17, 47]
    # Zeek's keys: ICMP echo request type 8 -> counterpart 0; unknown_transport ports 0
    assert list(df.src_port) == [8, 1, 0] and list(df.dst_port) == [0, 2, 0]
    assert list(df.conn_state) == ["OTH", "S0", "OTH"] and list(df.history) == ["", "D", ""]
    assert ft.stats.packets == 3 and ft.stats.counts["icmp"] == 1 and ft.stats.counts["other_ip"] == 1


VLAN_PAIR = [
    pkt(1.0, "10.0.0.1", 1000, "10.0.0.2", 53, proto="udp", payload=1, vlan=10),
    pkt(1.1, "10.0.0.1", 1000, "10.0.0.2", 53, proto="udp", payload=1, vlan=20, inner_vlan=5),
]


def test_vlan_tags_are_not_in_the_key_by_default():
    # Zeek's default connection key is the five-tuple: one connection, its first packet's tag
    df = flows_of(VLAN_PAIR)
    assert len(df) == 1 and df.vlan[0] == 10 and df.src_pkts[0] == 2


def test_vlan_key_separates_flows():
    # Zeek's policy/frameworks/conn_key/vlan_fivetuple.zeek: vlan and inner_vlan in the key
    df = flows_of(VLAN_PAIR, vlan_key=True)
    assert sorted(zip(df.vlan, df.inner_vlan)) == [(10, 0), (20, 5)]


def test_vlan_key_on_the_mergeable_path():
    from flowkit.flows import FlowOptions, accumulate

    for key, rows in ((False, 1), (True, 2)):
        state = accumulate([batch(VLAN_PAIR[:1]), batch(VLAN_PAIR[1:], first_index=1)], FlowOptions(vlan_key=key))
        assert len(state.finalize()) == rows


def test_ipv6_flow():
    c = Conversation("2001:db8::1", 40008, "2001:db8::2", 80).handshake()
    c.data(True, 10)
    row = one(c.packets)
    assert row.ip_version == 6 and row.src_ip == "2001:db8::1"
    assert row.src_ip_bytes == sum(p["ip_len"] for p in c.packets if p["src_port"] == 40008)


def test_community_id_matches_reference_implementation():
    communityid = pytest.importorskip("communityid")
    cid = communityid.CommunityID()
    cases = [("10.0.0.9", 443, "10.0.0.1", 51000, "tcp"), ("2001:db8::5", 53, "2001:db8::1", 9999, "udp"),
             ("192.168.1.1", 80, "192.168.1.1", 81, "tcp")]
    for src, sport, dst, dport, proto in cases:
        row = one([pkt(1.0, src, sport, dst, dport, "A" if proto == "tcp" else "", proto=proto, payload=1)])
        make = communityid.FlowTuple.make_tcp if proto == "tcp" else communityid.FlowTuple.make_udp
        assert row.community_id == cid.calc(make(src, dst, sport, dport))


def test_reading_a_real_pcap_matches_batches(tmp_path):
    c = Conversation("10.1.0.1", 40100, "10.1.0.2", 25).handshake()
    c.data(True, 300)
    c.data(False, 20)
    c.close()
    write_pcap(tmp_path / "c.pcap", c.packets)
    from_file = flowkit.flows(tmp_path / "c.pcap").to_arrow()
    from_batches = flowkit.flows([batch(c.packets)]).to_arrow()
    assert from_file.equals(from_batches)
    assert from_file.num_rows == 1


def test_pandas_types():
    df = flows_of(Conversation("10.0.0.1", 40009, "10.0.0.2", 80).handshake().packets)
    assert str(df.ts_start.dtype).startswith("datetime64") and str(df.ts_start.dt.tz) == "UTC"
    assert df.src_ip.map(type).eq(str).all()
    assert np.isclose(df.duration.iloc[0], 0.02)


def _states(build):
    c = Conversation("10.0.0.1", 41000, "10.0.0.2", 80)
    build(c)
    return one(c.packets)


@pytest.mark.parametrize(
    "name, build, state, history",
    [
        # established, then only the originator closes
        ("S2", lambda c: (c.handshake(), c.fin(True)), "S2", "ShAF"),
        # established, then only the responder closes
        ("S3", lambda c: (c.handshake(), c.fin(False)), "S3", "ShAf"),
        # SYN then FIN from the originator, no answer
        ("SH", lambda c: (c.syn(), c.fin(True)), "SH", "SF"),
        # established, originator aborts
        ("RSTO", lambda c: (c.handshake(), c.data(True, 5), c.rst(True)), "RSTO", "ShADR"),
        # established, responder aborts
        ("RSTR", lambda c: (c.handshake(), c.data(True, 5), c.rst(False)), "RSTR", "ShADr"),
        # SYN then RST from the originator, responder silent
        ("RSTOS0", lambda c: (c.syn(), c.rst(True)), "RSTOS0", "SR"),
        # midstream data both ways, no SYN
        ("OTH", lambda c: (c.data(True, 10), c.data(False, 10)), "OTH", "Dd"),
        # SYN with FIN: one multi-flag letter
        ("Q", lambda c: (c._emit(True, "SF"),), "SH", "Q"),
        # FIN with RST: one inconsistency letter
        ("I", lambda c: (c.handshake(), c._emit(True, "FRA")), "RSTO", "ShAI"),
    ],
)
def test_conn_states(name, build, state, history):
    row = _states(build)
    assert (row.conn_state, row.history) == (state, history), name


def test_synack_then_fin_without_syn_is_shr():
    c = Conversation("10.0.0.1", 41001, "10.0.0.2", 80)
    c.synack()
    c.fin(False)
    row = one(c.packets)
    assert row.conn_state == "SHR" and row.history == "^hf"
    assert (row.src_ip, row.src_port) == ("10.0.0.1", 41001)


def test_retransmissions_are_marked_logarithmically():
    c = Conversation("10.0.0.1", 41002, "10.0.0.2", 80).handshake()
    d = c.data(True, 100)
    for _ in range(12):
        c.retransmit(d)
    row = one(c.packets)
    assert row.history == "ShADTT"  # 1st and 10th retransmission
    assert row.src_payload_bytes == 100 and row.src_pkts == 2 + 1 + 12


def test_zero_window_letter():
    c = Conversation("10.0.0.1", 41003, "10.0.0.2", 80).handshake()
    c.data(True, 100)
    p = c.ack(False)
    p["window"] = 0
    row = one(c.packets)
    assert row.history == "ShADaw"


def test_consecutive_files_are_one_continuing_capture(tmp_path):
    c = Conversation("10.2.0.1", 40200, "10.2.0.2", 80).handshake()
    c.data(True, 50)
    c.data(False, 70)
    c.close()
    write_pcap(tmp_path / "a.pcap", c.packets[:4])  # rotated in the middle of the connection
    write_pcap(tmp_path / "b.pcap", c.packets[4:])
    both = flowkit.flows([tmp_path / "a.pcap", tmp_path / "b.pcap"])
    assert len(both) == 1 and both.stats.packets == len(c.packets)
    assert both.to_arrow().equals(flowkit.flows([batch(c.packets)]).to_arrow())


def test_filter_on_batches_keeps_every_packet_in_the_ledger():
    pkts = [
        pkt(1.0, "10.0.0.1", 1000, "10.0.0.2", 53, proto="udp", payload=1),
        pkt(1.1, "10.0.0.1", 1001, "10.0.0.2", 80, "S", seq=1),
    ]
    only_udp = lambda b: b.column("ip_proto").to_numpy() == 17  # noqa: E731
    ft = flowkit.flows([batch(pkts)], packet_filter=only_udp)
    assert list(ft.to_pandas().proto) == ["udp"]
    assert ft.stats.packets == 2


def test_active_timeout_continuation_keeps_the_orientation():
    c = Conversation("10.0.0.1", 41010, "10.0.0.2", 9999, step=4.0).handshake()  # not a likely server port
    for _ in range(6):
        c.data(False, 100)  # the server talks; a continuation starts with a server packet
    df = flows_of(c.packets, active_timeout=10)
    assert len(df) >= 2
    assert set(zip(df.src_ip, df.src_port)) == {("10.0.0.1", 41010)}
    assert df.src_pkts.sum() + df.dst_pkts.sum() == len(c.packets)


def test_payload_bytes_across_sequence_wrap():
    c = Conversation("10.0.0.1", 41020, "10.0.0.2", 80, cseq=2**32 - 300, sseq=2**32 - 10)
    c.handshake()
    for _ in range(5):
        c.data(True, 100)  # crosses 2**32 on the third segment
        c.data(False, 50)
    c.close()
    for p in c.packets:
        p["seq"] &= 0xFFFFFFFF
        p["ack"] &= 0xFFFFFFFF
    row = one(c.packets)
    assert (row.src_payload_bytes, row.dst_payload_bytes) == (500, 250)
    assert row.conn_state == "SF" and "T" not in row.history
