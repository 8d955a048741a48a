"""tunnel_parents: an inner connection names the flows that carried it (Zeek's conn.log field).

Captures are built here with dpkt/struct (test_decode_tunnels' builders): the truth is how
each packet was wrapped. The expected parent of an inner flow is the flow_id of the row,
in the same output, whose five-tuple is the outer packet's as built, so the check does
not depend on how flowkit links them; it must hold for both drivers, every way of cutting
the capture (chunks, merged parts) and any memory budget.
"""
from __future__ import annotations

import io

import pytest

import flowkit
from flowkit import zeeklog
from flowkit.decode import packets
from flowkit.flows import FlowState, accumulate
from pcapgen import write_pcap
from test_decode_tunnels import INNER_TCP, INNER_UDP, eth, gre, ip4, tcp, udp

VXLAN = b"\x08\x00\x00\x00\x00\x00\x2a\x00"


def vxlan(inner: bytes, sport: int, src="10.0.0.1", dst="10.0.0.2") -> bytes:
    return eth(ip4(17, udp(sport, 4789, VXLAN + eth(inner)), src=src, dst=dst))


def gre4(inner: bytes, src="10.9.0.1", dst="10.9.0.2") -> bytes:
    return ip4(47, gre(0x0800, inner), src=src, dst=dst)


def inner_tcp(flags: int, sport=40000, reply=False) -> bytes:
    import dpkt

    if reply:
        seg = bytes(dpkt.tcp.TCP(sport=80, dport=sport, seq=100, ack=2, flags=flags, off=5))
        return ip4(6, seg, src="192.168.1.20", dst="192.168.1.10")
    seg = bytes(dpkt.tcp.TCP(sport=sport, dport=80, seq=1 if flags == 0x02 else 2, ack=0 if flags == 0x02 else 101,
                             flags=flags, off=5))
    return ip4(6, seg, src="192.168.1.10", dst="192.168.1.20")


