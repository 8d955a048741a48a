"""The pyshark engine: Wireshark's dissectors fill the packet schema (needs tshark)."""
from __future__ import annotations

import pyarrow as pa
import pytest

import flowkit
from conftest import CORPUS, require_tool
from flowkit.capture import read_chunks
from flowkit.decode import pyshark_engine
from flowkit.decode.schema import ACK, NS, PSH, SYN, Status
from flowkit.errors import EngineUnavailable
from pcapgen import write_pcap
from test_engines_diff import (
    DATA_EXPECT, SYN_EXPECT, TCP_DATA, TCP_SYN, UDP, Case, eth, fragment6, hop_by_hop, ip4, ip6, mapped,
    mpls, pppoe, sll2, v6, write_mix,
)  # fmt: skip

TS = 1_650_000_000_987_654_321


def _cases() -> list[Case]:
    return [
        Case("qinq-tcp", 1, eth(0x0800, ip4(6, TCP_SYN, src="10.1.1.1", dst="10.2.2.2"), [(0x88A8, 10), (0x8100, 20)]),
             {"vlan": 10, "inner_vlan": 20, "src_ip": mapped("10.1.1.1"), **SYN_EXPECT}),
        Case("mpls-ipv6-tcp", 1, eth(0x8847, mpls(ip6(6, TCP_DATA, src="2001:db8::a"))),
             {"ip_version": 6, "src_ip": v6("2001:db8::a"), **DATA_EXPECT}),
        Case("pppoe-udp", 1, eth(0x8864, pppoe(0x0021, ip4(17, UDP))), {"src_port": 5353, "udp_len": 38, "payload_len": 30}),
        Case("sll2-ipv6-frag-first", 276, sll2(0x86DD, ip6(0, hop_by_hop(44) + fragment6(17, 0, True, 77) + UDP)),
             {"ip_id": 77, "src_port": 5353, "dst_port": 53}),
        Case("ipv4-later-fragment", 101, ip4(17, b"x" * 16, offset=3, mf=True),
             {"status": Status.FRAGMENT, "frag_offset": 3, "src_port": 0}),
        Case("arp", 1, eth(0x0806, bytes(28)), {"status": Status.NON_IP, "ip_version": 0}),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    require_tool("tshark")
    cases = _cases()
    return write_mix(tmp_path_factory.mktemp("shark") / "mix.pcapng", cases), cases


def test_values_from_wireshark_match_the_construction(capture):
    path, cases = capture
    table = flowkit.packets(path, "pyshark")
    rows = table.to_arrow().to_pylist()
    assert len(rows) == len(cases)
    for i, (case, row) in enumerate(zip(cases, rows)):
        assert row["index"] == i
        assert row["linktype"] == case.linktype
        assert row["caplen"] == row["wirelen"] == len(case.data)
        for name, want in case.expect.items():
            assert row[name] == want, f"{case.name}: {name} = {row[name]!r}, built with {want!r}"
    assert rows[1]["tcp_flags"] == ACK | PSH | NS
    assert rows[0]["tcp_flags"] == SYN
    stats = table.stats
    stats.check()
    assert (stats.packets, stats.counts["tcp"], stats.counts["udp"], stats.counts["fragment"]) == (6, 2, 2, 1)


def test_timestamps_are_exact_nanoseconds(tmp_path):
    require_tool("tshark")
    packets = [(TS + k * 333, eth(0x0800, ip4(17, UDP))) for k in range(3)]
    path = write_pcap(tmp_path / "ns.pcap", packets, nanosecond=True)
    ts = flowkit.packets(path, "pyshark").to_arrow().column("ts").cast(pa.int64()).to_pylist()
    assert ts == [TS, TS + 333, TS + 666]


def test_pyshark_object_path_equals_tshark_fields(capture):
    path, _ = capture
    (chunk,) = list(read_chunks(path))
    by_fields = pyshark_engine.decode_chunk(chunk, via="fields")
    by_objects = pyshark_engine.decode_chunk(chunk, via="pyshark")
    assert by_objects.equals(by_fields)


def test_one_real_capture_through_the_api(corpus):
    require_tool("tshark")
    path = CORPUS / "nfstream" / "one_flow.pcap"
    shark = flowkit.packets(path, "pyshark").to_arrow()
    fast = flowkit.packets(path, "fast").to_arrow()
    assert shark.num_rows == fast.num_rows > 0
    for name in ("ts", "src_ip", "dst_ip", "src_port", "dst_port", "seq", "ack", "tcp_flags", "payload_len"):
        assert shark.column(name).equals(fast.column(name)), name


def test_missing_tshark_is_one_clear_line(monkeypatch, tmp_path):
    import pyshark.tshark.tshark as tshark_module

    def not_found(*args, **kwargs):
        raise tshark_module.TSharkNotFoundException("TShark not found")

    monkeypatch.setattr(tshark_module, "get_process_path", not_found)
    path = write_pcap(tmp_path / "one.pcap", [(1.0, eth(0x0800, ip4(17, UDP)))])
    with pytest.raises(EngineUnavailable) as err:
        flowkit.packets(path, "pyshark")
    message = str(err.value)
    assert "tshark" in message and "\n" not in message


def test_damaged_capture_is_framed_by_flowkit_for_every_engine(tmp_path):
    """tshark only sees the records flowkit framed, so ledgers and damage line up across engines."""
    require_tool("tshark")
    from pcapgen import pcap_header, pcap_record

    good = [eth(0x0800, ip4(17, UDP)) for _ in range(4)]
    data = pcap_header() + b"".join(pcap_record(2.0 + k, p) for k, p in enumerate(good))
    path = tmp_path / "cut.pcap"
    path.write_bytes(data + pcap_record(9.0, good[0])[:25])
    ledgers = {}
    for engine in ("fast", "dpkt", "pyshark"):
        table = flowkit.packets(path, engine)
        assert table.to_arrow().num_rows == 4
        ledgers[engine] = table.stats.to_dict()
    assert ledgers["pyshark"] == ledgers["fast"] == ledgers["dpkt"]
    assert ledgers["fast"]["udp"] == 4 and len(ledgers["fast"]["damage"]) == 1
