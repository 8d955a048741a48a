"""flowkit.batch end to end, in-process: rotated captures the test writes with dpkt.

Truth comes from how the captures are built: N complete TCP connections and M UDP
exchanges, interleaved in time across UTC midnight, then cut into rotated files at
packet boundaries inside connections.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import datetime, timezone

import dpkt
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import flowkit
from flowkit.batch import atomic
from flowkit.errors import FlowkitError

T0 = datetime(2024, 1, 1, 23, 59, 50, tzinfo=timezone.utc).timestamp()  # flows on two UTC dates
N_TCP = 24
N_UDP = 6
DATA_EACH_WAY = 3
TCP_PKTS = 3 + 2 * DATA_EACH_WAY + 4  # handshake, data and acks, FIN/ACK both ways


def _eth(src_ip: str, dst_ip: str, l4, proto: int) -> bytes:
    ip = dpkt.ip.IP(src=bytes(map(int, src_ip.split("."))), dst=bytes(map(int, dst_ip.split("."))), p=proto, ttl=64, data=l4)
    ip.len = 20 + len(bytes(l4))
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=dpkt.ethernet.ETH_TYPE_IP, data=ip))


def connection_packets(i: int, t: float) -> list[tuple[float, bytes]]:
    """One complete TCP connection (client port 40000+i) starting at t, 0.4 s between packets."""
    c, s, cp, sp = "10.0.0.1", "10.0.1.%d" % (1 + i % 3), 40000 + i, 80
    cseq, sseq = 1000 * (i + 1), 500000 * (i + 1)
    A, S, F, P = dpkt.tcp.TH_ACK, dpkt.tcp.TH_SYN, dpkt.tcp.TH_FIN, dpkt.tcp.TH_PUSH
    seg = []

    def tcp(frm_client, flags, seq, ack, payload=b""):
        sport, dport = (cp, sp) if frm_client else (sp, cp)
        l4 = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, win=65535, data=payload)
        l4.off = 5
        seg.append(_eth(c, s, l4, 6) if frm_client else _eth(s, c, l4, 6))

    tcp(True, S, cseq, 0)
    tcp(False, S | A, sseq, cseq + 1)
    tcp(True, A, cseq + 1, sseq + 1)
    cseq, sseq = cseq + 1, sseq + 1
    for k in range(DATA_EACH_WAY):
        req, resp = b"q" * (10 + k), b"r" * (100 + k)
        tcp(True, P | A, cseq, sseq, req)
        cseq += len(req)
        tcp(False, P | A, sseq, cseq, resp)
        sseq += len(resp)
    tcp(True, F | A, cseq, sseq)
    tcp(False, A, sseq, cseq + 1)
    tcp(False, F | A, sseq, cseq + 1)
    tcp(True, A, cseq + 1, sseq + 1)
    assert len(seg) == TCP_PKTS
    return [(t + 0.4 * k, p) for k, p in enumerate(seg)]


def udp_packets(i: int, t: float) -> list[tuple[float, bytes]]:
    q = dpkt.udp.UDP(sport=50000 + i, dport=53, data=b"d" * 20)
    q.ulen = 8 + 20
    r = dpkt.udp.UDP(sport=53, dport=50000 + i, data=b"a" * 60)
    r.ulen = 8 + 60
    return [(t, _eth("10.0.0.1", "10.0.2.2", q, 17)), (t + 0.05, _eth("10.0.2.2", "10.0.0.1", r, 17))]


def all_packets() -> list[tuple[float, bytes]]:
    pkts = []
    for i in range(N_TCP):
        pkts += connection_packets(i, T0 + 0.9 * i)
    for i in range(N_UDP):
        pkts += udp_packets(i, T0 + 3.1 * i + 0.2)
    return sorted(pkts, key=lambda p: p[0])


def write_pcap(path, pkts) -> None:
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_EN10MB)
        for ts, buf in pkts:
            w.writepkt(buf, ts=ts)


def write_rotated(directory, pkts, cuts, name="dump.pcap") -> list[str]:
    """Cut ``pkts`` at the given packet indices into tcpdump -C style files dump.pcap, dump.pcap1, ..."""
    os.makedirs(directory, exist_ok=True)
    bounds = [0, *cuts, len(pkts)]
    paths = []
    for k, (a, b) in enumerate(zip(bounds, bounds[1:])):
        p = os.path.join(directory, name if k == 0 else f"{name}{k}")
        write_pcap(p, pkts[a:b])
        paths.append(p)
    return paths


@pytest.fixture(scope="module")
def rotated(tmp_path_factory):
    """(unsplit pcap, directory of 4 rotated files cut inside connections)."""
    base = tmp_path_factory.mktemp("rot")
    pkts = all_packets()
    whole = str(base / "whole.pcap")
    write_pcap(whole, pkts)
    n = len(pkts)
    write_rotated(str(base / "caps"), pkts, [n // 4, n // 2 + 3, 3 * n // 4 - 1])
    return whole, str(base / "caps")


def flow_key_table(t: pa.Table) -> list[tuple]:
    cols = ["proto", "src_ip", "src_port", "dst_ip", "dst_port", "src_pkts", "dst_pkts",
            "src_payload_bytes", "dst_payload_bytes", "conn_state", "history", "ts_start", "ts_end"]
    return sorted(zip(*[t[c].to_pylist() for c in cols]))


def dataset_rows(out) -> pa.Table:
    return flowkit.read_dataset(out).sort_by([("flow_id", "ascending"), ("ts_start", "ascending")])


# --------------------------------------------------------------------------- stitching


def test_stitched_rotated_files_equal_the_unsplit_capture(rotated, tmp_path):
    whole, caps = rotated
    manifest = flowkit.batch(caps, tmp_path / "out", stitch=True)
    got = dataset_rows(tmp_path / "out")
    ref = flowkit.flows(whole).to_arrow()
    assert flow_key_table(got) == flow_key_table(ref)
    from flowkit.flows.schema import FLOW_COLUMNS  # every column, flow_id and community_id included

    order = [("flow_id", "ascending"), ("ts_start", "ascending")]
    assert got.select(FLOW_COLUMNS).sort_by(order).equals(ref.select(FLOW_COLUMNS).sort_by(order))
    # and what the construction says: every connection once, complete, with all its packets
    tcp = got.filter(pc.equal(got["proto"], "tcp"))
    assert tcp.num_rows == N_TCP
    assert set(tcp["conn_state"].to_pylist()) == {"SF"}
    assert (pc.add(tcp["src_pkts"], tcp["dst_pkts"]).to_pylist()) == [TCP_PKTS] * N_TCP
    assert got.filter(pc.equal(got["proto"], "udp")).num_rows == N_UDP
    assert manifest["totals"]["flows"] == N_TCP + N_UDP
    assert not [e for e in manifest["captures"] if "warning" in e]  # a proper rotated sequence
    assert manifest["totals"]["packets"] == N_TCP * TCP_PKTS + N_UDP * 2
    # flows start on both sides of UTC midnight: two partitions
    assert sorted(set(got["date"].to_pylist())) == ["2024-01-01", "2024-01-02"]
    # each flow's source is the rotated file holding its first packet
    files = sorted(os.listdir(caps))
    assert set(got["source"].to_pylist()) <= {os.path.join(caps, f) for f in files}
    for row_src, ts in zip(got["source"].to_pylist(), got["ts_start"].to_pylist()):
        with open(row_src, "rb") as f:
            stamps = [t for t, _ in dpkt.pcap.Reader(f)]
        assert min(stamps) - 1e-6 <= ts.timestamp() <= max(stamps) + 1e-6


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stitch_at_random_cuts_equals_the_unsplit_capture(tmp_path, seed):
    import random

    from flowkit.flows.schema import FLOW_COLUMNS

    pkts = all_packets()
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(pkts)), rng.randint(2, 12)))  # inside handshakes, data, closes
    caps = tmp_path / "caps"
    write_rotated(str(caps), pkts, cuts)
    whole = tmp_path / "whole.pcap"
    write_pcap(str(whole), pkts)
    flowkit.batch(str(caps), tmp_path / "out", stitch=True)
    order = [("flow_id", "ascending"), ("ts_start", "ascending")]
    got = flowkit.read_dataset(tmp_path / "out", columns=FLOW_COLUMNS).sort_by(order)
    assert got.equals(flowkit.flows(str(whole)).to_arrow().select(FLOW_COLUMNS).sort_by(order))


def test_without_stitch_connections_cut_by_rotation_are_split(rotated, tmp_path):
    _whole, caps = rotated
    flowkit.batch(caps, tmp_path / "out")
    tcp = flowkit.read_dataset(tmp_path / "out", filters=[("proto", "=", "tcp")])
    assert tcp.num_rows > N_TCP  # a connection crossing a cut is one flow per file
    assert sum(pc.add(tcp["src_pkts"], tcp["dst_pkts"]).to_pylist()) == N_TCP * TCP_PKTS


def test_stitch_orders_files_by_first_packet_not_by_name(tmp_path):
    pkts = all_packets()
    n = len(pkts)
    caps = tmp_path / "caps"
    caps.mkdir()
    # names in reverse time order: the z file holds the beginning
    for name, part in (("z.pcap", pkts[: n // 2]), ("a.pcap", pkts[n // 2 :])):
        write_pcap(str(caps / name), part)
    flowkit.batch(str(caps), tmp_path / "out", stitch=True)
    got = flowkit.read_dataset(tmp_path / "out", filters=[("proto", "=", "tcp")])
    assert got.num_rows == N_TCP and set(got["conn_state"].to_pylist()) == {"SF"}


# --------------------------------------------------------------------------- manifest and ledgers


def test_manifest_ledgers_and_flow_schema(rotated, tmp_path):
    import hashlib

    _whole, caps = rotated
    out = tmp_path / "out"
    m = flowkit.batch(caps, out)
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == m
    assert m["flowkit_version"] == flowkit.__version__
    assert m["options"]["stitch"] is False and "tcp_timeout" in m["options"]["flows"]
    entries = m["captures"]
    assert [os.path.basename(e["source"]) for e in entries] == ["dump.pcap", "dump.pcap1", "dump.pcap2", "dump.pcap3"]
    for e in entries:
        data = open(e["source"], "rb").read()
        assert e["size"] == len(data) and e["sha256"] == hashlib.sha256(data).hexdigest()
        assert e["status"] == "done" and e["error"] is None
        with open(e["source"], "rb") as f:
            n = sum(1 for _ in dpkt.pcap.Reader(f))
        ledger = json.loads((out / e["ledger"]).read_text())
        assert ledger["packets"] == n == e["packets"]
        assert ledger["tcp"] + ledger["udp"] == n  # the capture holds only TCP and UDP
        assert all((out / p).is_file() for p in e["outputs"])
    table = flowkit.read_dataset(out)
    from flowkit.flows.schema import FLOW_SCHEMA

    assert table.column_names == [*FLOW_SCHEMA.names, "source", "date"]
    assert table.schema.field("flow_id").type == pa.uint64()
    assert sum(e["flows"] for e in entries) == table.num_rows


def test_a_bad_capture_is_recorded_and_the_rest_is_written(rotated, tmp_path):
    _whole, caps = rotated
    bad = tmp_path / "junk.pcap"
    bad.write_bytes(b"this is not a capture at all, just text" * 10)
    m = flowkit.batch([caps, str(bad)], tmp_path / "out")
    by = {os.path.basename(e["source"]): e for e in m["captures"]}
    assert by["junk.pcap"]["status"] == "failed"
    assert "junk.pcap" in by["junk.pcap"]["error"] and "\n" not in by["junk.pcap"]["error"]
    assert m["totals"]["failed"] == 1 and m["totals"]["done"] == 4
    assert flowkit.read_dataset(tmp_path / "out").num_rows > 0


def test_unknown_flow_option_is_a_one_line_error(rotated, tmp_path):
    with pytest.raises(FlowkitError):
        flowkit.batch(rotated[1], tmp_path / "out", no_such_option=3)


# --------------------------------------------------------------------------- re-runs and resumption


def test_rerun_skips_done_captures_and_redoes_changed_ones(rotated, tmp_path):
    _whole, caps = rotated
    out = tmp_path / "out"
    first = flowkit.batch(caps, out)
    files = {p: os.stat(p).st_mtime_ns for p in map(str, out.rglob("*.parquet"))}
    again = flowkit.batch(caps, out)
    assert again["run"]["units_skipped"] == 4
    assert {p: os.stat(p).st_mtime_ns for p in map(str, out.rglob("*.parquet"))} == files
    assert again["captures"] == first["captures"]
    forced = flowkit.batch(caps, out, force=True)
    assert forced["run"]["units_skipped"] == 0
    # different options change the dataset: everything is redone
    other = flowkit.batch(caps, out, udp_timeout=1.0)
    assert other["run"]["units_skipped"] == 0


def test_changed_capture_is_redone_alone(tmp_path):
    pkts = all_packets()
    caps = tmp_path / "caps"
    n = len(pkts)
    paths = write_rotated(str(caps), pkts, [n // 3, 2 * n // 3])
    out = tmp_path / "out"
    flowkit.batch(str(caps), out)
    write_pcap(paths[1], pkts[n // 3 : n // 3 + 5])  # the middle file now holds 5 packets
    m = flowkit.batch(str(caps), out)
    assert m["run"]["units_skipped"] == 2
    mid = next(e for e in m["captures"] if e["source"] == os.path.normpath(paths[1]))
    assert mid["packets"] == 5
    got = flowkit.read_dataset(out, filters=[("source", "=", mid["source"])])
    assert sum(pc.add(got["src_pkts"], got["dst_pkts"]).to_pylist()) == 5


def test_interrupted_run_resumes_and_ends_identical(rotated, tmp_path, monkeypatch):
    _whole, caps = rotated
    clean = tmp_path / "clean"
    flowkit.batch(caps, clean)

    import flowkit.batch.run as run

    real = run._finish_unit
    calls = []

    def dies_on_second_unit(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if the user pressed ^C in the middle of the run
        return real(*a, **k)

    monkeypatch.setattr(run, "_finish_unit", dies_on_second_unit)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        flowkit.batch(caps, out)
    monkeypatch.undo()
    half = json.loads((out / "manifest.json").read_text())
    assert [e["status"] for e in half["captures"]] == ["done"]
    assert half["run"]["complete"] is False
    resumed = flowkit.batch(caps, out)
    assert resumed["run"]["units_skipped"] == 1
    assert dataset_rows(out).equals(dataset_rows(clean))


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    import flowkit
    import flowkit.batch.atomic as atomic
    real = atomic.pq.write_table
    n = [0]
    def write_then_die(table, where, **kw):
        n[0] += 1
        if n[0] == 3:  # third Parquet file: die half way through writing it
            with open(where, "wb") as f:
                f.write(b"PAR1" + b"\\0" * 100)
            os.kill(os.getpid(), signal.SIGKILL)
        return real(table, where, **kw)
    atomic.pq.write_table = write_then_die
    flowkit.batch(sys.argv[1], sys.argv[2])
    """
)