def row_of(rows, src, sport, dst, dport, proto):
    found = [r for r in rows if (r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"], r["proto"])
             == (src, sport, dst, dport, proto)]
    assert len(found) == 1, (src, sport, dst, dport, proto, found)
    return found[0]


def scenario(tmp_path):
    """Packets (time, frame) and, per inner flow, the outer five-tuples of its parents as built."""
    frames = [
        (1.0, vxlan(INNER_UDP, 51000)),            # inner DNS query through one VXLAN source port ...
        (2.0, vxlan(INNER_UDP, 52000)),            # ... then another: two parent flows
        (3.0, eth(gre4(INNER_TCP))),               # TCP inside GRE
        (4.0, eth(gre4(gre4(inner_tcp(0x02, 41000), "10.8.0.1", "10.8.0.2")))),  # GRE in GRE
        (5.0, eth(ip4(17, udp(5000, 53, b"plain")))),  # outside any tunnel
    ]
    path = write_pcap(tmp_path / "t.pcap", frames)
    want = {
        ("172.16.0.1", 5353, "172.16.0.2", 53, "udp"): [("10.0.0.1", 51000, "10.0.0.2", 4789, "udp"),
                                                         ("10.0.0.1", 52000, "10.0.0.2", 4789, "udp")],
        ("192.168.1.10", 40000, "192.168.1.20", 80, "tcp"): [("10.9.0.1", 0, "10.9.0.2", 0, "gre")],
        ("10.8.0.1", 0, "10.8.0.2", 0, "gre"): [("10.9.0.1", 0, "10.9.0.2", 0, "gre")],
        ("192.168.1.10", 41000, "192.168.1.20", 80, "tcp"): [("10.8.0.1", 0, "10.8.0.2", 0, "gre")],
    }
    return path, want


def check(rows, want):
    for r in rows:
        five = (r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"], r["proto"])
        expected = [row_of(rows, *p)["flow_id"] for p in want.get(five, [])]
        assert r["tunnel_parents"] == expected, five


def runs(path):
    """The same capture through every driver and cut: name -> flow rows."""
    out = {
        "stream": flowkit.flows(path).to_arrow(),
        "stream, tiny chunks": flowkit.flows(path, chunk_bytes=200).to_arrow(),
        "stream, 1-byte budget": flowkit.flows(path, memory=1).to_arrow(),
        "stream, one flow per run": flowkit.flows(path, spill_rows=1).to_arrow(),
        "mergeable": accumulate(packets(path)).finalize().to_arrow(),
    }
    batches = list(packets(path, chunk_bytes=200))
    for cut in range(1, len(batches)):
        merged = accumulate(batches[:cut]).merge(accumulate(batches[cut:])).finalize().to_arrow()
        out[f"merged at batch {cut}"] = merged
        later = FlowState.from_arrow(accumulate(batches[cut:]).to_arrow())  # a saved part read back
        out[f"merged at batch {cut}, saved"] = accumulate(batches[:cut]).merge(later).finalize().to_arrow()
    return out


def test_inner_flows_name_the_flows_that_carried_them(tmp_path):
    path, want = scenario(tmp_path)
    results = runs(str(path))
    assert len(results) > 6  # the capture really was cut into several parts
    for name, tab in results.items():
        rows = tab.to_pylist()
        assert len(rows) == 8, name
        check(rows, want)
        # decoded batches carry no payload: service columns are left out of the comparison
        same = ["service", "server_name"]
        assert tab.drop_columns(same).equals(results["stream"].drop_columns(same)), name


def test_a_parent_that_timed_out_and_came_back_is_a_second_parent(tmp_path):
    # the outer UDP flow is idle past the UDP timeout (60 s) while the inner TCP connection
    # (timeout 5 min) goes on: Zeek's set holds both outer connections
    back = eth(ip4(17, udp(4789, 51000, VXLAN + eth(inner_tcp(0x12, reply=True))), src="10.0.0.2", dst="10.0.0.1"))
    frames = [(1.0, vxlan(inner_tcp(0x02), 51000)), (1.1, back), (1.2, vxlan(inner_tcp(0x10), 51000)),
              (100.0, vxlan(inner_tcp(0x10), 51000)), (101.0, vxlan(inner_tcp(0x10), 51000))]
    path = str(write_pcap(tmp_path / "t.pcap", frames))
    for name, tab in runs(path).items():
        rows = tab.to_pylist()
        outer = sorted((r for r in rows if 4789 in (r["src_port"], r["dst_port"])), key=lambda r: r["ts_start"])
        assert [r["src_pkts"] + r["dst_pkts"] for r in outer] == [3, 2], name
        inner = row_of(rows, "192.168.1.10", 40000, "192.168.1.20", 80, "tcp")
        assert inner["tunnel_parents"] == [outer[0]["flow_id"], outer[1]["flow_id"]], name


def test_without_decapsulation_nothing_has_parents(tmp_path):
    path, _ = scenario(tmp_path)
    rows = flowkit.flows(str(path), decap=False).to_arrow().to_pylist()
    assert len(rows) == 4 and all(r["tunnel_parents"] == [] for r in rows)


def test_zeek_output_writes_the_parent_uids_and_reads_them_back(tmp_path):
    path, want = scenario(tmp_path)
    table = flowkit.flows(str(path))
    rows = table.to_arrow().to_pylist()
    out = tmp_path / "conn.log"
    table.write(out, format="zeek")
    lines = [line.split("\t") for line in out.read_text().splitlines()]
    fields = next(line[1:] for line in lines if line[0] == "#fields")
    logged = {(r[fields.index("id.orig_h")], int(r[fields.index("id.orig_p")]), r[fields.index("id.resp_h")],
               int(r[fields.index("id.resp_p")])): r[fields.index("tunnel_parents")]
              for r in lines if not r[0].startswith("#")}
    for five, parents in want.items():
        uids = {f"F{row_of(rows, *p)['flow_id']:016x}" for p in parents}
        assert set(logged[five[:4]].split(",")) == uids
    assert logged[("10.0.0.1", 51000, "10.0.0.2", 4789)] == "-"  # unset outside tunnels, as Zeek writes it
    back, _ = zeeklog.read_conn_log(str(out))
    assert back.column("tunnel_parents").to_pylist() == table.to_arrow().column("tunnel_parents").to_pylist()


def test_text_outputs_carry_the_list(tmp_path):
    path, want = scenario(tmp_path)
    table = flowkit.flows(str(path))
    rows = table.to_arrow().to_pylist()
    inner = row_of(rows, "172.16.0.1", 5353, "172.16.0.2", 53, "udp")
    buf = io.BytesIO()
    table.write(buf, format="jsonl")
    import json

    parsed = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert [p["tunnel_parents"] for p in parsed] == [r["tunnel_parents"] for r in rows]
    buf = io.BytesIO()
    table.write(buf, format="csv")
    assert " ".join(str(v) for v in inner["tunnel_parents"]) in buf.getvalue().decode()


def test_a_filtered_out_carrier_leaves_no_parent(tmp_path):
    # the packet filter applies to every row; when it drops the middle GRE row of the GRE-in-GRE
    # record, the innermost connection has no carrier among the flow packets: no parent (the
    # outer GRE row, two levels out, is not its carrier)
    path, want = scenario(tmp_path)
    rows = flowkit.flows(str(path), packet_filter="not host 10.8.0.1").to_arrow().to_pylist()
    assert row_of(rows, "192.168.1.10", 41000, "192.168.1.20", 80, "tcp")["tunnel_parents"] == []
    del want[("10.8.0.1", 0, "10.8.0.2", 0, "gre")], want[("192.168.1.10", 41000, "192.168.1.20", 80, "tcp")]
    check([r for r in rows if r["src_port"] != 41000], want)


def test_carriers_spilled_under_a_budget_still_name_their_inner_flows(tmp_path):
    # 60 VXLAN carriers (one source port each), each carrying its own inner DNS flow: more
    # connections than a 1-byte budget keeps open (8), so carriers go to disk and come back
    # at the end of the pass; each must still be found as its inner flow's parent
    frames, want = [], {}
    for j in range(60):
        query = ip4(17, udp(20000 + j, 53, b"q"), src="172.16.0.1", dst="172.16.0.2")
        frames.append((1.0 + j, vxlan(query, 30000 + j)))
        want[("172.16.0.1", 20000 + j, "172.16.0.2", 53, "udp")] = [("10.0.0.1", 30000 + j, "10.0.0.2", 4789, "udp")]
    path = str(write_pcap(tmp_path / "t.pcap", frames))
    table = flowkit.flows(path, memory=1)
    assert table.stats.spilled["open_connections"] >= 100  # carriers and inner flows went to disk
    rows = table.to_arrow().to_pylist()
    assert len(rows) == 120
    check(rows, want)
    assert table.to_arrow().equals(flowkit.flows(path).to_arrow())
