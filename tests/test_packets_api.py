"""flowkit.packets(): sources, streaming batches, the ledger, damage, filters, pandas."""
from __future__ import annotations

import ipaddress
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

import flowkit
from conftest import ROOT
from flowkit.decode import PacketTable
from flowkit.decode.schema import PACKET_SCHEMA, Status
from flowkit.errors import CaptureError, FlowkitError
from pcapgen import pcap_header, pcap_record, write_pcap
from test_engines_diff import eth, icmp, ip4, ip6, tcp, udp

# What the capture below holds, by construction (ledger category -> count). The two later
# fragments never meet their first fragment: their datagram is given up at the end.
COMPOSITION = {"tcp": 40, "udp": 25, "icmp": 6, "other_ip": 3, "fragment_incomplete": 2, "non_ip": 4, "truncated": 1,
               "malformed": 2}


def built_packets() -> list[bytes]:
    out = []
    for k in range(40):
        out.append(eth(0x0800, ip4(6, tcp(sport=40000 + k, dport=443, payload=b"t" * k), src=f"10.0.{k}.1", dst="10.9.9.9")))
    for k in range(25):
        out.append(eth(0x86DD, ip6(17, udp(sport=5000 + k, dport=53), src=f"2001:db8::{k + 1:x}", dst="2001:db8:ffff::1")))
    out += [eth(0x0800, ip4(1, icmp(8, 0))) for _ in range(6)]
    out += [eth(0x0800, ip4(47, b"g" * 10)) for _ in range(3)]
    out += [eth(0x0800, ip4(17, b"f" * 16, offset=8)) for _ in range(2)]
    out += [eth(0x0806, bytes(28)) for _ in range(4)]
    out.append(eth(0x0800, ip4(6, tcp()))[:20])
    out += [eth(0x0800, ip4(6, tcp(), hl=3)) for _ in range(2)]
    return out


@pytest.fixture
def capture(tmp_path):
    packets = built_packets()
    assert len(packets) == sum(COMPOSITION.values())
    path = write_pcap(tmp_path / "built.pcap", [(1_700_000_000 + k / 8, p) for k, p in enumerate(packets)])
    return path, packets


def test_batches_stream_one_per_chunk_with_the_packet_schema(capture):
    path, packets = capture
    table = flowkit.packets(path, chunk_bytes=2048)
    batches = list(table)
    assert len(batches) > 3  # the capture is ~7 KB: several chunks
    assert all(isinstance(b, pa.RecordBatch) and b.schema == PACKET_SCHEMA for b in batches)
    whole = pa.Table.from_batches(batches)
    assert whole.column("index").to_pylist() == list(range(len(packets)))
    assert whole.column("caplen").to_pylist() == [len(p) for p in packets]
    assert whole.equals(flowkit.packets(path, chunk_bytes=1 << 20).to_arrow())
    assert table.schema == PACKET_SCHEMA


def test_ledger_counts_every_packet_in_its_category(capture):
    path, packets = capture
    for engine in ("fast", "dpkt"):
        stats = flowkit.packets(path, engine).stats  # before iterating: consumes the source once
        stats.check()
        assert stats.packets == len(packets)
        assert {k: v for k, v in stats.counts.items() if v} == COMPOSITION
        assert stats.bytes_read == sum(len(p) for p in packets)
        assert stats.damage == []


def test_stats_complete_after_iteration(capture):
    path, packets = capture
    table = flowkit.packets(path, chunk_bytes=1024)
    rows = sum(b.num_rows for b in table)
    assert rows == table.stats.packets == len(packets)


def test_every_source_kind(capture, tmp_path):
    path, packets = capture
    n = len(packets)
    assert flowkit.packets(str(path)).stats.packets == n
    with open(path, "rb") as f:
        assert flowkit.packets(f).to_arrow().num_rows == n
    both = flowkit.packets([path, path])
    table = both.to_arrow()
    assert table.num_rows == both.stats.packets == 2 * n
    assert both.stats.counts["tcp"] == 2 * COMPOSITION["tcp"]
    script = "import flowkit; t = flowkit.packets('-'); print(t.to_arrow().num_rows, t.stats.counts['udp'])"
    with open(path, "rb") as f:
        out = subprocess.run([sys.executable, "-c", script], stdin=f, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(n), str(COMPOSITION["udp"])]


