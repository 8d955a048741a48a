"""``flowkit batch``: exit status when captures fail, and ``--split-bytes``.

Captures are written here with dpkt (tests/flowgen.py); what is expected follows from
how they were built.
"""
from __future__ import annotations

import json

import pyarrow.compute as pc
import pytest

import flowkit
from conftest import SAMPLES
from flowgen import Conversation, write_pcap

REFUSED = str(SAMPLES / "refused.pcap")


def complete_connections(path, n: int) -> None:
    """``n`` complete TCP connections one after another, each from its own client port."""
    packets = []
    for i in range(n):
        c = Conversation("10.1.0.1", 40000 + i, "10.1.0.2", 80, t=1000.0 + i)
        c.handshake()
        c.data(True, 100)
        c.data(False, 300)
        c.close()
        packets += c.packets
    write_pcap(path, packets)


def test_failed_capture_exits_1_with_one_line_each(run, tmp_path):
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"plain text, not a capture\n" * 3)
    out_dir = tmp_path / "dataset"
    rc, out, err = run("batch", REFUSED, junk, "-o", out_dir)
    assert rc == 1 and out == ""
    failed = [line for line in err.splitlines() if line.startswith("flowkit: failed: ")]
    assert failed == [line for line in failed if str(junk) in line and "offset 0" in line]
    assert len(failed) == 1
    assert "Traceback" not in err
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["totals"]["failed"] == 1 and manifest["totals"]["done"] == 1
    assert flowkit.read_dataset(str(out_dir)).num_rows == 1  # refused.pcap's one connection is kept


def test_all_captures_done_exits_0(run, tmp_path):
    rc, _, err = run("batch", REFUSED, "-o", tmp_path / "dataset", "-q")
    assert rc == 0 and err == ""


def test_split_bytes_reads_byte_ranges(run, tmp_path):
    n = 300
    capture = tmp_path / "many.pcap"
    complete_connections(capture, n)
    size = capture.stat().st_size
    rc, _, err = run("batch", capture, "-o", tmp_path / "split", "--split-bytes", "16K", "-q")
    assert rc == 0, err
    entry = json.loads((tmp_path / "split" / "manifest.json").read_text())["captures"][0]
    assert entry["pieces"] >= size // (16 << 10) >= 4
    flows = flowkit.read_dataset(str(tmp_path / "split"))
    assert flows.num_rows == n  # connections cut by range borders are merged back
    assert pc.all(pc.equal(flows["conn_state"], "SF")).as_py()
    assert entry["packets"] == n * 8  # handshake 3, data 2, close 3

    rc, _, _ = run("batch", capture, "-o", tmp_path / "whole", "--split-bytes", "0", "-q")
    assert rc == 0
    entry = json.loads((tmp_path / "whole" / "manifest.json").read_text())["captures"][0]
    assert entry["pieces"] == 1


@pytest.mark.parametrize("size", ["12X", "-5", "lots"])
def test_split_bytes_rejects_what_is_not_a_size(run, tmp_path, size):
    rc, _, err = run("batch", REFUSED, "-o", tmp_path / "d", "--split-bytes", size)
    assert rc == 2 and "--split-bytes" in err and "not a size" in err


# ---------------------------------------------------------------- failures across runs, --forget

JUNK = b"plain text, not a capture\n" * 3


def _manifest(out_dir) -> dict:
    return json.loads((out_dir / "manifest.json").read_text())


def test_failure_line_names_the_capture_once(run, tmp_path):
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(JUNK)
    rc, _, err = run("batch", REFUSED, junk, "-o", tmp_path / "dataset")
    assert rc == 1
    assert err.count(str(junk)) == 1, err


