"""Machine formats on standard output: streamed, ``| head`` safe, one ISO 8601 timestamp form."""
from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from datetime import datetime, timezone

import dpkt
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, SAMPLES
from pcapgen import write_pcap

HTTP = SAMPLES / "http.pcap"
SECOND, NANOS = 1795554504, 405644123  # a timestamp with nanoseconds the capture holds


def udp_frame(src: str, sport: int, dst: str, dport: int, payload: bytes = b"x") -> bytes:
    import socket

    udp = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    udp.ulen = len(udp)
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=dpkt.ip.IP_PROTO_UDP, data=udp, ttl=64)
    ip.len = len(ip)
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=dpkt.ethernet.ETH_TYPE_IP, data=ip))


@pytest.fixture(scope="module")
def nano_pcap(tmp_path_factory):
    """One UDP exchange at SECOND.NANOS (a nanosecond pcap: the truth is the record's timestamp)."""
    path = tmp_path_factory.mktemp("nano") / "nano.pcap"
    t = SECOND * 10**9 + NANOS
    return write_pcap(path, [(t, udp_frame("10.1.0.1", 40000, "10.1.0.2", 53)),
                             (t + 1000, udp_frame("10.1.0.2", 53, "10.1.0.1", 40000))], nanosecond=True)


@pytest.fixture(scope="module")
def many_flows(tmp_path_factory):
    """4,000 one-packet UDP flows: more output than a pipe holds."""
    path = tmp_path_factory.mktemp("many") / "many.pcap"
    packets = [(1_000_000_000 + i * 1000, udp_frame("10.2.0.1", 1024 + i, "10.2.0.2", 53)) for i in range(4000)]
    return write_pcap(path, packets, nanosecond=True)


def flowkit(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "flowkit", *map(str, args)], input=stdin, capture_output=True,
                          cwd=ROOT, timeout=120)


def iso(second: int, nanos: int) -> str:
    return datetime.fromtimestamp(second, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


def test_one_timestamp_form_with_nanoseconds_everywhere(nano_pcap, tmp_path):
    expected = iso(SECOND, NANOS)
    proc = flowkit("flows", nano_pcap, "--json")
    assert json.loads(proc.stdout)["ts_start"] == expected
    proc = flowkit("flows", nano_pcap, "--format", "jsonl")
    assert proc.returncode == 0 and json.loads(proc.stdout)["ts_start"] == expected
    proc = flowkit("flows", nano_pcap, "--format", "csv")
    row = pcsv.read_csv(io.BytesIO(proc.stdout), convert_options=pcsv.ConvertOptions(
        column_types={"ts_start": "string", "ts_end": "string"})).to_pylist()[0]
    assert row["ts_start"] == expected and row["ts_end"] == iso(SECOND, NANOS + 1000)
    flowkit("flows", nano_pcap, "-o", tmp_path / "f.jsonl")
    assert json.loads((tmp_path / "f.jsonl").read_text())["ts_start"] == expected
    proc = flowkit("handshakes", SAMPLES / "refused.pcap", "--json")  # analyses too
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", json.loads(proc.stdout)["ts_start"])


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "zeek"])
def test_format_without_output_writes_that_format_to_stdout(fmt, tmp_path):
    piped = flowkit("flows", HTTP, "--format", fmt)
    assert piped.returncode == 0 and piped.stderr == b""
    flowkit("flows", HTTP, "-o", tmp_path / "file", "--format", fmt)
    stamp = re.compile(rb"^#(open|close)\t.*$", re.M)  # Zeek's lines carry the time of writing
    assert stamp.sub(b"", piped.stdout) == stamp.sub(b"", (tmp_path / "file").read_bytes())
    assert stamp.sub(b"", flowkit("flows", HTTP, "-o", "-", "--format", fmt).stdout) == stamp.sub(b"", piped.stdout)
    assert not (ROOT / "-").exists()  # no file named '-'


@pytest.mark.parametrize("target", ["-", "/dev/stdout"])
def test_parquet_to_a_pipe(target, tmp_path):
    proc = flowkit("flows", HTTP, "-o", target)
    assert proc.returncode == 0, proc.stderr
    flowkit("flows", HTTP, "-o", tmp_path / "f.parquet")
    assert pq.read_table(io.BytesIO(proc.stdout)).equals(pq.read_table(tmp_path / "f.parquet"))


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "zeek", "parquet"])
def test_a_reader_that_stops_early_is_no_error(fmt, many_flows):
    proc = subprocess.Popen([sys.executable, "-m", "flowkit", "flows", str(many_flows), "-o", "-", "--format", fmt],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(100)
    proc.stdout.close()  # like head(1) exiting
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err
    assert err == b""


def test_csv_stream_has_every_flow(many_flows):
    proc = flowkit("flows", many_flows, "--format", "csv")
    table = pcsv.read_csv(io.BytesIO(proc.stdout))
    assert table.num_rows == 4000 and sorted(table.column("src_port").to_pylist()) == list(range(1024, 5024))


def test_zeek_format_on_a_pipe_works_with_zeek_cut():
    cut = shutil.which("zeek-cut") or shutil.which("bro-cut")
    if cut is None:
        pytest.skip("zeek-cut (or bro-cut, Debian's bro-aux) is not installed (CI installs bro-aux)")
    producer = subprocess.Popen([sys.executable, "-m", "flowkit", "flows", str(HTTP), "--format", "zeek"],
                                cwd=ROOT, stdout=subprocess.PIPE)
    out = subprocess.run([cut, "id.orig_p", "id.resp_p", "conn_state"], stdin=producer.stdout,
                         capture_output=True, text=True, timeout=60).stdout
    assert producer.wait(timeout=60) == 0
    # http.pcap (sample_pcaps/README.md): 4 requests to port 80, 2 to 8080, the last one reset
    rows = [line.split("\t") for line in out.splitlines()]
    assert sorted(r[1] for r in rows) == ["80", "80", "80", "80", "8080", "8080"]
    assert [r[2] for r in rows].count("RSTO") == 1


def test_zeek_header_and_footer_as_zeek_writes_them():
    lines = flowkit("flows", HTTP, "--format", "zeek").stdout.decode().splitlines()
    # Zeek's ASCII writer: these header lines in this order, #fields and #types after #open, #close last
    assert [line.split("\t")[0].split(" ")[0] for line in lines[:8]] == [
        "#separator", "#set_separator", "#empty_field", "#unset_field", "#path", "#open", "#fields", "#types"]
    assert re.fullmatch(r"#open\t\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d", lines[5])
    assert re.fullmatch(r"#close\t\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d", lines[-1])


def test_parquet_is_not_written_to_a_terminal(tmp_path):
    import os
    import pty

    master, slave = pty.openpty()
    proc = subprocess.run([sys.executable, "-m", "flowkit", "flows", str(HTTP), "-o", "-"], stdout=slave,
                          stderr=subprocess.PIPE, cwd=ROOT, timeout=120)
    os.close(slave)
    os.close(master)
    assert proc.returncode == 2 and b"not written to a terminal" in proc.stderr


def test_output_that_is_an_input_is_refused(tmp_path):
    capture = tmp_path / "victim.pcap"
    capture.write_bytes(HTTP.read_bytes())
    proc = flowkit("flows", capture, "--format", "csv", "-o", capture)
    assert proc.returncode == 2 and b"is also an input" in proc.stderr
    assert capture.read_bytes() == HTTP.read_bytes()
    proc = flowkit("report", capture, "-o", tmp_path / "x.html")
    assert proc.returncode == 0  # a different output is fine
