"""Service identification rules (flowkit.protocols) on payloads built from the protocol specs.

Expected names are Zeek's (conn.log ``service``); which side must speak before a service
is named follows Zeek's dpd.sig files and analyzers (docs/services.md).
"""
from __future__ import annotations

import random
import struct

import pytest
import servicegen as g

from flowkit.protocols import SERVICES, identify, service_string

TCP, UDP = True, False

CASES = [
    ("ssl", g.tls, TCP, "secure.example.net"),
    ("http", g.http, TCP, "www.example.org"),
    ("http,ssl", g.http_connect, TCP, "secure.example.net:443"),
    ("ssh", g.ssh, TCP, ""),
    ("ftp", g.ftp, TCP, ""),
    ("smtp", g.smtp, TCP, ""),
    ("smtp,ssl", lambda: g.smtp(starttls=True), TCP, "secure.example.net"),
    ("pop3", g.pop3, TCP, ""),
    ("imap", g.imap, TCP, ""),
    ("imap,ssl", lambda: g.imap(starttls=True), TCP, "secure.example.net"),
    ("irc", g.irc, TCP, ""),
    ("dns", g.dns, UDP, ""),
    ("dns", g.dns_tcp, TCP, ""),
    ("ntp", g.ntp, UDP, ""),
    ("dhcp", g.dhcp, UDP, ""),
    ("quic,ssl", lambda: [(True, g.quic_initial())], UDP, ""),
    ("quic,ssl", lambda: [(True, g.quic_initial(0x6B3343CF))], UDP, ""),
    ("dtls", g.dtls, UDP, ""),
    ("mysql", g.mysql, TCP, ""),
    ("redis", g.redis, TCP, ""),
    ("xmpp", g.xmpp, TCP, ""),
    ("rdp", g.rdp, TCP, ""),
    ("krb", lambda: [(True, g.krb_as_req())], UDP, ""),
    ("krb_tcp", lambda: [(True, struct.pack("!I", len(g.krb_as_req())) + g.krb_as_req())], TCP, ""),
    ("modbus", g.modbus, TCP, ""),
    ("smb", g.smb, TCP, ""),
    ("dce_rpc", g.dce_rpc, TCP, ""),
    ("vxlan", g.vxlan, UDP, ""),
    ("geneve", g.geneve, UDP, ""),
    ("gtpv1", g.gtpv1, UDP, ""),
    ("teredo", g.teredo, UDP, ""),
    ("ayiya", g.ayiya, UDP, ""),
]


def names(conv, tcp=True, partial=False) -> str:
    return service_string(identify(conv, tcp=tcp, partial=partial)[0])


@pytest.mark.parametrize("want, build, tcp, server_name", CASES, ids=[f"{c[0]}-{'tcp' if c[2] else 'udp'}" for c in CASES])
def test_each_service_is_named_from_its_payload(want, build, tcp, server_name):
    services, name, _, _ = identify(build(), tcp=tcp)
    assert service_string(services) == want
    assert name == server_name


def test_every_issue_service_has_a_zeek_name():
    for s in ("ssh", "http", "ssl", "dtls", "dns", "ftp", "ftp-data", "smtp", "pop3", "imap", "irc", "irc-dcc-data",
              "ntp", "dhcp", "quic", "mysql", "redis", "xmpp", "rdp", "krb", "modbus", "smb", "dce_rpc", "vxlan",
              "geneve", "gtpv1", "teredo", "ayiya"):
        assert s in SERVICES


def test_http_from_a_request_alone_not_a_reply_alone():
    """Zeek's baselines name http when the reply never came (miss_end_data, 261 variant-08)."""
    request, reply = g.http()
    assert names([request]) == "http" and names([reply]) == ""


@pytest.mark.parametrize("build", [g.ssh, g.ftp, g.smtp, g.pop3, g.imap, g.irc, g.mysql, g.redis, g.rdp])
def test_request_reply_protocols_need_both_sides(build):
    """Zeek confirms these after the server answered (dpd.sig requires-reverse-signature)."""
    conv = build()
    for side in (True, False):
        assert names([(o, p) for o, p in conv if o == side]) == ""


def test_the_server_side_also_comes_first():
    conv = g.smtp()
    assert names(conv[::-1]) == "smtp"  # the order between sides does not matter
    assert names(g.ssh()) == "ssh"  # the server speaks first in SSH


def test_teredo_needs_valid_packets_both_ways():
    assert names(g.teredo()[:1], UDP) == ""  # Zeek's delay_teredo_confirmation
    assert names(g.teredo(), UDP) == "teredo"


