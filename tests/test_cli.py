"""The flowkit command on the sample captures: real commands, real output, exit codes.

These call ``flowkit.cli.main`` in-process (the same code the console script runs);
tests/test_cli_process.py runs ``python -m flowkit`` for what only a process shows.
"""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

import flowkit
from conftest import SAMPLES

MIXED, SCAN, REFUSED, DNS, HTTP = (str(SAMPLES / f"{n}.pcap") for n in ("mixed", "scan", "refused", "dns", "http"))


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# ----------------------------------------------------------------------------- usage and errors
def test_version(run):
    rc, out, _ = run("--version")
    assert (rc, out.strip()) == (0, f"flowkit {flowkit.__version__}")


@pytest.mark.parametrize(
    "args, words",
    [
        ([], "Usage"),
        (["flows"], "Missing argument"),
        (["flows", REFUSED, "--bogus"], "No such option"),
        (["flows", REFUSED, "--engine", "warp"], "'warp' is not one of fast, dpkt, pyshark"),
        (["flows", REFUSED, "--format", "xml", "-o", "x.xml"], "'xml' is not one of"),
        (["flows", REFUSED, "--limit", "many"], "Invalid value for '--limit'"),
        (["flows", REFUSED, "--idle-timeout", "-5"], "positive number of seconds"),
        (["flows", REFUSED, "--json", "-o", "x.jsonl"], "--format jsonl"),
        (["report", REFUSED], "Missing option"),
        (["nosuchcommand"], "No such command"),
    ],
)
def test_usage_errors_exit_2(run, args, words):
    rc, out, err = run(*args)
    assert rc == 2
    assert words in err + out


def test_bad_filter_points_at_the_token(run):
    rc, out, err = run("flows", REFUSED, "--filter", "tcp and port eighty")
    assert rc == 1 and out == ""
    lines = err.splitlines()
    assert lines[0].startswith("flowkit: bad filter: 'eighty' is not a port number")
    assert lines[1] == "  tcp and port eighty"
    assert lines[2] == "  " + " " * len("tcp and port ") + "^"


def test_missing_file_is_one_line(run, tmp_path):
    missing = tmp_path / "nope.pcap"
    rc, out, err = run("flows", missing)
    assert rc == 1
    assert err.strip() == f"flowkit: {missing}: no such file"


def test_not_a_capture_names_file_and_offset(run, tmp_path):
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"this is not a capture file at all" * 4)
    rc, _, err = run("handshakes", junk)
    assert rc == 1
    assert err.startswith(f"flowkit: {junk}: offset 0: ")
    assert len(err.strip().splitlines()) == 1


