"""`flowkit services` and the report's identified-services section, on a capture built with dpkt."""
from __future__ import annotations

import json

import pytest
import servicegen as g

from flowkit.report import render_html
from pcapgen import write_pcap
from test_report_html import section_text


@pytest.fixture
def capture(tmp_path):
    """SSH answering on 443, a web server on 8000, unidentifiable payload on 80, TLS on 443."""
    conns = [
        g.connection(g.ssh(), "10.0.0.1", 40001, "10.0.0.10", 443, t=1000.0),
        g.connection(g.http("intranet.example.org"), "10.0.0.1", 40002, "10.0.0.11", 8000, t=1001.0),
        g.connection([(True, b"\x01\x02\x03\x04"), (False, b"\x05\x06\x07\x08")], "10.0.0.1", 40003, "10.0.0.12", 80,
                     t=1002.0),
        g.connection(g.tls(), "10.0.0.2", 40004, "10.0.0.13", 443, t=1003.0),
    ]
    return write_pcap(tmp_path / "s.pcap", sorted((f for c in conns for f in c), key=lambda f: f[0]))


def _rows(out: str) -> dict:
    return {(r["server_ip"], r["server_port"]): r for r in map(json.loads, out.splitlines()) if r}


def test_services_command_flags(run, capture):
    rc, out, err = run("services", capture, "--json")
    assert rc == 0, err
    rows = _rows(out)
    assert rows[("10.0.0.10", 443)]["services"] == "ssh"
    assert rows[("10.0.0.10", 443)]["flags"] == "unexpected-service,off-port"
    assert rows[("10.0.0.11", 8000)]["flags"] == "off-port"
    assert rows[("10.0.0.11", 8000)]["server_names"] == "intranet.example.org"
    assert rows[("10.0.0.12", 80)]["flags"] == "unidentified"
    assert rows[("10.0.0.13", 443)]["flags"] == "" and rows[("10.0.0.13", 443)]["services"] == "ssl"
    rc, out, _ = run("services", capture, "--json", "--flagged")
    assert rc == 0 and set(_rows(out)) == {("10.0.0.10", 443), ("10.0.0.11", 8000), ("10.0.0.12", 80)}


def test_services_command_table(run, capture):
    rc, out, _ = run("services", capture)
    assert rc == 0 and "unexpected-service,off-port" in out and "secure.example.net" in out


def test_report_section(capture):
    import flowkit

    html = render_html(flowkit.flows(str(capture)).to_pandas())
    text = " ".join(section_text(html, "identified").split())
    assert "unexpected-service : 1 server" in text
    assert "off-port : 2 servers" in text
    assert "unidentified : 1 server" in text
    assert "10.0.0.10" in text and "intranet.example.org" in text


def test_services_table_writes_server_ports_without_thousands_separators(run, capture):
    rc, out, err = run("services", capture)
    assert rc == 0, err
    assert " 8000 " in out and "8,000" not in out  # a port is an identifier, not a count
