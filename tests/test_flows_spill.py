"""Spilled flow tables (``spill_rows``): same rows, same order, same bytes as in memory.

Truth for the dpkt capture is how it was built: N UDP conversations whose start
times, ports and packet counts the test chose, some starting at the same instant
and some outliving many later ones (so runs overlap in time and the merge matters).
"""
from __future__ import annotations

import gc
import os

import pytest

import flowkit
import flowkit.flows
from flowgen import pkt, write_pcap
from conftest import CORPUS, SAMPLES

FORMATS = ["parquet", "csv", "jsonl", "log"]
N_SHORT = 1500  # short conversations, 3 packets each
N_LONG = 40  # conversations spanning the capture, outliving many short ones


def _many_flows(path):
    packets = []
    for i in range(N_SHORT):
        t = 1.0 + (i // 2) * 0.01  # pairs of conversations start at the same instant
        cport = 10000 + i
        packets += [
            pkt(t, "10.0.0.1", cport, "10.0.1.1", 53, proto="udp", payload=30),
            pkt(t + 0.001, "10.0.1.1", 53, "10.0.0.1", cport, proto="udp", payload=90),
            pkt(t + 0.002, "10.0.0.1", cport, "10.0.1.1", 53, proto="udp", payload=30),
        ]
    end = 1.0 + (N_SHORT // 2) * 0.01
    for j in range(N_LONG):
        t0 = 1.0 + j * 0.05
        # one packet every 0.2 s: below the 0.5 s UDP timeout the tests use, so one connection
        for step in range(int((end - t0) / 0.2) + 1):
            packets.append(pkt(t0 + step * 0.2, "10.0.2.1", 40000 + j, "10.0.3.1", 4000, proto="udp", payload=10))
    packets.sort(key=lambda p: p["ts"])
    write_pcap(path, packets)
    return path


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    return _many_flows(tmp_path_factory.mktemp("spill") / "many.pcap")


def _captures(many):
    out = [("many", many, {"udp_timeout": 0.5, "chunk_bytes": 16384}, 200)]
    mixed = SAMPLES / "mixed.pcap"
    if mixed.exists():
        out.append(("mixed", mixed, {}, 3))
    for name, rows in (("dnscrypt-v1-and-resolver-pings", 20), ("pps", 10)):
        corpus = CORPUS / "nfstream" / f"{name}.pcap"
        if corpus.exists():
            out.append((name, corpus, {"chunk_bytes": 16384}, rows))
    return out


def _stable(data: bytes) -> bytes:
    """The output without the wall-clock #open/#close lines of the Zeek format."""
    return b"\n".join(line for line in data.split(b"\n") if not line.startswith((b"#open", b"#close")))


@pytest.mark.parametrize("which", ["many", "mixed", "dnscrypt-v1-and-resolver-pings", "pps"])
def test_spilled_output_is_identical(many, tmp_path, which):
    found = {name: (path, opts, rows) for name, path, opts, rows in _captures(many)}
    if which not in found:
        pytest.skip(f"{which} capture not available")
    path, opts, rows = found[which]
    plain = flowkit.flows(path, spill_rows=None, **opts)
    spilled = flowkit.flows(path, spill_rows=rows, spill_dir=str(tmp_path), **opts)
    assert not plain.spilled and spilled.spilled
    assert len(spilled) == len(plain) and spilled.stats.packets == plain.stats.packets
    for fmt in FORMATS:
        a = plain.write(tmp_path / f"plain.{fmt}")
        b = spilled.write(tmp_path / f"spilled.{fmt}")
        assert _stable(a.read_bytes()) == _stable(b.read_bytes()), fmt
    assert spilled.to_arrow().equals(plain.to_arrow())
    assert spilled.to_pandas().equals(plain.to_pandas())


def test_many_flows_spill_in_several_runs_and_match_the_capture(many, tmp_path):
    # the short conversations finish in start order and stream into the first run; the long
    # ones finish last but sort early, so they make further runs (at 10 rows each)
    table = flowkit.flows(many, spill_rows=10, spill_dir=str(tmp_path), udp_timeout=0.5, chunk_bytes=16384)
    runs = table._spilled.spill.runs
    assert len(runs) >= 4 and all(os.path.exists(r) for r in runs)
    assert len(table) == N_SHORT + N_LONG
    df = table.to_pandas()
    assert len(df) == N_SHORT + N_LONG
    ts = df["ts_start"].astype("int64").to_numpy()
    fid = df["flow_id"].to_numpy()
    # sorted by (ts_start, flow_id), including the pairs that start together
    assert all((ts[i], fid[i]) <= (ts[i + 1], fid[i + 1]) for i in range(len(df) - 1))
    short = df[df["dst_port"] == 53]
    assert sorted(short["src_port"]) == list(range(10000, 10000 + N_SHORT))
    assert (short["src_pkts"] == 2).all() and (short["dst_pkts"] == 1).all()
    assert (short["src_payload_bytes"] == 60).all() and (short["dst_payload_bytes"] == 90).all()
    assert sorted(df[df["dst_port"] == 4000]["src_port"]) == list(range(40000, 40000 + N_LONG))


def test_spill_files_go_with_the_table(many, tmp_path):
    spill_dir = tmp_path / "spill"
    spill_dir.mkdir()
    table = flowkit.flows(many, spill_rows=300, spill_dir=str(spill_dir), udp_timeout=0.5, chunk_bytes=16384)
    assert table.spilled and any(spill_dir.iterdir())
    del table
    gc.collect()
    assert not any(spill_dir.iterdir())

    table = flowkit.flows(many, spill_rows=300, spill_dir=str(spill_dir), udp_timeout=0.5, chunk_bytes=16384)
    n = len(table)
    table.to_arrow()  # materialised: the runs are no longer needed
    assert not any(spill_dir.iterdir()) and len(table) == n == N_SHORT + N_LONG


def test_mergeable_states_never_spill(many):
    from flowkit.decode import packets

    options = flowkit.flows.FlowOptions(udp_timeout=0.5, spill_rows=10)
    state = flowkit.flows.accumulate(packets(many, chunk_bytes=16384), options)
    assert state.done.spill is None
    assert len(state.finalize()) == N_SHORT + N_LONG
