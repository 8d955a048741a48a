"""Content gaps: missed_bytes and the g/G history letter, from built TCP conversations.

Truth: which segments were left out of the capture while the peer acknowledged them.
Zeek's rule (TCP_Reassembler::Undelivered, conn/main.zeek's content_gap handler): bytes the
peer acknowledged that were never seen are missed; counted only while both endpoints are
established (or closing cleanly), so midstream connections report none. Corpus baselines
with gaps: core.tcp.miss-end-data (2902 bytes, ShADafgF) and ftp/cwd-navigation (233, ShAdDaGg).
"""
from __future__ import annotations

import flowkit
from flowgen import Conversation, batch, pkt


def row_of(packets):
    df = flowkit.flows([batch(packets)]).to_pandas()
    assert len(df) == 1
    return df.iloc[0]


def test_a_segment_missing_but_acknowledged_is_a_gap():
    c = Conversation("10.0.0.1", 40000, "10.0.0.2", 80).handshake()
    c.data(True, 100)
    c.cseq += 300  # a 300-byte segment the capture never saw
    c.data(True, 50)
    c.ack(False)  # the server acknowledges all 450 bytes
    c.close()
    r = row_of(c.packets)
    assert r.missed_bytes == 300
    assert r.src_payload_bytes == 450  # payload from sequence numbers includes the gap, as Zeek
    assert "G" in r.history and "g" not in r.history


def test_a_reordered_segment_fills_the_hole_before_the_ack():
    c = Conversation("10.0.0.1", 40001, "10.0.0.2", 80).handshake()
    c.data(True, 100)
    late = dict(c.data(True, 300))  # sent now, but captured after the next one
    c.data(True, 50)
    c.packets.remove(next(p for p in c.packets if p["seq"] == late["seq"] and p["payload_len"] == 300))
    late["ts"] += 1_000_000  # 1 ms later, before the ACK below
    c.packets.append(late)
    c.ack(False, dt=0.05)
    r = row_of(sorted(c.packets, key=lambda p: p["ts"]))
    assert r.missed_bytes == 0 and "G" not in r.history


def test_server_data_gap_is_lower_case():
    c = Conversation("10.0.0.1", 40002, "10.0.0.2", 80).handshake()
    c.data(True, 10)
    c.data(False, 1000)
    c.sseq += 1460  # lost server segment
    c.data(False, 500)
    c.ack(True)
    r = row_of(c.packets)
    assert r.missed_bytes == 1460
    assert "g" in r.history and "G" not in r.history


def test_ack_of_the_fin_is_not_a_gap():
    c = Conversation("10.0.0.1", 40003, "10.0.0.2", 80).handshake()
    c.data(True, 100)
    c.close()
    assert row_of(c.packets).missed_bytes == 0


def test_midstream_connections_report_no_gap():
    # no handshake seen: Zeek's endpoints are partial, report_gaps_for_partial is off
    pkts = [pkt(1.0, "10.0.0.1", 40004, "10.0.0.2", 80, "PA", seq=1000, ack=9000, payload=100),
            pkt(1.1, "10.0.0.2", 80, "10.0.0.1", 40004, "A", seq=9000, ack=1600)]
    assert row_of(pkts).missed_bytes == 0


def test_zeek_format_writes_missed_bytes(tmp_path):
    c = Conversation("10.0.0.1", 40005, "10.0.0.2", 80).handshake()
    c.data(True, 100)
    c.cseq += 200
    c.data(True, 10)
    c.ack(False)
    out = tmp_path / "conn.log"
    flowkit.flows([batch(c.packets)]).write(str(out))
    lines = out.read_text().splitlines()
    fields = next(x for x in lines if x.startswith("#fields")).split("\t")[1:]
    row = dict(zip(fields, next(x for x in lines if not x.startswith("#")).split("\t")))
    assert row["missed_bytes"] == "200"