def test_ssh_banner_after_other_server_lines():
    conv = [(False, b"Welcome to the host\r\nSSH-2.0-Server\r\n"), (True, b"SSH-2.0-Client\r\n")]
    assert names(conv) == "ssh"


def test_http_method_must_be_upper_case_and_versioned():
    reply = (False, b"HTTP/1.1 200 OK\r\n\r\n")
    assert names([(True, b"get / HTTP/1.1\r\n\r\n"), reply]) == ""
    assert names([(True, b"GET /\r\n\r\n"), reply]) == ""  # HTTP/0.9: no version, not confirmed


FTP_DATA = [
    (b"227 Entering Passive Mode (192,168,1,2,195,80).\r\n", False, 1, g.mapped(192, 168, 1, 2), 50000),
    (b"229 Entering Extended Passive Mode (|||50001|)\r\n", False, 1, None, 50001),
    (b"PORT 10,0,0,1,4,1\r\n", True, 0, g.mapped(10, 0, 0, 1), 1025),
    (b"EPRT |1|10.0.0.7|50003|\r\n", True, 0, g.mapped(10, 0, 0, 7), 50003),
    (b"EPRT |2|2001:db8::1|50002|\r\n", True, 0, bytes.fromhex("20010db8" + "00" * 11 + "01"), 50002),
]


@pytest.mark.parametrize("line, orig, peer, addr, port", FTP_DATA, ids=["227", "229", "PORT", "EPRT1", "EPRT2"])
def test_ftp_announces_data_connections(line, orig, peer, addr, port):
    _, _, expect, _ = identify(g.ftp([(orig, line)]))
    assert expect == [("ftp-data", peer, addr, port)]


def test_ftp_announcement_before_login_is_not_an_expectation():
    conv = [(False, b"220 ready\r\n"), (False, b"227 Entering Passive Mode (192,168,1,2,195,80).\r\n")]
    assert identify(conv)[2] == []


def test_ftp_control_channel_is_read_to_the_end():
    filler = [(True, b"NOOP\r\n"), (False, b"200 NOOP ok\r\n")] * 40
    _, _, expect, read = identify(g.ftp(filler + [(False, b"227 Entering Passive Mode (10,1,2,3,0,21)\r\n")]))
    assert all(read) and expect == [("ftp-data", 1, g.mapped(10, 1, 2, 3), 21)]


@pytest.mark.parametrize("bad", [b"99 PASV invalid\r\n", b"SYST not supported\r\n", b"230_no_space\r\n"])
def test_ftp_reply_without_valid_code_drops_ftp(bad):
    """Zeek's ftp analyzer reports a violation and the service is removed (its ftp-invalid-reply-code tests)."""
    assert names(g.ftp([(True, b"SYST\r\n"), (False, bad)])) == ""


def test_ftp_multiline_reply_is_not_a_violation():
    conv = g.ftp([(True, b"FEAT\r\n"), (False, b"211-Features:\r\nMDTM\r\n SIZE\r\n211 End\r\n")])
    assert names(conv) == "ftp"


def test_irc_dcc_send_announces_a_data_connection():
    dcc = b"PRIVMSG bob :\x01DCC SEND report.pdf 3232235778 5000 1234\x01\r\n"
    _, _, expect, _ = identify(g.irc(dcc))
    assert expect == [("irc-dcc-data", 0, g.mapped(192, 168, 1, 2), 5000)]


def test_dcc_send_outside_a_confirmed_irc_session_is_ignored():
    dcc = b"PRIVMSG bob :\x01DCC SEND report.pdf 3232235778 5000 1234\x01\r\n"
    assert identify([(True, dcc)])[2] == []


# ---- what must not be labelled ----

TRUNCATED = [
    ("tls record header only", [(True, g.client_hello()[:5])], TCP),
    ("ssh banner cut", [(True, b"SS"), (False, b"SS")], TCP),
    ("http request line cut", [(True, b"GET /index.html HT"), (False, b"HTTP/1.1 200 OK\r\n")], TCP),
    ("dns message cut", [(True, g.dns_query()[:-3])], UDP),
    ("dhcp before the cookie", [(True, g.dhcp()[0][1][:236])], UDP),
    ("quic initial cut", [(True, g.quic_initial()[:30])], UDP),
    ("mysql greeting cut", [(False, g.mysql()[0][1][:20]), g.mysql()[1]], TCP),
    ("modbus header cut", [(True, g.modbus()[0][1][:7])], TCP),
    ("smb magic cut", [(True, g.smb()[0][1][:6])], TCP),
    ("ftp reply code cut", [(False, b"22"), (True, b"USER x\r\n"), (False, b"33")], TCP),
    ("vxlan without inner frame", [(True, g.vxlan()[0][1][:12])], UDP),
    ("gtp length beyond the payload", [(True, g.gtpv1()[0][1][:-4])], UDP),
]


