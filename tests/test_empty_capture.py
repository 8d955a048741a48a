"""A zero-byte capture (file or stdin) is an error; a header-only capture has 0 packets."""
from __future__ import annotations

import gzip
import subprocess
import sys

import dpkt
import pytest

import flowkit
from flowkit.capture import read_chunks
from flowkit.errors import CaptureError


def _header_only(path):
    with open(path, "wb") as f:
        dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_EN10MB)  # writes the 24-byte file header
    assert path.stat().st_size == 24
    return path


def test_zero_byte_file_is_a_one_line_capture_error(tmp_path):
    p = tmp_path / "nothing.pcap"
    p.write_bytes(b"")
    with pytest.raises(CaptureError) as e:
        list(read_chunks(p))
    assert e.value.offset == 0 and e.value.message == "empty file, not a capture"
    assert str(e.value) == f"{p}: offset 0: empty file, not a capture"
    with pytest.raises(CaptureError, match="empty file, not a capture"):
        flowkit.flows(str(p))


def test_compressed_empty_file_names_the_compression(tmp_path):
    p = tmp_path / "nothing.pcap.gz"
    p.write_bytes(gzip.compress(b""))
    with pytest.raises(CaptureError, match=r"empty file \(gzip-compressed\), not a capture"):
        list(read_chunks(p))


def test_header_only_file_is_a_capture_with_no_packets(tmp_path):
    p = _header_only(tmp_path / "hdr.pcap")
    chunks = list(read_chunks(p))
    assert sum(len(c) for c in chunks) == 0 and all(not c.damage for c in chunks)
    table = flowkit.flows(str(p))
    assert len(table) == 0 and table.stats.packets == 0


def test_empty_stdin_fails_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "flowkit", "flows", "-", "-o", str(tmp_path / "f.parquet")],
                          input=b"", capture_output=True, timeout=120)
    err = proc.stderr.decode().strip()
    assert proc.returncode == 1, err
    # one line naming stdin and offset 0 (the CLI words stdin's case itself)
    assert "\n" not in err and err.startswith("flowkit: <stdin>: offset 0: empty"), err
    assert not (tmp_path / "f.parquet").exists()
