"""FlowOptions in three groups, the batch manifest's digest, API names and PacketTable options."""
from __future__ import annotations

import pytest

import flowkit
from conftest import SAMPLES
from flowkit.batch import manifest as mf
from flowkit.flows import FlowOptions

MIXED = SAMPLES / "mixed.pcap"


def test_digest_ignores_operational_settings():
    base = mf.options_digest(mf.options_record(FlowOptions(), stitch=False))
    for operational in ({"spill_dir": "/tmp/elsewhere"}, {"memory": 1 << 30}, {"memory": None},
                        {"spill_rows": 10}, {"chunk_bytes": 1 << 16}):
        assert mf.options_digest(mf.options_record(FlowOptions(**operational), stitch=False)) == base
    for semantic in ({"tcp_timeout": 10.0}, {"udp_timeout": 5.0}, {"active_timeout": 60.0},
                     {"packet_filter": "tcp"}, {"engine": "dpkt"}, {"strict": True}):
        assert mf.options_digest(mf.options_record(FlowOptions(**semantic), stitch=False)) != base


def test_groups_hold_every_field_once():
    o = FlowOptions(tcp_timeout=7.0, memory=123, packet_filter="udp")
    groups = [o.read, o.semantics, o.resources]
    names = [n for g in groups for n in g.__dataclass_fields__]
    assert sorted(names) == sorted(FlowOptions.__dataclass_fields__)
    assert (o.semantics.tcp_timeout, o.resources.memory, o.read.packet_filter) == (7.0, 123, "udp")


def test_packet_filter_and_its_deprecated_spelling_give_the_same_flows():
    new = flowkit.flows(str(MIXED), packet_filter="udp").to_arrow()
    with pytest.warns(DeprecationWarning, match="packet_filter"):
        old = flowkit.flows(str(MIXED), filter="udp").to_arrow()
    assert new.equals(old) and set(new.column("proto").to_pylist()) == {"udp"}
    with pytest.raises(TypeError):
        flowkit.flows(str(MIXED), tcp_timout=3)


def test_packet_table_counts_every_packet_and_reports_each_batch():
    seen = []
    # every row reaches on_batch; the records are its rows at depth 0 (mixed.pcap's ICMP error adds
    # the row of the header it quotes)
    table = flowkit.PacketTable(str(MIXED), filter="tcp", chunk_bytes=1 << 12,
                                on_batch=lambda b: seen.append(int((b.column("tunnel_depth").to_numpy() == 0).sum())))
    kept = sum(b.num_rows for b in table)
    stats = table.stats
    assert sum(seen) == stats.packets > kept == stats.counts["tcp"]
    # decoded batches given directly are counted and filtered the same way
    direct = flowkit.PacketTable.of_batches(list(flowkit.packets(str(MIXED))), filter="tcp")
    assert sum(b.num_rows for b in direct) == kept and direct.stats.counts == stats.counts


def test_byte_ranges_split_a_capture_without_losing_a_packet():
    from flowkit.capture import split_ranges

    whole = flowkit.packets(str(MIXED)).stats.packets
    ranges = split_ranges(str(MIXED), 3)
    parts = [flowkit.PacketTable(str(MIXED), byte_range=r).stats.packets for r in ranges]
    assert len(ranges) == 3 and sum(parts) == whole and all(parts)


def test_cli_memory_option(run, tmp_path):
    out = tmp_path / "f.parquet"
    code, _, err = run("flows", str(MIXED), "--memory", "8K", "-o", str(out), "-q")
    assert code == 0, err
    assert flowkit.flows(str(MIXED), memory=None).to_arrow().equals(
        flowkit.flows(str(MIXED), memory="8K").to_arrow())
    code, _, err = run("flows", str(MIXED), "--memory", "lots", "-o", str(out))
    assert code != 0 and "--memory" in err


def test_a_packet_table_keeps_its_own_filter_and_refuses_a_second_one():
    table = flowkit.PacketTable(str(MIXED), filter="udp")
    assert set(flowkit.flows(table).to_arrow().column("proto").to_pylist()) == {"udp"}
    with pytest.raises(ValueError, match="PacketTable"):  # was silently ignored: all protocols came out
        flowkit.flows(flowkit.PacketTable(str(MIXED)), packet_filter="udp")