def test_killed_run_leaves_no_partial_file_visible_and_resumes(rotated, tmp_path):
    _whole, caps = rotated
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", KILLER, caps, str(out)], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    leftovers = [p for p in out.rglob("*") if p.name.startswith(atomic.TMP_PREFIX)]
    assert leftovers  # the kill really happened mid-write
    flowkit.read_dataset(out)  # what is visible is readable: the torn file is hidden
    done = json.loads((out / "manifest.json").read_text())["captures"]
    assert 1 <= len(done) <= 2
    m = flowkit.batch(caps, out)
    assert not [p for p in out.rglob("*") if p.name.startswith(atomic.TMP_PREFIX)]
    assert m["run"]["units_skipped"] == len(done)
    clean = tmp_path / "clean"
    flowkit.batch(caps, clean)
    assert dataset_rows(out).equals(dataset_rows(clean))


# --------------------------------------------------------------------------- byte ranges


def test_byte_range_split_equals_one_pass(tmp_path):
    pkts = all_packets() * 1
    big = tmp_path / "big.pcap"
    # repeat the traffic 8 times, 10 minutes apart, so the file has many 4 KiB-plus ranges
    write_pcap(str(big), [(ts + 600 * r, b) for r in range(8) for ts, b in pkts])
    m = flowkit.batch(str(big), tmp_path / "split", split_bytes=16 << 10)
    assert m["captures"][0]["pieces"] > 4
    one = flowkit.batch(str(big), tmp_path / "one", split_bytes=0)
    assert one["captures"][0]["pieces"] == 1
    a, b = dataset_rows(tmp_path / "split"), dataset_rows(tmp_path / "one")
    assert a.equals(b)
    assert a.filter(pc.equal(a["proto"], "tcp")).num_rows == 8 * N_TCP
    assert m["captures"][0]["packets"] == one["captures"][0]["packets"] == 8 * len(pkts)