def test_failed_capture_does_not_fail_runs_without_it(run, tmp_path):
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(JUNK)
    out_dir = tmp_path / "dataset"
    assert run("batch", REFUSED, junk, "-o", out_dir, "-q")[0] == 1
    rc, _, err = run("batch", REFUSED, "-o", out_dir)
    assert rc == 0, err
    assert "failed:" not in err and "--forget" in err  # a note on the older failure, not a failure line
    assert _manifest(out_dir)["run"]["failed"] == []
    assert _manifest(out_dir)["totals"]["failed"] == 1  # still listed until forgotten
    rc, _, err = run("batch", "-o", out_dir, "--forget", junk, "-q")
    assert rc == 0 and err == ""
    m = _manifest(out_dir)
    assert [e["source"] for e in m["captures"]] == [REFUSED] and m["totals"]["failed"] == 0
    assert run("batch", REFUSED, "-o", out_dir)[0] == 0


def test_failed_capture_is_retried_and_forgotten_once_deleted(run, tmp_path):
    caps = tmp_path / "caps"
    caps.mkdir()
    complete_connections(caps / "good.pcap", 2)
    junk = caps / "later.pcap"
    junk.write_bytes(JUNK)
    out_dir = tmp_path / "dataset"
    assert run("batch", caps, "-o", out_dir, "-q")[0] == 1
    complete_connections(junk, 3)  # repaired: the next run reads it again
    rc, _, err = run("batch", caps, "-o", out_dir, "-q")
    assert rc == 0, err
    assert {e["source"]: e["status"] for e in _manifest(out_dir)["captures"]} == {
        str(caps / "good.pcap"): "done", str(junk): "done"}
    assert flowkit.read_dataset(str(out_dir)).num_rows == 5
    junk.write_bytes(JUNK)
    assert run("batch", caps, "-o", out_dir, "-q")[0] == 1
    junk.unlink()  # deleted: its failed entry has nothing in the dataset and goes with it
    rc, _, err = run("batch", caps, "-o", out_dir, "--force")
    assert rc == 0 and "flowkit: " not in err
    assert [e["source"] for e in _manifest(out_dir)["captures"]] == [str(caps / "good.pcap")]


def test_forget_removes_the_flows_of_a_done_capture(run, tmp_path):
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    complete_connections(a, 2)
    complete_connections(b, 3)
    out_dir = tmp_path / "dataset"
    assert run("batch", a, b, "-o", out_dir, "-q")[0] == 0
    assert flowkit.read_dataset(str(out_dir)).num_rows == 5
    entry_b = _manifest(out_dir)["captures"][1]
    manifest = flowkit.batch.forget(out_dir, [str(b)])
    assert manifest["totals"] == {"captures": 1, "done": 1, "failed": 0, "packets": 2 * 8, "flows": 2}
    table = flowkit.read_dataset(str(out_dir))
    assert table.num_rows == 2 and set(table["source"].to_pylist()) == {str(a)}
    assert not any((out_dir / rel).exists() for rel in [*entry_b["outputs"], entry_b["ledger"]])
    rc, _, err = run("batch", "-o", out_dir, "--forget", b)
    assert rc == 1 and err.startswith("flowkit: ") and "no capture" in err and str(b) in err


def test_forget_in_a_stitched_directory_takes_the_directory(run, tmp_path):
    caps = tmp_path / "rotated"
    caps.mkdir()
    complete_connections(caps / "part1.pcap", 2)
    complete_connections(caps / "part2.pcap", 1)
    out_dir = tmp_path / "dataset"
    assert run("batch", caps, "-o", out_dir, "--stitch", "-q")[0] == 0
    rc, _, err = run("batch", "-o", out_dir, "--forget", caps / "part1.pcap")
    assert rc == 1 and "stitched" in err
    assert flowkit.read_dataset(str(out_dir)).num_rows == 3  # nothing removed
    assert run("batch", "-o", out_dir, "--forget", caps, "-q")[0] == 0
    assert flowkit.read_dataset(str(out_dir)).num_rows == 0
    assert _manifest(out_dir)["captures"] == []


def test_batch_needs_inputs_or_forget(run, tmp_path):
    rc, _, err = run("batch", "-o", tmp_path / "dataset")
    assert rc == 2 and "--forget" in err
