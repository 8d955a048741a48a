"""Application payloads built from their specifications, for service identification tests.

Each conversation is a list of (is_orig, payload bytes) in the order sent. Binary
formats follow the RFC / vendor layout named in each builder (dpkt builds DNS, DHCP,
NTP and the inner IP packets of tunnels); the expected service names are Zeek's.
"""
from __future__ import annotations

import struct

import dpkt

IPV4 = bytes(10) + b"\xff\xff"  # IPv4-mapped IPv6 prefix (flowkit's 16-byte addresses)


def mapped(a: int, b: int, c: int, d: int) -> bytes:
    return IPV4 + bytes([a, b, c, d])


def client_hello(sni: str | None = "secure.example.net", record_version: int = 0x0301) -> bytes:
    """TLS ClientHello (RFC 8446 section 4.1.2) in one handshake record, SNI per RFC 6066."""
    ext = b""
    if sni is not None:
        name = sni.encode()
        entry = b"\x00" + struct.pack("!H", len(name)) + name
        body = struct.pack("!H", len(entry)) + entry
        ext += struct.pack("!HH", 0, len(body)) + body
    ext += struct.pack("!HH", 0x002B, 3) + b"\x02\x03\x04"  # supported_versions: TLS 1.3
    hello = (
        b"\x03\x03" + bytes(range(32))  # legacy_version, random
        + b"\x20" + bytes(32)  # session id
        + struct.pack("!H", 4) + b"\x13\x01\x13\x02"  # cipher suites
        + b"\x01\x00"  # compression: null
        + struct.pack("!H", len(ext)) + ext
    )
    hs = b"\x01" + struct.pack("!I", len(hello))[1:] + hello
    return struct.pack("!BHH", 0x16, record_version, len(hs)) + hs


def server_hello() -> bytes:
    hello = b"\x03\x03" + bytes(32) + b"\x00" + b"\x13\x01" + b"\x00" + struct.pack("!H", 6) + b"\x00\x2b\x00\x02\x03\x04"
    hs = b"\x02" + struct.pack("!I", len(hello))[1:] + hello
    return struct.pack("!BHH", 0x16, 0x0303, len(hs)) + hs


def tls() -> list:
    return [(True, client_hello()), (False, server_hello())]


