"""Packet batch schema: the columns every decode engine produces, identically.

Addresses are 16-byte binary: IPv6 as is, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d),
so one fixed-width column serves both versions and keys compare with two uint64 views.
Absent values use zero (or the sentinel documented per column) rather than nulls,
so engines can fill columns with numpy and compare them bit for bit.
Documented for users in docs/packets.md; names and types here are the contract.
"""
from __future__ import annotations

import enum

import pyarrow as pa


class Status(enum.IntEnum):
    """Per-packet outcome; each packet lands in exactly one ledger category."""

    OK = 0  # headers decoded (category from ip_proto: tcp, udp, icmp, other_ip)
    NON_IP = 1  # link layer decoded, payload is not IPv4/IPv6 (ARP, LLDP, ...)
    UNSUPPORTED_LINK = 2  # link type flowkit does not decode
    TRUNCATED = 3  # capture ended inside a header flowkit needs; columns hold what was read
    MALFORMED = 4  # header present but impossible (bad version, IHL < 5, length < header)
    FRAGMENT = 5  # IP fragment held for reassembly: addresses, ip_proto, ip_id; no ports
    BAD_CHECKSUM = 6  # verify_checksums only: IPv4 header checksum wrong (or length 0); dropped as by Zeek


class Tunnel(enum.IntEnum):
    """``tunnel_type``: the encapsulation that carried a row (Zeek's Tunnel::Type names)."""

    NONE = 0  # the captured packet itself (tunnel_depth 0)
    IP = 1  # IP-in-IP: 4in4, 6in4, 4in6, 6in6
    GRE = 2  # GRE v0 (IP, Ethernet, ERSPAN I/II/III, Aruba 802.11), PPTP's GRE v1, GRE in UDP 4754
    VXLAN = 3  # UDP 4789
    GENEVE = 4  # UDP 6081
    GTPV1 = 5  # GTPv1-U G-PDU, UDP 2152 (and 2123)
    TEREDO = 6  # UDP 3544, or detected on other UDP ports
    AYIYA = 7  # UDP 5072, or detected on other UDP ports
    ICMP_QUOTE = 8  # the header an ICMP error quotes (tunnel_src_port/dst_port: the error's type/code)


MAX_TUNNEL_DEPTH = 4  # Zeek's Tunnel::max_depth: rows for at most four tunnels inside a packet


# TCP flag bits as on the wire (byte 13), plus NS from byte 12 as bit 8.
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR, NS = (1 << i for i in range(9))

# Bits of ``tcp_opts``: which TCP options were present.
OPT_MSS, OPT_WSCALE, OPT_SACK_PERM, OPT_TS, OPT_SACK = (1 << i for i in range(5))

# Bits of ``frag``.
FRAG_MF = 1  # more fragments follow
FRAG_DF = 2  # IPv4 don't-fragment
FRAG_IS_FRAGMENT = 4  # a fragment (status FRAGMENT), or a datagram reassembled from fragments (status OK)

ADDR = pa.binary(16)

PACKET_SCHEMA = pa.schema(
    [
        pa.field("index", pa.int64()),  # packet number in the capture, 0-based
        pa.field("ts", pa.timestamp("ns", tz="UTC")),
        pa.field("caplen", pa.uint32()),
        pa.field("wirelen", pa.uint32()),
        pa.field("iface", pa.uint16()),
        pa.field("linktype", pa.uint16()),
        pa.field("vlan", pa.uint16()),  # outermost 802.1Q/802.1ad VLAN id, 0 = none
        pa.field("inner_vlan", pa.uint16()),  # second VLAN tag (QinQ), 0 = none
        pa.field("status", pa.uint8()),  # Status
        pa.field("ip_version", pa.uint8()),  # 4, 6, or 0 when not IP
        pa.field("src_ip", ADDR),
        pa.field("dst_ip", ADDR),
        pa.field("ip_proto", pa.uint8()),  # transport protocol after IPv6 extension headers
        pa.field("ip_len", pa.uint32()),  # IPv4 total length; IPv6 payload length + 40
        pa.field("ttl", pa.uint8()),  # TTL / hop limit
        pa.field("ip_id", pa.uint32()),  # IPv4 identification / IPv6 fragment identification
        pa.field("frag", pa.uint8()),  # FRAG_* bits
        pa.field("frag_offset", pa.uint16()),  # fragment offset in 8-byte units
        pa.field("src_port", pa.uint16()),  # TCP/UDP source port, 0 when absent
        pa.field("dst_port", pa.uint16()),
        pa.field("tcp_flags", pa.uint16()),  # FIN..CWR bits 0-7, NS bit 8
        pa.field("seq", pa.uint32()),
        pa.field("ack", pa.uint32()),
        pa.field("window", pa.uint16()),  # raw window field (not scaled)
        pa.field("tcp_hdr_len", pa.uint8()),  # bytes (data offset * 4)
        pa.field("tcp_opts", pa.uint8()),  # OPT_* bits
        pa.field("mss", pa.uint16()),
        pa.field("wscale", pa.uint8()),
        pa.field("tsval", pa.uint32()),
        pa.field("tsecr", pa.uint32()),
        pa.field("udp_len", pa.uint16()),  # UDP length field
        pa.field("icmp_type", pa.uint8()),
        pa.field("icmp_code", pa.uint8()),
        pa.field("payload_len", pa.uint32()),  # transport payload bytes from IP length, not caplen
        # Encapsulation: a record yields one row per IP layer, the captured packet first
        # (tunnel_depth 0), then the packet inside each tunnel; the tunnel_* five-tuple is
        # that of the row just before (the enclosing packet). All zero at depth 0.
        pa.field("tunnel_depth", pa.uint8()),  # 0 = the captured packet, 1..4 = inside that many tunnels
        pa.field("tunnel_type", pa.uint8()),  # Tunnel
        pa.field("tunnel_src_ip", ADDR),
        pa.field("tunnel_dst_ip", ADDR),
        pa.field("tunnel_src_port", pa.uint16()),
        pa.field("tunnel_dst_port", pa.uint16()),
        pa.field("tunnel_proto", pa.uint8()),
    ]
)

PACKET_COLUMNS = PACKET_SCHEMA.names

# Not in PACKET_SCHEMA: batches decoded with verify_checksums=True carry it after the schema's
# columns. 1 where the TCP, UDP or ICMP checksum is wrong (as Zeek without -C checks it).
BAD_CHECKSUM_FIELD = pa.field("bad_checksum", pa.uint8())
