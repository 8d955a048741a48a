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
