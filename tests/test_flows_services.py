"""The flow table's service and server_name columns, from captures built with dpkt.

Each service's conversation (tests/servicegen.py, built from its specification) is written as a
real capture once on its registered port and once on another port: the name must be the same,
since flowkit never names a service from a port. Data connections announced on FTP and IRC
control connections are named ftp-data / irc-dcc-data.
"""
from __future__ import annotations

import struct

import dpkt

import pytest
import servicegen as g

import flowkit
from pcapgen import write_pcap

TCP, UDP = True, False
# (expected service, conversation, transport, registered port, server_name)
CASES = [
    ("ssl", g.tls, TCP, 443, "secure.example.net"),
    ("http", g.http, TCP, 80, "www.example.org"),
    ("ssh", g.ssh, TCP, 22, ""),
    ("ftp", g.ftp, TCP, 21, ""),
    ("smtp,ssl", lambda: g.smtp(starttls=True), TCP, 25, "secure.example.net"),
    ("pop3", g.pop3, TCP, 110, ""),
    ("imap", g.imap, TCP, 143, ""),
    ("irc", g.irc, TCP, 6667, ""),
    ("dns", g.dns, UDP, 53, ""),
    ("dns", g.dns_tcp, TCP, 53, ""),
    ("ntp", g.ntp, UDP, 123, ""),
    ("dhcp", g.dhcp, UDP, 67, ""),
    ("quic,ssl", lambda: [(True, g.quic_initial())], UDP, 443, ""),
    ("dtls", g.dtls, UDP, 4433, ""),
    ("mysql", g.mysql, TCP, 3306, ""),
    ("redis", g.redis, TCP, 6379, ""),
    ("xmpp", g.xmpp, TCP, 5222, ""),
    ("rdp", g.rdp, TCP, 3389, ""),
    ("krb", lambda: [(True, g.krb_as_req())], UDP, 88, ""),
    ("modbus", g.modbus, TCP, 502, ""),
    ("smb", g.smb, TCP, 445, ""),
    ("dce_rpc", g.dce_rpc, TCP, 135, ""),
    ("vxlan", g.vxlan, UDP, 4789, ""),
    ("geneve", g.geneve, UDP, 6081, ""),
    ("gtpv1", g.gtpv1, UDP, 2152, ""),
    ("teredo", g.teredo, UDP, 3544, ""),
    ("ayiya", g.ayiya, UDP, 5072, ""),
]
OFF_PORT = 47000


def _flows(tmp_path, *connections, name="c.pcap"):
    frames = sorted((f for c in connections for f in c), key=lambda f: f[0])
    path = write_pcap(tmp_path / name, frames)
    return flowkit.flows(str(path)).to_pandas()


@pytest.mark.parametrize("port", ["registered", "other"])
@pytest.mark.parametrize("want, build, tcp, home, server_name", CASES, ids=[f"{c[0]}-{c[3]}" for c in CASES])
def test_service_from_payload_on_and_off_its_port(tmp_path, want, build, tcp, home, server_name, port):
    sport = home if port == "registered" else OFF_PORT
    df = _flows(tmp_path, g.connection(build(), "10.0.0.1", 40001, "10.0.0.2", sport, tcp=tcp))
    # the built connection's row; a tunnel's inner packets make rows of their own (docs/schema.md)
    df = df[df["src_port"].isin([40001, sport]) & df["dst_port"].isin([40001, sport])]
    assert len(df) == 1
    r = df.iloc[0]
    assert (r["src_ip"], r["dst_port"]) == ("10.0.0.1", sport)
    assert r["service"] == want
    assert r["server_name"] == server_name


@pytest.mark.parametrize("want, build, tcp, home, server_name", CASES[:12], ids=[c[0] for c in CASES[:12]])
def test_one_side_only_names_only_one_sided_protocols(tmp_path, want, build, tcp, home, server_name):
    """Each direction alone (the other side's payload lost): request/reply protocols stay unnamed."""
    conv = build()
    both_needed = want in ("ssh", "ftp", "smtp,ssl", "pop3", "imap", "irc")
    for side in (True, False):
        part = [(o, p) for o, p in conv if o == side]
        if not part:
            continue
        df = _flows(tmp_path, g.connection(part, "10.0.0.1", 40001, "10.0.0.2", home, tcp=tcp), name=f"{side}.pcap")
        if both_needed:  # the application protocol needs both sides (TLS in the client's part is still TLS)
            assert want.split(",")[0] not in df.iloc[0]["service"].split(","), (want, side)


