"""Per-server identified services and their flags (analysis.server_services)."""
from __future__ import annotations

import pytest

import flowkit.analysis as A
from analysisgen import frame, tcp, udp
from flowkit.analysis.identified import flags_of


def _frame(rows_services):
    """Flows with the service / server_name values a capture would have produced."""
    df = frame([r for r, _, _ in rows_services])
    df["service"] = [s for _, s, _ in rows_services]
    df["server_name"] = [n for _, _, n in rows_services]
    return df


def _flows():
    return _frame([
        (tcp("10.0.0.1:50000 > 10.1.0.1:443", "complete"), "ssh", ""),  # SSH answering on the HTTPS port
        (tcp("10.0.0.2:50001 > 10.1.0.1:443", "complete"), "", ""),
        (tcp("10.0.0.1:50002 > 10.1.0.2:8000", "complete"), "http", "intranet.example.org"),  # web off its port
        (tcp("10.0.0.1:50003 > 10.1.0.3:22", "complete"), "http", ""),  # HTTP on the SSH port
        (tcp("10.0.0.1:50004 > 10.1.0.4:80", "complete"), "", ""),  # talks, but nothing matched
        (tcp("10.0.0.1:50005 > 10.1.0.5:443", "complete"), "ssl", "www.example.org"),
        (tcp("10.0.0.3:50006 > 10.1.0.5:443", "complete"), "ssl", "api.example.org"),
        (tcp("10.0.0.1:50007 > 10.1.0.6:41234", "complete"), "ftp-data", ""),  # passive FTP data: normal
        (tcp("10.0.0.1:50008 > 10.1.0.7:143", "complete"), "imap,ssl", ""),  # STARTTLS
        (udp("10.0.0.1:40000 > 10.1.0.8:53", answered=True), "dns", ""),
        (tcp("10.0.0.1:50009 > 10.1.0.9:7", "unanswered"), "", ""),  # no payload: not listed
    ])


def _row(out, ip, port):
    r = out[(out["server_ip"] == ip) & (out["server_port"] == port)]
    assert len(r) == 1, (ip, port)
    return r.iloc[0]


def test_flags_per_server():
    out = A.server_services(_flows())
    assert _row(out, "10.1.0.1", 443)["flags"] == "unexpected-service,off-port"
    assert _row(out, "10.1.0.1", 443)["services"] == "ssh"
    assert _row(out, "10.1.0.2", 8000)["flags"] == "off-port"  # 8000 has no IANA name in flowkit's registry
    assert _row(out, "10.1.0.3", 22)["flags"] == "unexpected-service,off-port"
    assert _row(out, "10.1.0.4", 80)["flags"] == "unidentified"
    for ip, port in (("10.1.0.5", 443), ("10.1.0.6", 41234), ("10.1.0.7", 143), ("10.1.0.8", 53)):
        assert _row(out, ip, port)["flags"] == "", (ip, port)
    assert not ((out["server_ip"] == "10.1.0.9")).any()


def test_columns_and_counts():
    out = A.server_services(_flows())
    r = _row(out, "10.1.0.5", 443)
    assert (r["flows"], r["identified_flows"], r["clients"]) == (2, 2, 2)
    assert r["server_names"] == "api.example.org,www.example.org"
    assert r["port_service"] == "https"
    r = _row(out, "10.1.0.1", 443)
    assert (r["flows"], r["identified_flows"], r["payload_flows"]) == (2, 1, 2)
    assert bool(r["unexpected_service"]) and bool(r["off_port"]) and not bool(r["unidentified"])


def test_flagged_first_and_filter():
    out = A.server_services(_flows())
    n = out["flags"].map(lambda f: len([x for x in f.split(",") if x]))
    assert list(n) == sorted(n, reverse=True)
    flagged = A.server_services(_flows(), flagged_only=True)
    assert set(zip(flagged["server_ip"], flagged["server_port"])) == {
        ("10.1.0.1", 443), ("10.1.0.2", 8000), ("10.1.0.3", 22), ("10.1.0.4", 80)}


@pytest.mark.parametrize("services, port, proto, payload, want", [
    ("ssl", 443, "tcp", True, []),
    ("quic,ssl", 443, "udp", True, []),
    ("ssl", 5228, "tcp", True, ["off-port"]),  # no IANA name for 5228 in flowkit's registry
    ("http", 25, "tcp", True, ["unexpected-service", "off-port"]),
    ("smtp,ssl", 25, "tcp", True, []),  # STARTTLS
    ("http", 8080, "tcp", True, []),  # http-alt
    ("ssh", 2200, "tcp", True, ["off-port"]),  # no IANA name for 2200 in flowkit's registry
    ("dns", 5353, "udp", True, []),
    ("", 53, "udp", True, ["unidentified"]),
    ("", 53, "udp", False, []),  # no payload: nothing to identify
    ("", 514, "udp", True, []),  # syslog: not a protocol flowkit identifies
    ("", 8080, "tcp", True, []),  # not a well-known port
    ("irc-dcc-data", 59130, "tcp", True, []),
])
def test_flag_rules(services, port, proto, payload, want):
    assert flags_of(services, port, proto, payload) == want


def test_needs_the_service_column():
    with pytest.raises(A.AnalysisInputError, match="service"):
        A.server_services(frame([tcp("10.0.0.1:1 > 10.0.0.2:80", "complete")]).drop(columns=["service"]))


def test_zeek_removed_services_do_not_count():
    """A conn.log's 'ftp,-ftp' (Zeek removed the analyzer after a violation) is no service."""
    df = _frame([(tcp("10.0.0.1:50000 > 10.1.0.1:21", "complete"), "ftp,-ftp", ""),
                 (tcp("10.0.0.1:50001 > 10.1.0.2:21", "complete"), "ftp", "")])
    out = A.server_services(df)
    assert _row(out, "10.1.0.1", 21)["services"] == "" and _row(out, "10.1.0.1", 21)["flags"] == "unidentified"
    assert _row(out, "10.1.0.2", 21)["services"] == "ftp"