def test_to_pandas_shows_addresses_as_text(capture):
    path, _ = capture
    df = flowkit.packets(path).to_pandas()
    assert df["src_ip"].iloc[0] == "10.0.0.1" and df["dst_ip"].iloc[0] == "10.9.9.9"
    assert df["src_ip"].iloc[40] == str(ipaddress.ip_address("2001:db8::1"))
    assert df["dst_ip"].iloc[64] == "2001:db8:ffff::1"
    assert df["src_port"].iloc[39] == 40039
    assert (df["status"] == Status.NON_IP).sum() == COMPOSITION["non_ip"]


def test_damage_is_kept_in_the_ledger_and_strict_raises(tmp_path):
    good = [eth(0x0800, ip4(17, udp())) for _ in range(5)]
    data = pcap_header() + b"".join(pcap_record(1.0 + k, p) for k, p in enumerate(good))
    cut = pcap_record(9.0, good[0])[:30]  # the file ends inside the last record's data
    path = tmp_path / "cut.pcap"
    path.write_bytes(data + cut)
    table = flowkit.packets(path)
    assert table.to_arrow().num_rows == 5
    stats = table.stats
    stats.check()
    assert stats.packets == 5 and stats.counts["udp"] == 5
    assert len(stats.damage) == 1
    assert stats.damage[0].offset == len(data) and "cut.pcap" in str(stats.damage[0])
    with pytest.raises(CaptureError) as err:
        flowkit.packets(path, strict=True).to_arrow()
    assert "cut.pcap" in str(err.value) and str(len(data)) in str(err.value)


def test_filter_drops_rows_after_counting(capture):
    path, packets = capture

    def only_tcp(batch: pa.RecordBatch) -> np.ndarray:
        return batch.column("ip_proto").to_numpy() == 6

    table = flowkit.packets(path, filter=only_tcp, chunk_bytes=2048)
    rows = table.to_arrow()
    # TCP rows: the 40 OK ones plus the 2 malformed IPv4 headers that still say protocol 6
    assert rows.num_rows == 40 + 2
    assert set(rows.column("ip_proto").to_pylist()) == {6}
    assert table.stats.packets == len(packets)  # the ledger still sees every packet
    table.stats.check()


def test_string_filter_uses_the_filter_compiler(capture):
    pytest.importorskip("flowkit.filter")
    path, _ = capture
    rows = flowkit.packets(path, filter="udp and dst port 53").to_arrow()
    assert rows.num_rows == COMPOSITION["udp"]
    assert set(rows.column("dst_port").to_pylist()) == {53}


def test_bad_filter_mask_and_bad_engine_are_one_line_errors(capture):
    path, _ = capture
    with pytest.raises(FlowkitError, match="mask of shape"):
        flowkit.packets(path, filter=lambda b: np.ones(3, bool)).to_arrow()
    with pytest.raises(FlowkitError, match="unknown engine 'nope'"):
        flowkit.packets(path, engine="nope")
    with pytest.raises(TypeError):
        flowkit.packets(path, filter=42)


def test_reading_is_lazy_and_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.pcap"
    table = flowkit.packets(missing)  # nothing is opened yet
    assert isinstance(table, PacketTable)
    with pytest.raises(FlowkitError) as err:
        table.to_arrow()
    assert "missing.pcap" in str(err.value)


def test_empty_capture_gives_an_empty_table(tmp_path):
    path = tmp_path / "empty.pcap"
    path.write_bytes(pcap_header())
    table = flowkit.packets(path)
    assert list(table) == []
    arrow = table.to_arrow()
    assert arrow.num_rows == 0 and arrow.schema == PACKET_SCHEMA
    assert table.stats.packets == 0
    assert len(table.to_pandas()) == 0


def test_each_iteration_reads_the_file_again(capture):
    path, packets = capture
    table = flowkit.packets(path, engine="dpkt", chunk_bytes=4096)
    first = pa.Table.from_batches(list(table))
    stats_first = table.stats.to_dict()
    second = table.to_arrow()
    assert first.equals(second) and first.num_rows == len(packets)
    assert table.stats.to_dict() == stats_first  # a fresh ledger per iteration, not a running sum