def test_a_port_alone_names_nothing(tmp_path):
    conns = [g.connection([(True, b"\x01\x02garbage"), (False, b"\x03\x04more")], "10.0.0.1", 40000 + i, "10.0.0.2",
                          port, tcp=tcp, t=1000.0 + i) for i, (port, tcp) in enumerate(
        [(80, TCP), (443, TCP), (22, TCP), (21, TCP), (53, UDP), (123, UDP), (4789, UDP), (3306, TCP)])]
    df = _flows(tmp_path, *conns)
    assert len(df) == 8 and (df["service"] == "").all() and (df["server_name"] == "").all()


def test_connections_without_a_syn_are_not_read(tmp_path):
    """Zeek skips the content of partial connections: a request seen midstream names nothing."""
    frames = [f for f in g.connection(g.http(), "10.0.0.1", 40001, "10.0.0.2", 80) if f is not None][3:]
    df = _flows(tmp_path, frames)
    assert df.iloc[0]["history"].startswith(("D", "^")) and df.iloc[0]["service"] == ""


def test_http_on_the_ssh_port_is_http(tmp_path):
    df = _flows(tmp_path, g.connection(g.http(), "10.0.0.1", 40001, "10.0.0.2", 22))
    assert df.iloc[0]["service"] == "http"


PASV = [(True, b"PASV\r\n"), (False, b"227 Entering Passive Mode (10,0,0,2,195,80).\r\n")]
EPSV = [(True, b"EPSV\r\n"), (False, b"229 Entering Extended Passive Mode (|||50001|)\r\n")]
PORT = [(True, b"PORT 10,0,0,1,197,56\r\n"), (False, b"200 PORT command successful.\r\n")]
EPRT6 = [(True, b"EPRT |2|2001:db8::1|50003|\r\n"), (False, b"200 EPRT command successful.\r\n")]


@pytest.mark.parametrize("lines, client, server, data_port, v6", [
    (PASV, "10.0.0.1", "10.0.0.2", 195 * 256 + 80, False),
    (EPSV, "10.0.0.1", "10.0.0.2", 50001, False),
    (PORT, "10.0.0.2", "10.0.0.1", 197 * 256 + 56, False),  # active: the server connects to the client
    (EPRT6, "2001:db8::2", "2001:db8::1", 50003, True),
], ids=["PASV", "EPSV", "PORT", "EPRT-v6"])
def test_ftp_data_connections_are_expected(tmp_path, lines, client, server, data_port, v6):
    ctl_c, ctl_s = ("2001:db8::1", "2001:db8::2") if v6 else ("10.0.0.1", "10.0.0.2")
    control = g.connection(g.ftp(lines), ctl_c, 40001, ctl_s, 21, t=1000.0)
    # first a connection to another port of the same host, which must not take the announcement
    other = g.connection([(False, b"file contents\n")], client, 40101, server, data_port + 1, t=1000.5)
    data = g.connection([(False, b"file contents\n")], client, 40100, server, data_port, t=1001.0)
    df = _flows(tmp_path, control, data, other).set_index("dst_port")
    assert df.loc[21, "service"] == "ftp"
    assert df.loc[data_port, "service"] == "ftp-data"
    assert df.loc[data_port + 1, "service"] == ""  # not announced


def test_an_announcement_is_used_once_and_expires(tmp_path):
    control = g.connection(g.ftp(PASV), "10.0.0.1", 40001, "10.0.0.2", 21, t=1000.0)
    port = 195 * 256 + 80
    first = g.connection([(False, b"a\n")], "10.0.0.1", 40100, "10.0.0.2", port, t=1001.0)
    second = g.connection([(False, b"b\n")], "10.0.0.1", 40102, "10.0.0.2", port, t=1002.0)
    df = _flows(tmp_path, control, first, second).set_index("src_port")
    assert df.loc[40100, "service"] == "ftp-data" and df.loc[40102, "service"] == ""
    late = g.connection([(False, b"a\n")], "10.0.0.1", 40104, "10.0.0.2", port, t=1000.5 + 301)
    df = _flows(tmp_path, control, late, name="late.pcap").set_index("src_port")
    assert df.loc[40104, "service"] == ""  # Zeek schedules the analyzer for 5 minutes