@pytest.mark.parametrize("conv, tcp", [c[1:] for c in TRUNCATED], ids=[c[0] for c in TRUNCATED])
def test_truncated_payloads_are_not_labelled(conv, tcp):
    assert names(conv, tcp) == ""


def test_random_payloads_are_not_labelled():
    rnd = random.Random(12)
    for _ in range(3000):
        conv = [(rnd.random() < 0.5, rnd.randbytes(rnd.randint(1, 300))) for _ in range(rnd.randint(1, 4))]
        for tcp in (TCP, UDP):
            assert names(conv, tcp) == "", conv


def test_vxlan_gpe_carrying_ethernet_is_vxlan_and_other_next_protocols_are_not():
    frame = g.vxlan()[0][1][8:]
    gpe = b"\x0c\x00\x00\x03" + b"\x00\x00\x2a\x00"  # flags I+P, next protocol 3 = Ethernet
    assert names([(True, gpe + frame)], UDP) == "vxlan"
    assert names([(True, gpe[:3] + b"\x01" + gpe[4:] + frame)], UDP) == ""  # next protocol IPv4: not an Ethernet frame
    assert names([(True, b"\x08\x00\x00\x03" + gpe[4:] + frame)], UDP) == ""  # no P flag: the byte is reserved


def test_ldap_with_long_form_lengths_is_not_modbus():
    """30 84 00 00 LL LL 02 01 ...: an LDAP bind request whose BER length fills 4 bytes."""
    body = b"\x02\x01\x01" + b"\x60\x84\x00\x00\x00\x07\x02\x01\x03\x04\x00\x80\x00"
    msg = b"\x30\x84" + struct.pack("!I", len(body)) + body
    assert names([(True, msg), (False, msg)]) == ""


def test_text_that_is_no_protocol_is_not_labelled():
    conv = [(True, b"hello there\r\n"), (False, b"hi, what do you want?\r\n"), (True, b"nothing\r\n")]
    assert names(conv) == "" and names(conv, UDP) == ""


def test_wrong_versions_are_not_labelled():
    assert names([(True, g.quic_initial(2))], UDP) == ""  # version 2 is 0x6B3343CF, not 2
    assert names([(True, g.quic_initial(dcid_len=21))], UDP) == ""  # RFC 9000: at most 20 bytes
    assert names([(True, g.client_hello(record_version=0x0205))]) == ""
    assert names([(True, b"\x00" * 48)], UDP) == ""  # NTP version 0


def test_only_the_first_packets_are_read():
    junk = [(True, b"\x00\x01junk"), (False, b"\x00\x02junk")] * 6
    services, _, _, read = identify(junk + g.ssh())
    assert services == () and read[-2:] == [False, False]


def test_a_late_first_answer_is_still_read():
    """The client sends many packets before the server speaks: the server's first bytes count."""
    client = [(True, b"SSH-2.0-client\r\n")] + [(True, bytes([i]) * 40) for i in range(20)]
    assert names(client + [(False, b"SSH-2.0-server\r\n")]) == "ssh"


def test_a_service_found_ends_the_reading():
    services, _, _, read = identify(g.tls() + [(True, b"\x17\x03\x03\x00\x10" + bytes(16))])
    assert services == ("ssl",) and read == [True, False, False]  # the ClientHello settles it


def test_server_name_only_from_complete_values():
    request = g.http()[0][1]
    cut = request[: request.index(b"example.org")]  # the capture ends inside the Host value
    assert identify([(True, cut)])[1] == ""
    assert identify([(True, request)])[1] == "www.example.org"
    assert identify([(True, g.client_hello("bad name.example"))])[1] == ""
    assert identify([(True, g.client_hello(None))])[0] == ("ssl",)


def test_partial_connections_skip_text_protocols_only():
    """Zeek's line-based analyzers skip connections whose SYN was not seen; binary ones do not."""
    assert names(g.http(), partial=True) == ""
    assert names(g.ftp(), partial=True) == ""
    assert names(g.redis(), partial=True) == "redis"
    assert names(g.tls(), partial=True) == "ssl"