def test_in_process_default_reads_big_files_in_one_pass(tmp_path, monkeypatch):
    """The automatic split is for Dask: in one process, ranges would only add merges."""
    from flowkit.batch import units

    monkeypatch.setattr(units, "AUTO_SPLIT_BYTES", 16 << 10)
    big = tmp_path / "big.pcap"
    write_pcap(str(big), [(ts + 600 * r, b) for r in range(8) for ts, b in all_packets()])
    m = flowkit.batch(str(big), tmp_path / "auto")
    assert m["captures"][0]["pieces"] == 1
    assert flowkit.batch(str(big), tmp_path / "forced", split_bytes=16 << 10)["captures"][0]["pieces"] > 4


def test_stitching_files_that_overlap_in_time_is_flagged(tmp_path):
    pkts = all_packets()
    caps = tmp_path / "caps"
    caps.mkdir()
    write_pcap(str(caps / "a.pcap"), pkts[0::2])  # two sensors' views of the same minutes,
    write_pcap(str(caps / "b.pcap"), pkts[1::2])  # not one capture cut in two
    m = flowkit.batch(str(caps), tmp_path / "out", stitch=True)
    a, b = m["captures"]
    assert "warning" not in a
    assert "b.pcap" in b["warning"] and "a.pcap" in b["warning"] and "not a rotated sequence" in b["warning"]


