"""Bad input never shows a traceback: every command exits with a code and one line naming the file.

Inputs are made here: a missing path, a directory, a text file, an empty file, a capture
written with dpkt and cut inside its last record (the offset of that record follows from
how the file was written), bad filters, bad and unwritable ``-o`` paths, empty stdin.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flowgen import Conversation, write_pcap
from flowkit.cli import main

READERS = ["flows", "packets", "handshakes", "ports", "ephemeral", "exposure", "scans", "report"]


@pytest.fixture
def run(capsys, tmp_path):
    def _run(command, *args):
        extra = ["-o", tmp_path / "out.html"] if command == "report" else []
        rc = main([command, *map(str, args), *map(str, extra)])
        out, err = capsys.readouterr()
        return rc, out, err

    return _run


def one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def connection_capture(path) -> list[int]:
    """One complete TCP connection; returns the file offset of each record header."""
    c = Conversation("10.2.0.1", 41000, "10.2.0.2", 443)
    c.handshake()
    c.data(True, 200)
    c.data(False, 900)
    c.close()
    write_pcap(path, c.packets)
    offsets, at = [], 24  # pcap file header
    for p in c.packets:
        offsets.append(at)
        at += 16 + p["caplen"]  # record header + captured bytes (Ethernet frame)
    assert at == path.stat().st_size  # the offsets really are where the records are
    return offsets


@pytest.mark.parametrize("command", READERS)
def test_missing_file(run, tmp_path, command):
    missing = tmp_path / "missing.pcap"
    rc, out, err = run(command, missing)
    assert rc == 1 and out == ""
    assert one_line(err) == f"flowkit: {missing}: no such file"


@pytest.mark.parametrize("command", [c for c in READERS if c != "report"])  # report reads a directory as a dataset
def test_directory_as_capture(run, tmp_path, command):
    folder = tmp_path / "folder"
    folder.mkdir()
    rc, out, err = run(command, folder)
    assert rc == 1 and out == ""
    assert one_line(err).startswith(f"flowkit: {folder}: ")


def test_report_of_a_directory_that_is_not_a_dataset(run, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    rc, out, err = run("report", folder)
    assert rc == 1 and one_line(err).startswith(f"flowkit: {folder}")


@pytest.mark.parametrize("command", READERS)
def test_text_file(run, tmp_path, command):
    notes = tmp_path / "notes.txt"
    notes.write_text("these are notes, not packets\n")
    rc, out, err = run(command, notes)
    assert rc == 1 and out == ""
    line = one_line(err)
    assert line.startswith(f"flowkit: {notes}: offset 0: not a capture")
    assert "74 68 65 73" in line  # the first bytes, "thes"


@pytest.mark.parametrize("command", READERS)
def test_empty_file(run, tmp_path, command):
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    rc, out, err = run(command, empty)
    assert rc == 1 and out == ""
    assert one_line(err) == f"flowkit: {empty}: offset 0: empty file, not a capture"


@pytest.mark.parametrize("command", READERS)
def test_truncated_capture_warns_and_strict_fails(run, tmp_path, command):
    whole = tmp_path / "whole.pcap"
    offsets = connection_capture(whole)
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(whole.read_bytes()[: offsets[-1] + 16 + 10])  # 10 bytes into the last record's data
    rc, out, err = run(command, cut)
    assert rc == 0
    warning = one_line(err.replace(f"wrote {tmp_path / 'out.html'}\n", ""))
    assert warning.startswith(f"flowkit: warning: {cut}: offset {offsets[-1]}: ")
    rc, out, err = run(command, cut, "--strict")
    assert rc == 1 and out == ""
    assert one_line(err).startswith(f"flowkit: {cut}: offset {offsets[-1]}: ")


@pytest.mark.parametrize("command", ["flows", "packets", "handshakes", "report"])
@pytest.mark.parametrize("option", ["--filter", "--packet-filter"])
def test_bad_filter_stops_before_reading(run, tmp_path, command, option):
    if command == "packets" and option == "--packet-filter":
        pytest.skip("packets has only --filter (it filters packets)")
    missing = tmp_path / "never-read.pcap"  # the expression fails first, so the file is never opened
    rc, out, err = run(command, missing, option, "tcp and port http")
    assert rc == 1 and out == "" and "Traceback" not in err
    assert err.splitlines()[0] == "flowkit: bad filter: 'http' is not a port number (0-65535) at position 13"


@pytest.mark.parametrize("command, name", [("flows", "flows.xlsx"), ("report", "report.pdf")])
def test_output_with_an_unknown_suffix_is_a_usage_error(tmp_path, capsys, command, name):
    whole = tmp_path / "whole.pcap"
    connection_capture(whole)
    target = tmp_path / name
    rc = main([command, str(whole), "-o", str(target)])
    _, err = capsys.readouterr()
    assert rc == 2 and "Traceback" not in err
    assert f"Invalid value for '--output': {target}: " in err
    assert not target.exists()


@pytest.mark.parametrize("command, name", [("flows", "flows.parquet"), ("report", "report.html"),
                                           ("batch", "dataset")])
def test_unwritable_output(tmp_path, capsys, command, name):
    whole = tmp_path / "whole.pcap"
    connection_capture(whole)
    plain_file = tmp_path / "plain"
    plain_file.write_text("x")
    for target in (tmp_path / "no" / "such" / "dir" / name, plain_file / name):
        if command == "batch" and target.parent.name == "dir":
            continue  # batch creates missing directories
        rc = main([command, str(whole), "-o", str(target)])
        _, err = capsys.readouterr()
        assert rc == 1
        assert one_line(err).startswith(f"flowkit: {target}: cannot ")
    folder = tmp_path / f"folder{Path(name).suffix}"  # an existing directory, named as the output would be
    folder.mkdir()
    rc = main([command, str(whole), "-o", str(folder)])
    _, err = capsys.readouterr()
    if command == "batch":
        assert rc == 0  # a directory is what batch writes into
    else:
        assert rc == 1 and one_line(err) == f"flowkit: {folder}: cannot write: is a directory"


def test_flow_parquet_that_is_not_parquet(run, tmp_path):
    fake = tmp_path / "flows.parquet"
    fake.write_text("not parquet")
    rc, out, err = run("handshakes", fake)
    assert rc == 1 and one_line(err).startswith(f"flowkit: {fake}: not a flow Parquet file (")


def flowkit_process(*args, stdin: bytes):
    return subprocess.run([sys.executable, "-m", "flowkit", *map(str, args)], input=stdin,
                          capture_output=True, timeout=120)


@pytest.mark.parametrize("command", ["flows", "packets", "handshakes"])
def test_empty_stdin(command):
    proc = flowkit_process(command, "-", stdin=b"")
    assert proc.returncode == 1 and proc.stdout == b""
    assert one_line(proc.stderr.decode()) == "flowkit: <stdin>: offset 0: empty input, not a capture"


def test_text_on_stdin():
    proc = flowkit_process("flows", "-", stdin=b"GET / HTTP/1.1\r\n")
    assert proc.returncode == 1
    assert one_line(proc.stderr.decode()).startswith("flowkit: <stdin>: offset 0: not a capture")