def http(host: str = "www.example.org") -> list:
    return [
        (True, f"GET /index.html HTTP/1.1\r\nHost: {host}\r\nUser-Agent: test\r\n\r\n".encode()),
        (False, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ]


def http_connect() -> list:
    return [
        (True, b"CONNECT secure.example.net:443 HTTP/1.1\r\nHost: secure.example.net:443\r\n\r\n"),
        (False, b"HTTP/1.1 200 Connection established\r\n\r\n"),
    ] + tls()


def ssh() -> list:
    return [(False, b"SSH-2.0-OpenSSH_9.6p1 Debian-4\r\n"), (True, b"SSH-2.0-OpenSSH_9.2p1\r\n")]


def ftp(data_lines: list[tuple[bool, bytes]] = ()) -> list:
    return [
        (False, b"220 ftp.example.org FTP server ready\r\n"),
        (True, b"USER anonymous\r\n"),
        (False, b"331 Please specify the password.\r\n"),
        (True, b"PASS guest@\r\n"),
        (False, b"230 Login successful.\r\n"),
        *data_lines,
    ]


def smtp(starttls: bool = False) -> list:
    conv = [
        (False, b"220 mail.example.com ESMTP Postfix\r\n"),
        (True, b"EHLO client.example.com\r\n"),
        (False, b"250-mail.example.com\r\n250-STARTTLS\r\n250 8BITMIME\r\n"),
    ]
    if starttls:
        conv += [(True, b"STARTTLS\r\n"), (False, b"220 2.0.0 Ready to start TLS\r\n")] + tls()
    return conv


def pop3() -> list:
    return [(False, b"+OK POP3 server ready\r\n"), (True, b"USER bob\r\n"), (False, b"+OK\r\n")]


def imap(starttls: bool = False) -> list:
    conv = [(False, b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n"), (True, b"a001 CAPABILITY\r\n"),
            (False, b"* CAPABILITY IMAP4rev1 STARTTLS\r\na001 OK done\r\n")]
    if starttls:
        conv += [(True, b"a002 STARTTLS\r\n"), (False, b"a002 OK Begin TLS negotiation now\r\n")] + tls()
    return conv


def irc(dcc: bytes | None = None) -> list:
    conv = [
        (True, b"NICK alice\r\nUSER alice 0 * :Alice Liddell\r\n"),
        (False, b":irc.example.net 001 alice :Welcome to the network alice\r\n"),
    ]
    if dcc is not None:
        conv.append((True, dcc))
    return conv


def dns_query(name: str = "www.example.org", qid: int = 0x1234) -> bytes:
    q = dpkt.dns.DNS(id=qid, qd=[dpkt.dns.DNS.Q(name=name, type=dpkt.dns.DNS_A)])
    return bytes(q)


def dns_response(name: str = "www.example.org", qid: int = 0x1234) -> bytes:
    r = dpkt.dns.DNS(id=qid, op=dpkt.dns.DNS_RA, rcode=0, qr=dpkt.dns.DNS_R, qd=[dpkt.dns.DNS.Q(name=name)])
    r.an = [dpkt.dns.DNS.RR(name=name, type=dpkt.dns.DNS_A, ttl=300, rdata=bytes([93, 184, 216, 34]))]
    r.qr = 1
    return bytes(r)


def dns() -> list:
    return [(True, dns_query()), (False, dns_response())]


def dns_tcp() -> list:
    return [(orig, struct.pack("!H", len(m)) + m) for orig, m in dns()]


def ntp_time(seconds: float) -> bytes:
    """NTP 64-bit timestamp (RFC 5905 section 6): seconds since 1900, 32-bit fraction."""
    return struct.pack("!II", int(seconds), int((seconds % 1) * 2**32))


def ntp() -> list:
    """A version 4 client request (mode 3) and a stratum 2 server reply (mode 4)."""
    client = dpkt.ntp.NTP(mode=dpkt.ntp.CLIENT, id=bytes(4), update_time=bytes(8), originate_time=bytes(8),
                          receive_time=bytes(8), transmit_time=ntp_time(3_900_000_000.5))
    client.v = 4
    server = dpkt.ntp.NTP(mode=dpkt.ntp.SERVER, stratum=2, interval=6, precision=0xEC, id=b"\xc0\x00\x02\x01",
                          update_time=ntp_time(3_900_000_000.0), originate_time=ntp_time(3_900_000_000.5),
                          receive_time=ntp_time(3_900_000_000.6), transmit_time=ntp_time(3_900_000_000.7))
    server.v = 4
    return [(True, bytes(client)), (False, bytes(server))]


def dhcp() -> list:
    disc = dpkt.dhcp.DHCP(op=dpkt.dhcp.DHCP_OP_REQUEST, chaddr=b"\x02\x00\x00\x00\x00\x01",
                          opts=[(dpkt.dhcp.DHCP_OPT_MSGTYPE, bytes([dpkt.dhcp.DHCPDISCOVER]))])
    offer = dpkt.dhcp.DHCP(op=dpkt.dhcp.DHCP_OP_REPLY, chaddr=b"\x02\x00\x00\x00\x00\x01", yiaddr=0xC0A80164,
                           opts=[(dpkt.dhcp.DHCP_OPT_MSGTYPE, bytes([dpkt.dhcp.DHCPOFFER]))])
    return [(True, bytes(disc)), (False, bytes(offer))]


def quic_initial(version: int = 1, dcid_len: int = 8, size: int = 1200) -> bytes:  # v2 is 0x6B3343CF
    """Client Initial (RFC 9000 section 17.2.2; v2: RFC 9369 type bits 01), padded to 1200 bytes."""
    first = 0xC3 if version == 1 else 0xD3
    head = bytes([first]) + struct.pack("!I", version) + bytes([dcid_len]) + bytes(range(dcid_len)) + b"\x00" + b"\x00"
    length = size - len(head) - 2
    return head + struct.pack("!H", 0x4000 | length) + bytes(length)


def dtls() -> list:
    """DTLS 1.2 ClientHello (RFC 6347 section 4.1 / 4.2.2)."""
    body = b"\xfe\xfd" + bytes(32) + b"\x00" + b"\x00" + struct.pack("!H", 2) + b"\xc0\x2b" + b"\x01\x00"
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + b"\x00\x00" + b"\x00\x00\x00" + struct.pack("!I", len(body))[1:] + body
    rec = b"\x16\xfe\xff" + b"\x00\x00" + bytes(6) + struct.pack("!H", len(hs)) + hs
    return [(True, rec)]


def mysql() -> list:
    """Protocol::HandshakeV10 from the server, HandshakeResponse41 (sequence 1) from the client."""
    greet = b"\x0a" + b"8.0.36\x00" + struct.pack("<I", 8) + b"abcdefgh\x00" + b"\xff\xf7\x21\x02\x00\xff\xc1\x15" + bytes(10) + b"ijklmnopqrst\x00" + b"mysql_native_password\x00"
    resp = struct.pack("<IIB", 0x000FA685, 16777216, 33) + bytes(23) + b"root\x00" + b"\x00"
    return [(False, struct.pack("<I", len(greet))[:3] + b"\x00" + greet),
            (True, struct.pack("<I", len(resp))[:3] + b"\x01" + resp),
            (False, b"\x07\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00")]


def redis() -> list:
    return [(True, b"*1\r\n$4\r\nPING\r\n"), (False, b"+PONG\r\n")]


def xmpp() -> list:
    return [(True, b"<?xml version='1.0'?><stream:stream to='example.com' xmlns='jabber:client' "
                   b"xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")]


def rdp() -> list:
    """X.224 Connection Request with a routing cookie and Connection Confirm, in TPKT (MS-RDPBCGR 2.2.1.1/2.2.1.2)."""
    cr = b"\xe0\x00\x00\x00\x00\x00" + b"Cookie: mstshash=alice\r\n" + b"\x01\x00\x08\x00\x03\x00\x00\x00"
    cc = b"\xd0\x00\x00\x12\x34\x00" + b"\x02\x1f\x08\x00\x02\x00\x00\x00"
    return [(True, b"\x03\x00" + struct.pack("!H", 5 + len(cr)) + bytes([len(cr)]) + cr),
            (False, b"\x03\x00" + struct.pack("!H", 5 + len(cc)) + bytes([len(cc)]) + cc)]


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    size = bytes([n]) if n < 128 else bytes([0x81, n]) if n < 256 else bytes([0x82]) + struct.pack("!H", n)
    return bytes([tag]) + size + body


def krb_as_req() -> bytes:
    """KRB AS-REQ (RFC 4120 section 5.4.1): [APPLICATION 10] SEQUENCE {pvno [1] 5, msg-type [2] 10, req-body [4] ...}."""
    body = _der(0x30, _der(0xA0, _der(0x03, b"\x00\x40\x81\x00\x10")) + _der(0xA2, _der(0x1B, b"EXAMPLE.ORG")))
    seq = _der(0xA1, _der(0x02, b"\x05")) + _der(0xA2, _der(0x02, b"\x0a")) + _der(0xA4, body)
    return _der(0x6A, _der(0x30, seq))


def modbus() -> list:
    """Read Holding Registers request and response (Modbus Messaging on TCP/IP, MBAP header)."""
    return [(True, b"\x00\x01\x00\x00\x00\x06\x01\x03\x00\x00\x00\x02"),
            (False, b"\x00\x01\x00\x00\x00\x07\x01\x03\x04\x00\x0a\x00\x0b")]


def smb() -> list:
    """SMB2 NEGOTIATE request in a NetBIOS session message ([MS-SMB2] 2.2.1, 2.2.3)."""
    hdr = b"\xfeSMB" + struct.pack("<HHIHHII", 64, 0, 0, 0, 0, 0, 0) + bytes(8) + bytes(4) + bytes(4) + bytes(8) + bytes(16)
    neg = struct.pack("<HHHHI", 36, 1, 1, 0, 0) + bytes(16) + bytes(8) + b"\x02\x02"
    msg = hdr + neg
    return [(True, b"\x00" + struct.pack("!I", len(msg))[1:] + msg)]


def dce_rpc() -> list:
    """Connection-oriented bind PDU (DCE 1.1 RPC chapter 12), little-endian data representation."""
    body = struct.pack("<HHI", 5840, 5840, 0) + b"\x01\x00\x00\x00" + b"\x00\x00\x01\x00" + bytes(16) + b"\x03\x00\x00\x00" + bytes(16) + b"\x02\x00\x00\x00"
    pdu = b"\x05\x00\x0b\x03\x10\x00\x00\x00" + struct.pack("<HHI", 16 + len(body), 0, 1) + body
    return [(True, pdu)]


def inner_ipv4(payload: bytes = b"hello") -> bytes:
    udp = dpkt.udp.UDP(sport=1234, dport=5678, data=payload)
    udp.ulen = 8 + len(payload)
    ip = dpkt.ip.IP(src=bytes([10, 0, 0, 1]), dst=bytes([10, 0, 0, 2]), p=dpkt.ip.IP_PROTO_UDP, data=udp, ttl=64)
    ip.len = 20 + len(bytes(udp))
    return bytes(ip)


def inner_ipv6(payload: bytes = b"", nxt: int = 59) -> bytes:
    ip6 = dpkt.ip6.IP6(src=bytes.fromhex("20010000" + "00" * 11 + "01"), dst=bytes.fromhex("fe80" + "00" * 13 + "02"),
                       nxt=nxt, hlim=64, data=payload)
    ip6.plen = len(payload)
    return bytes(ip6)


def inner_ether() -> bytes:
    return bytes(dpkt.ethernet.Ethernet(dst=b"\x02" * 6, src=b"\x04" * 6, type=0x0800, data=inner_ipv4()))


def vxlan() -> list:
    return [(True, b"\x08\x00\x00\x00" + b"\x00\x00\x2a\x00" + inner_ether())]  # RFC 7348 section 5


def geneve() -> list:
    return [(True, b"\x00\x00\x65\x58" + b"\x00\x00\x2a\x00" + inner_ether())]  # RFC 8926 section 3.4


def gtpv1() -> list:
    inner = inner_ipv4()
    return [(True, b"\x30\xff" + struct.pack("!HI", len(inner), 0x1234) + inner)]  # TS 29.281 section 5.1


def teredo() -> list:
    """Teredo (RFC 4380 section 5.1.1): an IPv6 packet both ways, the reply with an origin indication."""
    origin = b"\x00\x00" + struct.pack("!H", 0xFFFF ^ 3544) + bytes([~c & 0xFF for c in (192, 0, 2, 1)])
    return [(True, inner_ipv6()), (False, origin + inner_ipv6(b"\x80\x00\x00\x00\x00\x01\x00\x01", 58))]


def ayiya() -> list:
    """AYIYA (draft-massar-v6ops-ayiya): 16-byte identity, SHA-1 signature, forward opcode, IPv6."""
    head = bytes([0x41, 0x52, 0x11, 0x29]) + struct.pack("!I", 1_700_000_000) + bytes(16) + bytes(20)
    return [(True, head + inner_ipv6())]


# ---- captures: conversations as real packets ----

def _ip(src: str, dst: str, proto: int, l4) -> tuple[bytes, int]:
    import ipaddress
    import socket

    if ipaddress.ip_address(src).version == 4:
        ip = dpkt.ip.IP(src=socket.inet_pton(socket.AF_INET, src), dst=socket.inet_pton(socket.AF_INET, dst), p=proto,
                        data=l4, ttl=64)
        ip.len = 20 + len(bytes(l4))
        return bytes(ip), dpkt.ethernet.ETH_TYPE_IP
    ip = dpkt.ip6.IP6(src=socket.inet_pton(socket.AF_INET6, src), dst=socket.inet_pton(socket.AF_INET6, dst),
                      nxt=proto, hlim=64, data=l4)
    ip.plen = len(bytes(l4))
    return bytes(ip), dpkt.ethernet.ETH_TYPE_IP6


def frame(src: str, sport: int, dst: str, dport: int, payload: bytes = b"", *, tcp: bool = True, flags: int = 0x18,
          seq: int = 0, ack: int = 0) -> bytes:
    """One Ethernet frame (dpkt) carrying a TCP segment or UDP datagram."""
    if tcp:
        l4 = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, win=65535, data=payload)
    else:
        l4 = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
        l4.ulen = 8 + len(payload)
    ip, eth_type = _ip(src, dst, 6 if tcp else 17, l4)
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=eth_type, data=ip))