def test_failed_file_is_left_out_of_its_stitched_sequence(tmp_path):
    pkts = all_packets()
    n = len(pkts)
    caps = tmp_path / "caps"
    paths = write_rotated(str(caps), pkts, [n // 3, 2 * n // 3])
    with open(paths[1], "wb") as f:
        f.write(b"\x00" * 100)  # the middle file is garbage
    m = flowkit.batch(str(caps), tmp_path / "out", stitch=True)
    status = [e["status"] for e in m["captures"]]
    assert status == ["done", "failed", "done"]
    got = flowkit.read_dataset(tmp_path / "out")
    with open(paths[0], "rb") as f0, open(paths[2], "rb") as f2:
        expected = sum(1 for _ in dpkt.pcap.Reader(f0)) + sum(1 for _ in dpkt.pcap.Reader(f2))
    assert sum(pc.add(got["src_pkts"], got["dst_pkts"]).to_pylist()) == expected


# --------------------------------------------------------------------------- real captures


@pytest.mark.corpus
def test_corpus_directory_each_capture_equals_flowkit_flows(corpus, tmp_path):
    """Real third-party captures (several link types, pcapng, gzip): batch output per capture
    is exactly flowkit.flows of that capture, and its ledger is the capture's ledger."""
    picks = [corpus / "nfstream" / n for n in ("dhcp.pcapng", "443-chrome.pcap", "4in6tunnel.pcap")]
    picks.append(corpus / "zeek" / "traces" / "contentline" / "telnet-unclosed-suboption.pcapng.gz")
    picks = [p for p in picks if p.exists()]
    if len(picks) < 2:
        pytest.skip("expected corpus captures are missing")
    caps = tmp_path / "caps"
    caps.mkdir()
    for p in picks:
        (caps / p.name).symlink_to(p)
    m = flowkit.batch(str(caps), tmp_path / "out")
    assert m["totals"]["done"] == len(picks)
    for e in m["captures"]:
        ref = flowkit.flows(e["source"])
        got = flowkit.read_dataset(tmp_path / "out", filters=[("source", "=", e["source"])])
        assert flow_key_table(got) == flow_key_table(ref.to_arrow()), e["source"]
        assert e["packets"] == ref.stats.packets and e["flows"] == len(ref)
        ledger = json.loads((tmp_path / "out" / e["ledger"]).read_text())
        assert {k: ledger[k] for k in ref.stats.counts} == ref.stats.counts


def test_progress_reports_each_capture_and_skips(rotated, tmp_path):
    _whole, caps = rotated
    seen = []
    flowkit.batch(caps, tmp_path / "out", progress=lambda e: seen.append((os.path.basename(e["source"]), e["status"])))
    assert sorted(seen) == [("dump.pcap", "done"), ("dump.pcap1", "done"), ("dump.pcap2", "done"), ("dump.pcap3", "done")]
    seen.clear()
    flowkit.batch(caps, tmp_path / "out", progress=lambda e: seen.append(e["status"]))
    assert seen == ["skipped"] * 4


def test_bad_arguments_are_one_line_errors(rotated, tmp_path):
    _whole, caps = rotated
    (tmp_path / "file").write_text("x")
    with pytest.raises(FlowkitError, match="must be a directory"):
        flowkit.batch(caps, tmp_path / "file")
    with pytest.raises(FlowkitError, match="not both"):
        flowkit.batch(caps, tmp_path / "out", workers=2, scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(FlowkitError, match="at least 1"):
        flowkit.batch(caps, tmp_path / "out", workers=0)
    with pytest.raises(FlowkitError, match="unknown engine"):
        flowkit.batch(caps, tmp_path / "out", engine="nope")
    with pytest.raises(FlowkitError):
        flowkit.batch(caps, tmp_path / "out", packet_filter="tcp port banana")
    assert not (tmp_path / "out").exists()  # checked before anything was written


def test_filter_drops_flows_but_the_ledger_counts_every_packet(rotated, tmp_path):
    _whole, caps = rotated
    m = flowkit.batch(caps, tmp_path / "out", packet_filter="udp")
    got = flowkit.read_dataset(tmp_path / "out")
    assert set(got["proto"].to_pylist()) == {"udp"} and got.num_rows == N_UDP
    assert m["totals"]["packets"] == N_TCP * TCP_PKTS + N_UDP * 2


@pytest.mark.corpus
@pytest.mark.parametrize("name", ["ftp.pcap", "anyconnect-vpn.pcap", "wa_video.pcap", "coap_mqtt.pcap"])
def test_corpus_capture_read_as_byte_ranges_equals_one_pass(corpus, tmp_path, name):
    path = corpus / "nfstream" / name
    if not path.exists():
        pytest.skip(f"{path} not in the corpus")
    m = flowkit.batch(str(path), tmp_path / "split", split_bytes=128 << 10)
    assert m["captures"][0]["pieces"] >= 4  # classic pcaps of 0.6-1.2 MB
    from flowkit.flows.schema import FLOW_COLUMNS

    ref = flowkit.flows(str(path))
    order = [("flow_id", "ascending"), ("ts_start", "ascending")]
    got = flowkit.read_dataset(tmp_path / "split", columns=FLOW_COLUMNS).sort_by(order)
    assert got.equals(ref.to_arrow().select(FLOW_COLUMNS).sort_by(order))
    assert m["captures"][0]["packets"] == ref.stats.packets


def test_compressed_and_pcapng_captures_are_read_whole(tmp_path):
    import gzip

    pkts = all_packets()
    plain = tmp_path / "t.pcap"
    write_pcap(str(plain), pkts)
    caps = tmp_path / "caps"
    caps.mkdir()
    (caps / "t.pcap.gz").write_bytes(gzip.compress(plain.read_bytes()))
    with open(caps / "t.pcapng", "wb") as f:
        w = dpkt.pcapng.Writer(f, linktype=dpkt.pcap.DLT_EN10MB)
        for ts, buf in pkts:
            w.writepkt(buf, ts=ts)
    m = flowkit.batch(str(caps), tmp_path / "out", split_bytes=4096)
    assert [e["pieces"] for e in m["captures"]] == [1, 1]
    assert [e["packets"] for e in m["captures"]] == [len(pkts)] * 2
    tcp = flowkit.read_dataset(tmp_path / "out", filters=[("proto", "=", "tcp")])
    assert tcp.num_rows == 2 * N_TCP


def test_same_file_under_another_path_is_not_counted_twice(rotated, tmp_path, monkeypatch):
    _whole, caps = rotated
    out = tmp_path / "out"
    flowkit.batch(caps, out)  # absolute paths
    once = flowkit.read_dataset(out).num_rows
    monkeypatch.chdir(os.path.dirname(caps))
    m = flowkit.batch(os.path.basename(caps), out)  # the same files, relative paths
    assert flowkit.read_dataset(out).num_rows == once
    assert [e["source"] for e in m["captures"]] == [os.path.join("caps", n) for n in ("dump.pcap", "dump.pcap1", "dump.pcap2", "dump.pcap3")]
    assert len(os.listdir(out / "ledgers")) == 4


def test_interrupted_before_the_manifest_caught_up_redoes_and_ends_identical(rotated, tmp_path, monkeypatch):
    """With many captures the manifest is rewritten every few seconds only: files written after
    the last rewrite are not trusted, just redone and replaced."""
    import flowkit.batch.run as run

    _whole, caps = rotated
    clean = tmp_path / "clean"
    flowkit.batch(caps, clean)
    monkeypatch.setattr(run, "_SAVE_ALWAYS_BELOW", 0)
    monkeypatch.setattr(run, "_SAVE_EVERY", 3600.0)
    real, calls = run._finish_unit, []

    def dies_on_third_unit(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(run, "_finish_unit", dies_on_third_unit)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        flowkit.batch(caps, out)
    listed = json.loads((out / "manifest.json").read_text())["captures"]
    assert len(listed) == 1  # the first unit's save; the second unit's files exist but are not listed
    assert len(list(out.glob("ledgers/*.json"))) == 2
    monkeypatch.undo()
    resumed = flowkit.batch(caps, out)
    assert resumed["run"]["units_skipped"] == 1
    assert dataset_rows(out).equals(dataset_rows(clean))


def _ledgers(out) -> dict:
    """Each capture's ledger file, by capture (the manifest's ``ledger`` path)."""
    m = json.loads((out / "manifest.json").read_text())
    return {e["source"]: json.loads((out / e["ledger"]).read_text()) for e in m["captures"]}


@pytest.mark.parametrize("lost", ["parquet", "ledger"])
def test_resume_redoes_a_capture_whose_outputs_were_lost(rotated, tmp_path, lost):
    """A capture listed as done whose Parquet file (or ledger) is gone is read again; the
    dataset then equals a clean run's, and the other captures are skipped."""
    _whole, caps = rotated
    clean = tmp_path / "clean"
    flowkit.batch(caps, clean)
    out = tmp_path / "out"
    first = flowkit.batch(caps, out)
    victim = first["captures"][1]
    assert victim["status"] == "done" and victim["outputs"] and victim["ledger"]
    if lost == "parquet":
        for rel in victim["outputs"]:
            os.unlink(out / rel)
    else:
        os.unlink(out / victim["ledger"])
    redone = []
    again = flowkit.batch(caps, out, progress=lambda e: redone.append((e["source"], e["status"])))
    assert [s for s, status in redone if status != "skipped"] == [victim["source"]]
    assert again["run"]["units_skipped"] == len(first["captures"]) - 1
    assert all(os.path.exists(out / rel) for e in again["captures"] for rel in [*e["outputs"], e["ledger"]])
    assert dataset_rows(out).equals(dataset_rows(clean))
    assert _ledgers(out) == _ledgers(clean)
    assert again["totals"] == first["totals"]