def test_irc_dcc_send_expects_the_data_connection(tmp_path):
    dcc = b"PRIVMSG bob :\x01DCC SEND report.pdf 167772161 5000 1234\x01\r\n"  # 10.0.0.1
    control = g.connection(g.irc(dcc), "10.0.0.1", 40001, "10.0.0.9", 6667, t=1000.0)
    data = g.connection([(False, b"\x00" * 32)], "10.0.0.3", 40200, "10.0.0.1", 5000, t=1001.0)
    df = _flows(tmp_path, control, data).set_index("dst_port")
    assert df.loc[6667, "service"] == "irc" and df.loc[5000, "service"] == "irc-dcc-data"


def test_services_in_packet_batches_without_payload_stay_empty():
    from flowgen import batch, pkt

    df = flowkit.flows(batch([pkt(1.0, "10.0.0.1", 40000, "10.0.0.2", 80, "S")])).to_pandas()
    assert list(df["service"]) == [""] and list(df["server_name"]) == [""]


def test_the_column_is_zeeks_in_the_conn_log_output(tmp_path, run):
    path = write_pcap(tmp_path / "c.pcap", g.connection(g.ssh(), "10.0.0.1", 40001, "10.0.0.2", 2200))
    rc, out, _ = run("flows", path, "-o", tmp_path / "conn.log", "--format", "zeek")
    assert rc == 0
    rows = [ln.split("\t") for ln in (tmp_path / "conn.log").read_text().splitlines() if not ln.startswith("#")]
    fields = [ln for ln in (tmp_path / "conn.log").read_text().splitlines() if ln.startswith("#fields")][0].split("\t")[1:]
    assert dict(zip(fields, rows[0]))["service"] == "ssh"


def _tunnelled(inner_frames, wrap, port):
    """Each inner frame inside a UDP tunnel packet between two endpoints (both ways to ``port``)."""
    out = []
    for t, frm in inner_frames:
        eth = dpkt.ethernet.Ethernet(frm)
        towards = bytes(eth.data.src) == bytes([192, 168, 1, 1])
        a, b = ("10.0.0.1", "10.0.0.2") if towards else ("10.0.0.2", "10.0.0.1")
        out.append((t, g.frame(a, 40001, b, port, wrap(frm), tcp=False)))
    return out


TUNNELS = [
    ("vxlan", 4789, lambda frm: b"\x08\x00\x00\x00" + b"\x00\x00\x2a\x00" + frm),  # RFC 7348 section 5
    ("geneve", 6081, lambda frm: b"\x00\x00\x65\x58" + b"\x00\x00\x2a\x00" + frm),  # RFC 8926 section 3.4
    ("gtpv1", 2152, lambda frm: b"\x30\xff" + struct.pack("!HI", len(frm) - 14, 0x1234) + frm[14:]),  # TS 29.281
]


@pytest.mark.parametrize("service, port, wrap", TUNNELS, ids=[t[0] for t in TUNNELS])
def test_the_tunnel_is_named_and_the_connection_inside_it_too(tmp_path, service, port, wrap):
    inner = g.connection(g.http("inner.example.org"), "192.168.1.1", 50000, "192.168.1.2", 80)
    df = _flows(tmp_path, _tunnelled(inner, wrap, port))
    outer = df[df["dst_port"] == port]  # one flow each way: both endpoints send to the tunnel port
    assert len(outer) == 2 and set(outer["service"]) == {service} and set(outer["server_name"]) == {""}
    inside = df[df["dst_port"] == 80]
    assert list(inside["service"]) == ["http"] and list(inside["server_name"]) == ["inner.example.org"]
    assert list(inside["src_ip"]) == ["192.168.1.1"]