def connection(conv: list, client: str, cport: int, server: str, sport: int, *, tcp: bool = True,
               t: float = 1000.0, step: float = 0.01) -> list[tuple[float, bytes]]:
    """(time, frame) of a whole conversation: TCP handshake, the payloads with consistent sequence
    numbers and acknowledgements, FIN both ways; UDP: one datagram per payload."""
    out = []

    def emit(frm: bytes) -> None:
        out.append((t + step * len(out), frm))

    if not tcp:
        for orig, data in conv:
            emit(frame(client, cport, server, sport, data, tcp=False) if orig
                 else frame(server, sport, client, cport, data, tcp=False))
        return out
    cseq, sseq = 1000, 5000
    emit(frame(client, cport, server, sport, flags=0x02, seq=cseq))
    emit(frame(server, sport, client, cport, flags=0x12, seq=sseq, ack=cseq + 1))
    cseq, sseq = cseq + 1, sseq + 1
    emit(frame(client, cport, server, sport, flags=0x10, seq=cseq, ack=sseq))
    for orig, data in conv:
        if orig:
            emit(frame(client, cport, server, sport, data, seq=cseq, ack=sseq))
            cseq += len(data)
        else:
            emit(frame(server, sport, client, cport, data, seq=sseq, ack=cseq))
            sseq += len(data)
    emit(frame(client, cport, server, sport, flags=0x11, seq=cseq, ack=sseq))
    emit(frame(server, sport, client, cport, flags=0x11, seq=sseq, ack=cseq + 1))
    emit(frame(client, cport, server, sport, flags=0x10, seq=cseq + 1, ack=sseq + 1))
    return out