def test_cut_capture_warns_or_fails_with_strict(run, tmp_path):
    data = (SAMPLES / "http.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) // 2])  # ends inside a record
    rc, out, err = run("flows", cut, "--stats")
    assert rc == 0
    assert "damage:" in out and "offset" in out
    assert f"flowkit: warning: {cut}: offset" in err
    rc, out, err = run("flows", cut, "--strict")
    assert rc == 1
    assert err.startswith(f"flowkit: {cut}: offset ")
    assert "Traceback" not in err


# ----------------------------------------------------------------------------- flows
def test_flows_table_with_footer(run):
    rc, out, _ = run("flows", REFUSED)
    assert rc == 0
    assert "REJ" in out and "8081" in out and "10.99.0.2" in out
    assert out.strip().splitlines()[-1] == "1 of 1 flows"


def test_flows_limit(run):
    rc, out, _ = run("flows", SCAN, "--limit", "3")
    assert rc == 0
    lines = out.strip().splitlines()
    assert lines[-1] == "3 of 100 flows"
    assert len(lines) == 1 + 3 + 1  # header, rows, footer


def test_flows_default_limit_is_20(run):
    rc, out, _ = run("flows", SCAN)
    assert out.strip().splitlines()[-1] == "20 of 100 flows"


def test_flows_json(run):
    rc, out, _ = run("flows", HTTP, "--json")
    rows = json_lines(out)
    assert rc == 0 and len(rows) == 6
    assert sorted(r["dst_port"] for r in rows) == [80, 80, 80, 80, 8080, 8080]
    assert {r["src_ip"] for r in rows} == {"10.99.0.2"}
    assert all(r["ts_start"].startswith("20") and r["ts_start"].endswith("Z") for r in rows)


def test_flows_stats_ledger(run):
    rc, out, _ = run("flows", DNS, "--stats")
    assert rc == 0
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in ("tcp", "udp", "icmp", "total", "non_ip"):
            counts[parts[0]] = int(parts[1].replace(",", ""))
    # dns.pcap: 31 UDP packets (10 queries + 10 answers, 5 + 5 echo, 1 unanswered) and 1 ICMP
    assert counts == {"tcp": 0, "udp": 31, "icmp": 1, "non_ip": 0, "total": 32}


def test_flows_filter(run):
    rc, out, _ = run("flows", MIXED, "--filter", "src host 10.99.0.3 and tcp", "--json")
    rows = json_lines(out)
    assert rc == 0 and len(rows) == 100  # the scan, from 10.99.0.3 over ports 1-100
    assert sorted(r["dst_port"] for r in rows) == list(range(1, 101))


@pytest.mark.parametrize("name, fmt", [("f.parquet", "parquet"), ("f.csv", "csv"), ("f.jsonl", "jsonl"),
                                       ("conn.log", "zeek"), ("f.out", "csv")])
def test_flows_output_files(run, tmp_path, name, fmt):
    out_path = tmp_path / name
    args = ["flows", DNS, "-o", out_path] + (["--format", fmt] if name == "f.out" else [])
    rc, out, err = run(*args)
    assert rc == 0 and out == ""
    # dns.pcap: 12 UDP conversations and one ICMP packet (a port-unreachable), 13 flows
    assert f"wrote 13 flows to {out_path} ({fmt})" in err
    text = out_path.read_bytes()
    if fmt == "parquet":
        table = pq.read_table(out_path)
        assert table.num_rows == 13
        assert table.column("dst_port").to_pylist().count(53) == 10
        assert table.column("proto").to_pylist().count("icmp") == 1
    elif fmt == "csv":
        lines = text.decode().splitlines()
        assert len(lines) == 14 and "src_ip" in lines[0]
    elif fmt == "jsonl":
        assert len(json_lines(text.decode())) == 13
    else:
        lines = text.decode().splitlines()
        assert any(line.startswith("#fields\tts\tuid\tid.orig_h") for line in lines)
        assert sum(1 for line in lines if line and not line.startswith("#")) == 13


# ----------------------------------------------------------------------------- analyses
def test_handshakes_json_shows_refused_and_unanswered(run):
    rc, out, _ = run("handshakes", MIXED, "--json")
    rows = json_lines(out)
    assert rc == 0 and len(rows) == 411  # every TCP flow of mixed.pcap
    refused = [r for r in rows if r["dst_port"] == 8081 and r["dst_ip"] == "10.99.0.1"]
    assert [(r["conn_state"], r["outcome"]) for r in refused] == [("REJ", "rejected")]
    blackhole = [r for r in rows if r["dst_ip"] == "10.99.0.9"]
    assert [(r["conn_state"], r["outcome"]) for r in blackhole] == [("S0", "unanswered")]
    assert blackhole[0]["syn_retries"] >= 2


def test_handshakes_summary(run):
    rc, out, _ = run("handshakes", SCAN, "--summary", "--json")
    rows = {r["outcome"]: r for r in json_lines(out)}
    assert rows["rejected"]["flows"] == 99 and rows["complete"]["flows"] == 1


def test_ports(run):
    rc, out, _ = run("ports", SCAN, "--json", "--top", "100")
    rows = json_lines(out)
    tiers = [r for r in rows if r["table"] == "tiers"]
    services = [r for r in rows if r["table"] == "services"]
    well_known_tcp = [r for r in tiers if r["tier"] == "well-known" and r["proto"] == "tcp"]
    assert well_known_tcp[0]["flows"] == 100  # ports 1-100 are all system ports
    assert any(r["dst_port"] == 80 for r in services)
    rc, out, _ = run("ports", SCAN)
    assert "port tiers" in out and "services" in out


def test_ephemeral(run):
    rc, out, _ = run("ephemeral", str(SAMPLES / "ephemeral.pcap"), "--json")
    rows = json_lines(out)
    assert rc == 0 and len(rows) == 1
    assert rows[0]["client_ip"] == "10.99.0.2" and rows[0]["connections"] == 300
    assert 32768 <= rows[0]["port_min"] <= rows[0]["port_max"] <= 60999
    assert rows[0]["range"] == "linux"


def test_exposure_and_scans(run):
    rc, out, _ = run("exposure", SCAN, "--json")
    states = {r["dst_port"]: r["state"] for r in json_lines(out)}
    assert states.pop(80) == "open" and set(states.values()) == {"closed"} and len(states) == 99
    rc, out, _ = run("scans", SCAN)
    assert rc == 0
    assert "10.99.0.3" in out and "vertical" in out
    assert out.strip().splitlines()[-1] == "1 of 1 scans"


def test_analyses_read_flow_parquet(run, tmp_path):
    path = tmp_path / "flows.parquet"
    assert run("flows", MIXED, "-o", path)[0] == 0
    rc, out, _ = run("handshakes", path, "--json", "--filter", "dst port 8081")
    rows = json_lines(out)
    assert rc == 0
    # the refused connections to 8081: one over IPv4, one over IPv6
    assert sorted((r["dst_ip"], r["conn_state"]) for r in rows) == [("10.99.0.1", "REJ"), ("fd99::1", "REJ")]


def test_packets(run):
    rc, out, _ = run("packets", DNS, "--limit", "4", "--json")
    rows = json_lines(out)
    assert rc == 0 and len(rows) == 4
    assert rows[0]["dst_port"] == 53 and rows[1]["src_port"] == 53
    rc, out, _ = run("packets", DNS, "-n", "2", "--filter", "icmp", "--json", "--fields", "ip_proto,tunnel_type")
    # dns.pcap's one ICMP port unreachable, and the row of the UDP header it quotes (docs/packets.md)
    assert json_lines(out) == [{"ip_proto": 1, "tunnel_type": 0}, {"ip_proto": 17, "tunnel_type": 8}]
    rc, out, _ = run("packets", DNS, "-n", "2", "--filter", "icmp", "--no-decap")
    assert out.strip().splitlines()[-1] == "1 of 1 packets"


def test_report(run, tmp_path):
    out_path = tmp_path / "report.html"
    rc, _, err = run("report", MIXED, "-o", out_path, "--title", "sample mix")
    assert rc == 0
    html = out_path.read_text()
    assert html.lstrip().lower().startswith("<!doctype html")
    assert "sample mix" in html and "10.99.0.3" in html
    assert '<dd class="v-capture">mixed.pcap</dd>' in html  # the capture is named, not "(flow table)"


def test_batch(run, tmp_path):
    out_dir = tmp_path / "dataset"
    rc, _, err = run("batch", REFUSED, DNS, "-o", out_dir)
    assert rc == 0
    assert (out_dir / "manifest.json").is_file()
    flows = flowkit.read_dataset(str(out_dir))
    assert flows.num_rows == 1 + 13  # refused: one connection; dns: 12 UDP and one ICMP flow


def test_flow_filter_versus_packet_filter(run):
    # --filter keeps whole connections (dst = responder); --packet-filter keeps packets as
    # tcpdump would, so "dst port 8081" drops the RST coming back from port 8081
    rc, out, _ = run("handshakes", REFUSED, "--json", "--filter", "dst port 8081")
    assert [(r["conn_state"], r["outcome"]) for r in json_lines(out)] == [("REJ", "rejected")]
    rc, out, _ = run("handshakes", REFUSED, "--json", "--packet-filter", "dst port 8081")
    assert [(r["conn_state"], r["outcome"]) for r in json_lines(out)] == [("S0", "unanswered")]
    rc, out, _ = run("flows", REFUSED, "--json", "--filter", "src port 8081")
    assert rc == 0 and out == ""  # the originator's port is not 8081
    rc, out, err = run("report", str(SAMPLES), "-o", "x.html", "--filter", "tcp")
    assert rc == 2 and "dataset directory" in err


def test_udp_timeout_splits_flows(run):
    # truth from the raw packets: a UDP conversation splits wherever it is idle longer than
    # the timeout (each gap > 100 us starts a new flow)
    import dpkt

    timeout = 0.0001
    last, flows_expected = {}, 0
    with open(DNS, "rb") as f:
        for ts, buf in dpkt.pcap.Reader(f):
            ip = dpkt.ethernet.Ethernet(buf).data
            if isinstance(ip.data, dpkt.icmp.ICMP):  # one-way type (unreachable): keyed by its direction
                key = (ip.src, ip.dst, ip.data.type, ip.data.code)
            elif isinstance(ip.data, dpkt.udp.UDP):
                key = frozenset([(ip.src, ip.data.sport), (ip.dst, ip.data.dport)])
            else:
                continue
            if key not in last or ts - last[key] > timeout:
                flows_expected += 1
            last[key] = ts
    assert flows_expected > 13  # the timeout really splits something in this capture
    rc, out, _ = run("flows", DNS, "--udp-timeout", timeout, "--json")
    assert rc == 0 and len(json_lines(out)) == flows_expected
    rc, out, _ = run("flows", DNS, "--udp-timeout", 60, "--json")
    assert len(json_lines(out)) == 13


def test_several_captures_are_read_as_one(run):
    rc, out, _ = run("flows", REFUSED, str(SAMPLES / "unanswered.pcap"), "--json")
    rows = json_lines(out)
    assert rc == 0
    assert sorted((r["dst_port"], r["conn_state"]) for r in rows) == [(8081, "REJ"), (9999, "S0")]


def test_stdin_only_once(run):
    rc, _, err = run("flows", "-", "-")
    assert rc == 2 and "only once" in err


def test_active_timeout_splits_long_flows(run):
    import dpkt

    path = SAMPLES / "unanswered.pcap"  # one SYN retransmitted about once a second
    with open(path, "rb") as f:
        times = [ts for ts, _ in dpkt.pcap.Reader(f)]
    active = 1.5
    expected, start = [], None
    for ts in times:  # truth: a flow ends once it is older than the active timeout
        if start is None or ts - start > active:
            expected.append(0)
            start = ts
        expected[-1] += 1
    assert len(expected) >= 2
    rc, out, _ = run("flows", path, "--active-timeout", active, "--json")
    assert rc == 0
    assert [r["src_pkts"] for r in json_lines(out)] == expected
    assert run("flows", path, "--active-timeout", "0")[0] == 2
