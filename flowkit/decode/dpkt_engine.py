"""The ``dpkt`` engine: a readable, per-packet reference decoder.

It fills exactly ``PACKET_SCHEMA`` with the same values as the ``fast`` engine (C),
but in plain Python, one packet at a time, so each rule reads as ordinary code and the
two engines can be compared bit for bit (tests/test_engines_diff.py). It is slow by design.

Fixed headers are unpacked with dpkt's own header classes (field names, bit fields),
but without dpkt's payload auto-decoding: dpkt raises on short buffers and guesses
on odd ones, whereas this engine must say *why* a packet could not be decoded
(TRUNCATED vs MALFORMED) and keep what it did read. The layer walk is therefore
written out here; docs/engines.md lists the rules both engines follow.
"""
from __future__ import annotations

import struct

import dpkt
import numpy as np
import pyarrow as pa

from flowkit.capture.records import RecordChunk
from flowkit.decode.schema import (
    FRAG_DF,
    FRAG_IS_FRAGMENT,
    FRAG_MF,
    OPT_MSS,
    OPT_SACK,
    OPT_SACK_PERM,
    OPT_TS,
    OPT_WSCALE,
    BAD_CHECKSUM_FIELD,
    MAX_TUNNEL_DEPTH,
    PACKET_SCHEMA,
    Status,
    Tunnel,
)

# Ethertypes, PPP protocols and link types handled (values from the IEEE/IANA/tcpdump registries).
ETH_IP4, ETH_IP6 = 0x0800, 0x86DD
ETH_VLAN_TAGS = (0x8100, 0x88A8, 0x9100)
ETH_MPLS = (0x8847, 0x8848)
ETH_PPPOE_SESSION = 0x8864
PPP_IP4, PPP_IP6 = 0x0021, 0x0057
ETH_VNTAG = 0x8926  # 4-byte tag, then the next ethertype
ETH_PBB = 0x88E7  # 802.1ah: 4-byte I-TAG, then a whole inner Ethernet header
ETH_FABRICPATH = 0x8903  # Cisco FabricPath: 2-byte tag, then a whole inner Ethernet header
PPP_MPLS = (0x0281, 0x0283)
CHDLC_ADDRESSES = (0x0F, 0x8F)  # Cisco HDLC unicast / multicast: found in PPP-linktype captures
FDDI_HDR = 13  # frame control, two MAC addresses; LLC/SNAP follows
AMSDU_SUBFRAME = 14  # DA, SA, length: the first subframe's MSDU (LLC/SNAP) follows
ETH_MAX_LEN = 1500  # a type field up to here is an 802.3 length: LLC follows
ETHERTYPE_MIN = 0x0600  # SLL / Cisco HDLC protocol values below this are no ethertype
LLC_SNAP = b"\xaa\xaa\x03"  # DSAP, SSAP, control of SNAP; then OUI 0 + ethertype for IP
MAX_VLAN_TAGS = 4  # deeper stacks are not IP as far as flowkit is concerned
MAX_SHIMS = 8  # VLAN tags, VN-Tags, PBB and LLC/SNAP headers peeled before the payload type
MAX_MPLS_LABELS = 16
MAX_IP6_EXT = 8

DLT_NULL, DLT_EN10MB, DLT_PPP, DLT_FDDI, DLT_RAW_12, DLT_RAW_14 = 0, 1, 9, 10, 12, 14
DLT_PPP_HDLC, DLT_RAW, DLT_LOOP, DLT_SLL = 50, 101, 108, 113
DLT_IPV4, DLT_IPV6, DLT_SLL2 = 228, 229, 276
DLT_C_HDLC, DLT_IEEE802_11, DLT_RADIOTAP, DLT_NFLOG = 104, 105, 127, 239
NFULA_PAYLOAD = 9  # the NFLOG TLV holding the packet
NFLOG_FAMILIES = {2: 4, 10: 6}  # Linux AF_INET, AF_INET6
MAX_NFLOG_TLVS = 32
AF_INET = 2
AF_INET6 = (24, 28, 30)  # NetBSD/OpenBSD, FreeBSD, macOS: the capture may come from any

IP6_EXT_HEADERS = (0, 43, 44, 51, 60)  # hop-by-hop, routing, fragment, AH, destination options
ICMP_HEADER = 8  # type, code, checksum, rest of header (Zeek's minimum too)


class BadChecksum(Exception):
    """verify_checksums: the IPv4 header checksum is wrong (Zeek drops the packet)."""


class Cut(Exception):
    """The captured bytes end inside a header this engine needs."""


class Impossible(Exception):
    """A header is present but cannot be valid."""


def _hdr(cls, buf: bytes, off: int):
    """Unpack only the fixed header of dpkt class ``cls`` at ``off``; Cut if it is not all there."""
    n = cls.__hdr_len__
    if len(buf) - off < n:
        raise Cut
    h = cls.__new__(cls)
    dpkt.Packet.unpack(h, buf[off : off + n])
    return h


def _u8(buf: bytes, off: int) -> int:
    if off >= len(buf):
        raise Cut
    return buf[off]


def _u16(buf: bytes, off: int) -> int:
    if off + 2 > len(buf):
        raise Cut
    return (buf[off] << 8) | buf[off + 1]


def _mapped(addr4: bytes) -> bytes:
    """IPv4 address as IPv4-mapped IPv6 (::ffff:a.b.c.d), the schema's single address form."""
    return b"\x00" * 10 + b"\xff\xff" + addr4


class Row:
    """The decoded columns of one packet (defaults are the schema's 'absent' values)."""

    __slots__ = (
        "vlan", "inner_vlan", "status", "ip_version", "src_ip", "dst_ip", "ip_proto",
        "ip_len", "ttl", "ip_id", "frag", "frag_offset", "src_port", "dst_port",
        "tcp_flags", "seq", "ack", "window", "tcp_hdr_len", "tcp_opts", "mss", "wscale",
        "tsval", "tsecr", "udp_len", "icmp_type", "icmp_code", "payload_len",
        "tunnel_depth", "tunnel_type", "tunnel_src_ip", "tunnel_dst_ip", "tunnel_src_port",
        "tunnel_dst_port", "tunnel_proto", "bad_checksum",
    )  # fmt: skip

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)
        self.src_ip = self.dst_ip = self.tunnel_src_ip = self.tunnel_dst_ip = bytes(16)


# ---------------------------------------------------------------- link layers


def _ethertype_payload(row: Row, buf: bytes, off: int, ethertype: int) -> tuple[int, int] | None:
    """Follow VLAN/MPLS/PPPoE from ``ethertype`` at ``off``; (ip version, offset) or None if not IP."""
    tags = 0
    for _ in range(MAX_SHIMS):  # one shim header per round
        if ethertype in ETH_VLAN_TAGS:
            if tags == MAX_VLAN_TAGS:
                return None
            tci = _u16(buf, off)
            ethertype = _u16(buf, off + 2)
            if tags == 0:
                row.vlan = tci & 0x0FFF
            elif tags == 1:
                row.inner_vlan = tci & 0x0FFF
            tags += 1
            off += 4
        elif ethertype == ETH_VNTAG:
            ethertype = _u16(buf, off + 4)
            off += 6
        elif ethertype == ETH_PBB:
            inner = _hdr(dpkt.ethernet.Ethernet, buf, off + 4)  # after the 4-byte I-TAG
            ethertype = inner.type
            off += 4 + inner.__hdr_len__
        elif ethertype == ETH_FABRICPATH:
            inner = _hdr(dpkt.ethernet.Ethernet, buf, off + 2)  # after the 2-byte FabricPath tag
            ethertype = inner.type
            off += 2 + inner.__hdr_len__
        elif ethertype <= ETH_MAX_LEN:
            ethertype = _llc_snap(buf, off)
            if ethertype is None:
                return None
            off += 8
        else:
            break
    if ethertype == ETH_IP4:
        return 4, off
    if ethertype == ETH_IP6:
        return 6, off
    if ethertype in ETH_MPLS:
        return _mpls(buf, off)
    if ethertype == ETH_PPPOE_SESSION:
        _hdr(dpkt.pppoe.PPPoE, buf, off)  # version/type, code, session, length: all must be there
        return _ppp_protocol(buf, off + dpkt.pppoe.PPPoE.__hdr_len__)
    return None


def _mpls(buf: bytes, off: int) -> tuple[int, int] | None:
    """An MPLS label stack: (IP version, offset) under the bottom label, or None."""
    for _ in range(MAX_MPLS_LABELS):
        if len(buf) - off < 4:
            raise Cut
        bottom = buf[off + 2] & 0x01
        off += 4
        if bottom:
            version = _u8(buf, off) >> 4  # MPLS has no payload type: the IP version nibble says
            return (version, off) if version in (4, 6) else None
    return None


def _llc_snap(buf: bytes, off: int) -> int | None:
    """802.2 LLC at ``off``: the ethertype of a SNAP header with OUI 0, else None (not IP)."""
    if len(buf) - off < 3:
        raise Cut
    if buf[off : off + 3] != LLC_SNAP:
        return None
    if len(buf) - off < 8:
        raise Cut
    if buf[off + 3 : off + 6] != b"\x00\x00\x00":
        return None
    return _u16(buf, off + 6)


def _wlan(row: Row, buf: bytes, off: int) -> tuple[int, int] | None:
    """An 802.11 frame at ``off``: data frames with a readable LLC/SNAP body only."""
    if len(buf) - off < 2:
        raise Cut
    fc0, fc1 = buf[off], buf[off + 1]
    if (fc0 >> 2) & 3 != 2:  # management or control frame
        return None
    if fc0 & 0x40:  # Null / CF-only data subtypes carry no payload
        return None
    if fc1 & 0x40:  # protected (encrypted) body
        return None
    qos = bool(fc0 & 0x80)
    qos_at = 30 if fc1 & 0x03 == 0x03 else 24  # ToDS and FromDS: a fourth address
    size = qos_at + (2 if qos else 0) + (4 if qos and fc1 & 0x80 else 0)  # QoS, HT control
    if len(buf) - off < size:
        raise Cut
    if qos and buf[off + qos_at] & 0x80:  # A-MSDU: the first subframe's MSDU, one frame one row
        size += AMSDU_SUBFRAME
        if len(buf) - off < size:
            raise Cut
    return _ethertype_payload(row, buf, off + size, 0)  # 0: an "802.3 length", LLC follows


def _nflog(buf: bytes) -> tuple[int, int] | None:
    """NFLOG: 4-byte header, then TLVs (little-endian length and type, padded to 4)."""
    if len(buf) < 4:
        raise Cut
    family, version = buf[0], buf[1]
    if version != 0:
        raise Impossible
    if family not in NFLOG_FAMILIES:
        return None
    off = 4
    for _ in range(MAX_NFLOG_TLVS):
        if len(buf) - off < 4:
            raise Cut  # the captured bytes end before the payload TLV
        length, kind = struct.unpack_from("<HH", buf, off)
        if length < 4:
            raise Impossible
        if kind == NFULA_PAYLOAD:
            return NFLOG_FAMILIES[family], off + 4
        padded = (length + 3) & ~3
        if len(buf) - off < padded:
            raise Cut
        off += padded
    return None


def _ppp_protocol(buf: bytes, off: int) -> tuple[int, int] | None:
    """PPPoE's PPP protocol field (always 2 bytes there)."""
    proto = _u16(buf, off)
    return {PPP_IP4: (4, off + 2), PPP_IP6: (6, off + 2)}.get(proto)


def _c_hdlc(row: Row, buf: bytes) -> tuple[int, int] | None:
    """Cisco HDLC: address, control, then an ethertype."""
    proto = _u16(buf, 2)
    if len(buf) < 4:
        raise Cut
    return None if proto < ETHERTYPE_MIN else _ethertype_payload(row, buf, 4, proto)


def _link(row: Row, buf: bytes, linktype: int) -> tuple[int, int] | None:
    """Peel the link layer: (expected IP version, offset of the IP header), or None if not IP.

    The expected version is 0 for raw-IP link types where the version nibble decides.
    """
    if linktype == DLT_EN10MB:
        eth = _hdr(dpkt.ethernet.Ethernet, buf, 0)
        return _ethertype_payload(row, buf, eth.__hdr_len__, eth.type)
    if linktype == DLT_SLL:
        sll = _hdr(dpkt.sll.SLL, buf, 0)
        if sll.ethtype < ETHERTYPE_MIN:  # Linux packet types (802.2, Novell, ...), no ethertype
            return None
        return _ethertype_payload(row, buf, sll.__hdr_len__, sll.ethtype)
    if linktype == DLT_SLL2:
        sll2 = _hdr(dpkt.sll2.SLL2, buf, 0)
        if sll2.ethtype < ETHERTYPE_MIN:
            return None
        return _ethertype_payload(row, buf, sll2.__hdr_len__, sll2.ethtype)
    if linktype == DLT_C_HDLC:  # address, control, then an ethertype
        return _c_hdlc(row, buf)
    if linktype == DLT_FDDI:
        if len(buf) < FDDI_HDR:
            raise Cut
        return _ethertype_payload(row, buf, FDDI_HDR, 0)  # 0: an "802.3 length", LLC/SNAP follows
    if linktype == DLT_IEEE802_11:
        return _wlan(row, buf, 0)
    if linktype == DLT_RADIOTAP:
        if len(buf) < 4:
            raise Cut
        it_len = buf[2] | (buf[3] << 8)  # little-endian; an FCS at the end is left, as in Zeek
        if it_len < 8:
            raise Impossible
        if len(buf) < it_len:
            raise Cut
        return _wlan(row, buf, it_len)
    if linktype == DLT_NFLOG:
        return _nflog(buf)
    if linktype in (DLT_NULL, DLT_LOOP):
        if len(buf) < 4:
            raise Cut
        # DLT_NULL's family is in the capturing host's byte order (either), LOOP's in network order.
        family = struct.unpack(">I", buf[:4])[0]
        if linktype == DLT_NULL and family > 0xFFFF:
            family = struct.unpack("<I", buf[:4])[0]
        if family == AF_INET:
            return 4, 4
        if family in AF_INET6:
            return 6, 4
        return None
    if linktype in (DLT_RAW_12, DLT_RAW_14, DLT_RAW):
        return 0, 0
    if linktype == DLT_IPV4:
        return 4, 0
    if linktype == DLT_IPV6:
        return 6, 0
    if linktype in (DLT_PPP, DLT_PPP_HDLC):
        if _u8(buf, 0) in CHDLC_ADDRESSES:  # routers write Cisco HDLC frames under PPP link types
            return _c_hdlc(row, buf)
        off = 0
        if _u8(buf, 0) == 0xFF:  # HDLC address (then control) byte: 0xff is no PPP protocol
            if len(buf) < 2:
                raise Cut
            off = 2
        if _u8(buf, off) & 1:  # protocol-field compression: a 1-byte (odd) protocol
            proto = buf[off]
            off += 1
        else:
            proto = _u16(buf, off)
            off += 2
        if proto in PPP_MPLS:
            return _mpls(buf, off)
        return {PPP_IP4: (4, off), PPP_IP6: (6, off)}.get(proto)
    raise NotImplementedError  # caller turns this into UNSUPPORTED_LINK


# ---------------------------------------------------------------- fragments

MAX_DATAGRAM = 65535  # IP payload bytes a reassembled datagram may hold
HDR_ROOM = 512  # the headers kept from the first fragment may be this long
FRAG_ENTRY_BYTES = 2048  # memory counted per pending datagram besides its data
FRAG_GROW = 2048  # data space is counted in steps of this many bytes
FRAG_TIMEOUT_NS = 300 * 10**9
FRAG_MAX_BYTES = 64 << 20


class Held(Exception):
    """A fragment kept until the rest of its datagram arrives."""


class _Datagram:
    """One datagram being reassembled (the fields the rules below need)."""

    def __init__(self, ts: int):
        self.first_ts = ts
        self.total = -1  # payload bytes, known from the last fragment
        self.hdr = None  # headers of the first fragment
        self.nh_at = 0  # IPv6: offset in hdr of the byte that named the fragment header
        self.next_proto = 0  # IPv6: the fragment header's next header
        self.held = 0  # records at depth 0 whose row is a fragment of this datagram
        self.data = bytearray()
        self.covered: set[int] = set()  # 8-byte units present
        self.cap = 0  # memory counted for the data


class Reassembler:
    """Pending IP datagrams of one capture, the rules of docs/packets.md.

    The first bytes to arrive win: a later fragment overlapping them is ignored where
    they overlap. A datagram is complete with its first fragment, its last fragment and
    every 8-byte unit between; it is given up when older than the timeout, or (the
    oldest first) when the pending memory passes the bound.
    """

    def __init__(self, timeout_ns: int = FRAG_TIMEOUT_NS, max_bytes: int = FRAG_MAX_BYTES, enabled: bool = True):
        self.timeout_ns, self.max_bytes, self.enabled = timeout_ns, max_bytes, enabled
        self.pending: dict[tuple, _Datagram] = {}  # insertion order = age
        self.bytes = 0
        self.given_up = 0

    def _drop(self, key: tuple) -> _Datagram:
        d = self.pending.pop(key)
        self.bytes -= d.cap + FRAG_ENTRY_BYTES
        return d

    def _give_up(self, key: tuple) -> None:
        self.given_up += self._drop(key).held

    def expire(self, ts: int) -> None:
        while self.pending:
            key, d = next(iter(self.pending.items()))
            if ts - d.first_ts <= self.timeout_ns:
                return
            self._give_up(key)

    def clear(self) -> None:
        for key in list(self.pending):
            self._give_up(key)

    def add(self, key: tuple, depth: int, hdr: bytes, nh_at: int, next_proto: int, off: int, data: bytes,
            more: bool, ts: int) -> bytes:
        """The whole datagram (headers + payload, headers not yet patched) once complete; else Held."""
        if not self.enabled:  # each fragment stays a row of its own
            raise Held
        if off + len(data) > MAX_DATAGRAM or len(hdr) > HDR_ROOM:
            raise Impossible
        d = self.pending.get(key)
        if d is None:
            d = self.pending[key] = _Datagram(ts)
            self.bytes += FRAG_ENTRY_BYTES
        end = off + len(data)
        if d.total >= 0 and end > d.total:  # beyond the length the last fragment gave: first wins
            end = d.total
        if not more and d.total < 0:
            d.total = end
        if HDR_ROOM + end > d.cap:
            cap = HDR_ROOM + ((end + FRAG_GROW - 1) // FRAG_GROW) * FRAG_GROW
            self.bytes += cap - d.cap
            d.cap = cap
        if len(d.data) < end:
            d.data.extend(bytes(end - len(d.data)))
        if off == 0 and d.hdr is None:
            d.hdr, d.nh_at, d.next_proto = hdr, nh_at, next_proto
        for unit in range(off // 8, (end + 7) // 8):
            a, z = unit * 8, min(unit * 8 + 8, end)
            if unit in d.covered:
                continue
            d.data[a:z] = data[a - off : z - off]
            if z == a + 8 or (d.total >= 0 and z == d.total):
                d.covered.add(unit)
        if d.hdr is not None and d.total >= 0 and all(u in d.covered for u in range((d.total + 7) // 8)):
            self._drop(key)
            return d
        if depth == 0:
            d.held += 1
        while self.bytes > self.max_bytes and self.pending:
            oldest = next(iter(self.pending))
            if oldest == key:
                break
            self._give_up(oldest)
        raise Held


def _whole(d: _Datagram, version: int) -> bytes:
    """The completed datagram as one packet: first fragment's headers, lengths patched, no fragmentation."""
    hdr = bytearray(d.hdr)
    length = len(hdr) + d.total
    if version == 4:
        hdr[2:4] = struct.pack(">H", length)
        hdr[6:8] = b"\x00\x00"
    else:
        hdr[4:6] = struct.pack(">H", length - 40)
        hdr[d.nh_at] = d.next_proto
    return bytes(hdr) + bytes(d.data[: d.total])


# ---------------------------------------------------------------- network layer


class Layer:
    """What the IP layer leaves for the tunnel step: the buffer (a reassembled datagram has
    its own) and the transport payload (TCP/UDP) or IP payload (other), as offsets."""

    __slots__ = ("buf", "l4", "data", "data_end", "data_wire_end")


def _check_version(buf: bytes, off: int, version: int, size: int) -> None:
    """A header cut short is TRUNCATED, unless its first byte already shows the wrong version."""
    if len(buf) - off < size:
        if len(buf) > off and buf[off] >> 4 != version:
            raise Impossible
        raise Cut


def _reassembled(row: Row, d: _Datagram, version: int, ctx: "Decoder", depth: int, ts: int, key_id: int) -> Layer:
    whole = _whole(d, version)
    row.frag_offset = row.payload_len = 0
    ctx.in_whole = True  # its IPv4 header was rewritten here: each fragment's was checked
    try:
        return _ip(row, whole, 0, len(whole), version, ctx, depth, ts)
    finally:
        ctx.in_whole = False
        row.frag = FRAG_IS_FRAGMENT  # reassembled from fragments
        row.ip_id = key_id


def _ip(row: Row, buf: bytes, off: int, wire_end: int, version: int, ctx, depth: int, ts: int) -> Layer:
    """The IP header at ``off`` and its transport: fills ``row``; raises Cut/Impossible/Held."""
    if version == 4:
        return _ipv4(row, buf, off, wire_end, ctx, depth, ts)
    return _ipv6(row, buf, off, wire_end, ctx, depth, ts)


def _first_fragment_transport(row: Row, buf: bytes, off: int, l4len: int) -> None:
    """A first fragment's transport columns, as tcpdump filters see them (its status is the fragment's)."""
    try:
        _transport(row, buf, off, l4len)
    except (Cut, Impossible):
        pass


def _ipv4(row: Row, buf: bytes, off: int, wire_end: int, ctx, depth: int, ts: int) -> Layer:
    _check_version(buf, off, 4, dpkt.ip.IP.__hdr_len__)
    ip = _hdr(dpkt.ip.IP, buf, off)
    hlen = ip.hl * 4
    total = ip.len
    if total == 0:
        # TCP segmentation offload: captured on the sender before the NIC filled the length;
        # the captured bytes stand in for it, as in Zeek (weird "ip_hdr_len_zero")
        total = len(buf) - off
    # the fixed 20 bytes are kept even when the header then proves impossible
    row.src_ip, row.dst_ip = _mapped(ip.src), _mapped(ip.dst)
    row.ip_proto, row.ip_len, row.ttl, row.ip_id = ip.p, total, ip.ttl, ip.id
    row.frag_offset = ip.offset
    row.frag = (FRAG_MF if ip.mf else 0) | (FRAG_DF if ip.df else 0)
    if ip.mf or ip.offset:
        row.frag |= FRAG_IS_FRAGMENT
    # impossible: wrong version, IHL < 5, total length below the header or beyond the frame on the wire
    if ip.v != 4 or ip.hl < 5 or total < hlen or off + total > wire_end:
        raise Impossible
    if len(buf) - off < hlen:  # options cut by the snapshot length
        raise Cut
    # verify_checksums: Zeek drops a wrong header checksum, and a length of 0 (offloaded checksums)
    if ctx.verify_checksums and not ctx.in_whole and (ip.len == 0 or _sum16(buf[off : off + hlen]) != 0xFFFF):
        raise BadChecksum
    if ip.mf or ip.offset:
        row.payload_len = total - hlen
        if not ip.offset:
            _first_fragment_transport(row, buf, off + hlen, total - hlen)
        if len(buf) - off < total:  # a fragment cut by the snapshot length cannot be reassembled
            raise Cut
        key = (4, row.src_ip, row.dst_ip, ip.id, ip.p, depth)
        d = ctx.frags.add(key, depth, buf[off : off + hlen], 0, 0, ip.offset * 8, buf[off + hlen : off + total],
                          bool(ip.mf), ts)
        return _reassembled(row, d, 4, ctx, depth, ts, ip.id)
    return _transport(row, buf, off + hlen, total - hlen)


def _ipv6(row: Row, buf: bytes, off: int, wire_end: int, ctx, depth: int, ts: int) -> Layer:
    """``row.ip_proto`` stays the fixed header's next-header value unless the chain is
    walked to its end (or to a fragment, whose next header is then known)."""
    _check_version(buf, off, 6, dpkt.ip6.IP6.__hdr_len__)
    ip6 = _hdr(dpkt.ip6.IP6, buf, off)
    row.src_ip, row.dst_ip = ip6.src, ip6.dst
    row.ip_len, row.ttl, row.ip_proto = ip6.plen + 40, ip6.hlim, ip6.nxt
    if ip6.v != 6 or off + 40 + ip6.plen > wire_end:
        raise Impossible
    nxt, pos, end = ip6.nxt, off + 40, off + 40 + ip6.plen
    nh_at = off + 6  # the byte holding nxt
    for chain in range(MAX_IP6_EXT + 1):
        if nxt not in IP6_EXT_HEADERS:
            break
        if chain == MAX_IP6_EXT:
            raise Impossible  # a deeper chain than flowkit follows
        frag = None
        if nxt == 44:
            frag = _hdr(dpkt.ip6.IP6FragmentHeader, buf, pos)
            length = frag.__hdr_len__
        elif nxt == 51:
            length = (_u8(buf, pos + 1) + 2) * 4  # AH: 4-byte units, minus 2
        else:
            length = (_u8(buf, pos + 1) + 1) * 8  # 8-byte units, not counting the first 8
        if pos + length > end:
            raise Impossible  # the chain runs past the payload length
        if pos + length > len(buf):
            raise Cut
        prev_at, start = nh_at - off, pos
        nxt, nh_at = buf[pos], pos
        pos += length
        if frag is not None:
            row.ip_id, row.frag_offset = frag.id, frag.frag_off
            row.frag = (FRAG_MF if frag.m_flag else 0) | (FRAG_IS_FRAGMENT if frag.m_flag or frag.frag_off else 0)
            if frag.m_flag or frag.frag_off:
                row.ip_proto, row.payload_len = nxt, end - pos
                if not frag.frag_off:
                    _first_fragment_transport(row, buf, pos, end - pos)
                if len(buf) < end:
                    raise Cut
                key = (6, row.src_ip, row.dst_ip, frag.id, 0, depth)
                d = ctx.frags.add(key, depth, buf[off:start], prev_at, nxt, frag.frag_off * 8, buf[pos:end],
                                  bool(frag.m_flag), ts)
                return _reassembled(row, d, 6, ctx, depth, ts, frag.id)
    row.ip_proto = nxt
    return _transport(row, buf, pos, end - pos)


# ---------------------------------------------------------------- transport layer


def _tcp_options(row: Row, buf: bytes, pos: int, stop: int) -> None:
    """Walk the option list; a bad or cut option ends the walk (the header itself is complete)."""
    while pos < stop:
        kind = buf[pos]
        if kind == dpkt.tcp.TCP_OPT_EOL:
            return
        if kind == dpkt.tcp.TCP_OPT_NOP:
            pos += 1
            continue
        if pos + 1 >= stop:
            return
        size = buf[pos + 1]
        if size < 2 or pos + size > stop:
            return
        if kind == dpkt.tcp.TCP_OPT_MSS and size == 4:
            row.tcp_opts |= OPT_MSS
            row.mss = _u16(buf, pos + 2)
        elif kind == dpkt.tcp.TCP_OPT_WSCALE and size == 3:
            row.tcp_opts |= OPT_WSCALE
            row.wscale = buf[pos + 2]
        elif kind == dpkt.tcp.TCP_OPT_SACKOK and size == 2:
            row.tcp_opts |= OPT_SACK_PERM
        elif kind == dpkt.tcp.TCP_OPT_SACK:
            row.tcp_opts |= OPT_SACK
        elif kind == dpkt.tcp.TCP_OPT_TIMESTAMP and size == 10:
            row.tcp_opts |= OPT_TS
            row.tsval, row.tsecr = struct.unpack_from(">II", buf, pos + 2)
        pos += size


def _ports(row: Row, buf: bytes, off: int) -> None:
    if len(buf) - off >= 4:  # ports are kept even when the rest of the header is cut
        row.src_port, row.dst_port = struct.unpack_from(">HH", buf, off)


def _need(buf: bytes, off: int, l4len: int, size: int) -> None:
    """The IP length must leave room for the header (else MALFORMED), the capture must hold it."""
    if l4len < size:
        raise Impossible
    if len(buf) - off < size:
        raise Cut


def _transport(row: Row, buf: bytes, off: int, l4len: int) -> Layer:
    layer = Layer()
    layer.buf, layer.l4, layer.data, layer.data_wire_end = buf, off, off, off + l4len
    layer.data_end = min(len(buf), off + l4len)
    proto = row.ip_proto
    if proto == 6:
        _ports(row, buf, off)
        _need(buf, off, l4len, 20)
        tcp = _hdr(dpkt.tcp.TCP, buf, off)
        row.seq, row.ack, row.window = tcp.seq, tcp.ack, tcp.win
        row.tcp_flags = tcp.flags  # dpkt's 9 flag bits: FIN..CWR and NS
        hlen = row.tcp_hdr_len = tcp.off * 4
        if hlen < 20 or hlen > l4len:
            raise Impossible
        if len(buf) - off < hlen:
            raise Cut
        row.payload_len = l4len - hlen
        layer.data = off + hlen
        _tcp_options(row, buf, off + 20, off + hlen)
    elif proto == 17:
        _ports(row, buf, off)
        _need(buf, off, l4len, 8)
        udp = _hdr(dpkt.udp.UDP, buf, off)
        row.udp_len = udp.ulen
        row.payload_len = l4len - 8  # from the IP length, like TCP (udp_len is kept as sent)
        layer.data = off + 8
    elif proto in (1, 58):
        if len(buf) - off >= 2:
            row.icmp_type, row.icmp_code = buf[off], buf[off + 1]
        _need(buf, off, l4len, ICMP_HEADER)
        row.payload_len = l4len - ICMP_HEADER
    else:
        row.payload_len = l4len
    return layer


# ---------------------------------------------------------------- tunnels

TUN_IP, TUN_GRE, TUN_VXLAN, TUN_GENEVE, TUN_GTPV1, TUN_TEREDO, TUN_AYIYA = (t.value for t in list(Tunnel)[1:8])
GRE_CSUM, GRE_ROUTING, GRE_KEY, GRE_SEQ, GRE_ACK, GRE_RESERVED = 0x8000, 0x4000, 0x2000, 0x1000, 0x0080, 0x0078
GRE_ETHER, GRE_ERSPAN, GRE_ERSPAN3, GRE_PPTP = 0x6558, 0x88BE, 0x22EB, 0x880B
ETH_HDR = 14
PORT_GRE_UDP, PORT_VXLAN, PORT_GENEVE, PORT_TEREDO, PORT_AYIYA = 4754, 4789, 6081, 3544, 5072
PORTS_GTPV1 = (2152, 2123)  # GTP-U; GTP-C carries no G-PDU, as in Zeek's port list
TUNNEL_PORTS = (PORT_GRE_UDP, PORT_VXLAN, PORT_GENEVE, PORT_TEREDO, PORT_AYIYA, *PORTS_GTPV1)
TEREDO_PREFIX = b"\x20\x01\x00\x00"  # 2001:0::/32


class Inner:
    """Where a tunnel's payload starts and which link layer it has."""

    __slots__ = ("kind", "type", "pos", "ethertype")

    def __init__(self, kind: str, type: int, pos: int, ethertype: int = 0):
        self.kind, self.type, self.pos, self.ethertype = kind, type, pos, ethertype


def _gre(buf: bytes, pos: int, end: int) -> Inner | None:
    """GRE as Zeek's GRE analyzer reads it (RFC 2784/2890 flags, ERSPAN, Aruba, PPTP)."""
    length = end - pos
    if length < 4:
        return None
    flags, proto = struct.unpack_from(">HH", buf, pos)
    version = flags & 7
    if version > 1 or flags & (GRE_ROUTING | GRE_RESERVED):
        return None
    hl = 4 + sum(4 for bit in (GRE_CSUM, GRE_KEY, GRE_SEQ, GRE_ACK) if flags & bit)
    extra, kind, ethertype = 0, "ether", 0
    if version == 1:  # PPTP: address, control and protocol of PPP follow
        if proto != GRE_PPTP or length < hl + 4:
            return None
        ppp = struct.unpack_from(">H", buf, pos + hl + 2)[0]
        if ppp not in (PPP_IP4, PPP_IP6):
            return None
        kind, extra = ("ip4" if ppp == PPP_IP4 else "ip6"), 4
    elif proto == GRE_ETHER:
        if length <= hl + ETH_HDR:
            return None
    elif proto == GRE_ERSPAN:  # type I without, type II with the sequence bit (8-byte header)
        if length <= hl + ETH_HDR:
            return None
        extra = 8 if flags & GRE_SEQ else 0
    elif proto == GRE_ERSPAN3:
        if length <= hl + ETH_HDR + 12:
            return None
        extra = 12
        if buf[pos + hl + 11] & 1:  # optional platform-specific subheader
            if length <= hl + 12 + 8 + ETH_HDR:
                return None
            extra += 8
    elif ((proto & 0x8200) == 0x8200 and proto & 0xF == 0) or (
        (proto & 0x8300) == 0x8300 and proto & 0xF == 0 and proto <= 0x8370
    ) or proto == 0x9000:  # Aruba access points: an 802.11 frame
        if length <= hl:
            return None
        kind = "wlan"
    else:
        kind, ethertype = "ethertype", proto
    if length < hl + extra:
        return None
    return Inner(kind, TUN_GRE, pos + hl + extra, ethertype)


def _teredo_ipv6(buf: bytes, pos: int, end: int) -> bool:
    """An IPv6 header filling exactly to the end (Zeek's check), or a bubble (no next header)."""
    if end - pos < 40 or buf[pos] >> 4 != 6:
        return False
    plen = struct.unpack_from(">H", buf, pos + 4)[0]
    return pos + 40 + plen == end or (buf[pos + 6] == 59 and plen == 0)


def _teredo(buf: bytes, pos: int, end: int) -> Inner | None:
    """RFC 4380: optional authentication, optional origin indication, then IPv6."""
    if end - pos >= 2 and buf[pos] == 0 and buf[pos + 1] == 1:
        if end - pos < 4:
            return None
        pos += 4 + buf[pos + 2] + buf[pos + 3] + 8 + 1
    if end - pos >= 2 and buf[pos] == 0 and buf[pos + 1] == 0:
        pos += 8
    return Inner("ip6", TUN_TEREDO, pos) if pos < end and _teredo_ipv6(buf, pos, end) else None


def _teredo_detect(buf: bytes, pos: int, end: int) -> bool:
    """Zeek's Teredo detection on other ports."""
    length = end - pos
    if length < 40:
        return False
    if buf[pos] >> 4 == 6:
        return buf[pos + 8 : pos + 12] == TEREDO_PREFIX or buf[pos + 24 : pos + 28] == TEREDO_PREFIX
    if buf[pos] != 0 or buf[pos + 1] not in (0, 1):
        return False
    if buf[pos + 1] == 1:
        skip = 13 + buf[pos + 2] + buf[pos + 3]
        if length < skip + 40 or buf[pos + skip] != 0 or buf[pos + skip + 1] != 0:
            return False
        pos, length = pos + skip, length - skip
    return length >= 48 and buf[pos + 8] >> 4 == 6


def _gtpv1(buf: bytes, pos: int, end: int) -> Inner | None:
    """GTPv1-U G-PDU: 8-byte header, 4 more with any of E/S/PN, then extension headers."""
    if end - pos < 8:
        return None
    flags = buf[pos]
    if flags >> 5 != 1 or not flags & 0x10 or buf[pos + 1] != 0xFF:
        return None
    p = pos + 8
    if flags & 0x07:
        if end - p < 4:
            return None
        nxt = buf[p + 3]
        p += 4
        for _ in range(16):  # extension headers: length in 4-byte units, next type last
            if not nxt:
                break
            if end - p < 1 or buf[p] == 0 or end - p < 4 * buf[p]:
                return None
            size = 4 * buf[p]
            nxt = buf[p + size - 1]
            p += size
        if nxt:
            return None
    return Inner("ip", TUN_GTPV1, p) if p < end else None


def _ayiya(buf: bytes, pos: int, end: int) -> Inner | None:
    length = end - pos
    if length < 8:
        return None
    hl = 8 + (1 << (buf[pos] >> 4)) + (buf[pos + 1] >> 4) * 4
    if length <= hl or buf[pos + 2] & 0x0F != 1:  # only the "forward" opcode carries a packet
        return None
    nh = buf[pos + 3]
    if nh not in (4, 41):
        return None
    return Inner("ip4" if nh == 4 else "ip6", TUN_AYIYA, pos + hl)


def _udp_tunnel(buf: bytes, pos: int, end: int, sport: int, dport: int) -> Inner | None:
    """Zeek forwards a UDP payload on the responder's port: the destination, unless only
    the source is a tunnel port; without an analyzer for it, protocol detection."""
    port = dport if dport in TUNNEL_PORTS or sport not in TUNNEL_PORTS else sport
    length = end - pos
    if port == PORT_GRE_UDP:
        return _gre(buf, pos, end)
    if port == PORT_VXLAN:
        return Inner("ether", TUN_VXLAN, pos + 8) if length > 8 else None
    if port == PORT_GENEVE:
        if length < 8 or buf[pos] >> 6 != 0:
            return None
        hl = 8 + (buf[pos] & 0x3F) * 4
        if length <= hl:
            return None
        proto = struct.unpack_from(">H", buf, pos + 2)[0]
        return Inner("ether", TUN_GENEVE, pos + hl) if proto == GRE_ETHER else Inner(
            "ethertype", TUN_GENEVE, pos + hl, proto)
    if port in PORTS_GTPV1:
        return _gtpv1(buf, pos, end)
    if port == PORT_TEREDO:
        return _teredo(buf, pos, end)
    if port == PORT_AYIYA:
        return _ayiya(buf, pos, end)
    if _teredo_detect(buf, pos, end):
        return _teredo(buf, pos, end)
    if length >= 3 and buf[pos + 1] == 0x52 and buf[pos + 2] == 0x11:
        return _ayiya(buf, pos, end)
    return None


def _find_inner(row: Row, layer: Layer) -> Inner | None:
    """The packet encapsulated in a decoded one, if any."""
    proto, buf = row.ip_proto, layer.buf
    if proto in (4, 41):
        return Inner("ip4" if proto == 4 else "ip6", TUN_IP, layer.data) if layer.data < layer.data_end else None
    if proto == 47:
        return _gre(buf, layer.data, layer.data_end)
    if proto == 17 and layer.data < layer.data_end:
        return _udp_tunnel(buf, layer.data, layer.data_end, row.src_port, row.dst_port)
    return None


def _inner_link(row: Row, buf: bytes, inner: Inner) -> int:
    """The IP version of a tunnel's payload, or 0 when it is not (readable) IP."""
    kind = inner.kind
    try:
        if kind in ("ip4", "ip6"):
            return 4 if kind == "ip4" else 6
        if kind == "ip":
            version = _u8(buf, inner.pos) >> 4
            return version if version in (4, 6) else 0
        if kind == "ether":
            eth = _hdr(dpkt.ethernet.Ethernet, buf, inner.pos)
            link = _ethertype_payload(row, buf, inner.pos + eth.__hdr_len__, eth.type)
        elif kind == "ethertype":
            if inner.ethertype in (ETH_IP4, ETH_IP6):
                return 4 if inner.ethertype == ETH_IP4 else 6
            link = _ethertype_payload(row, buf, inner.pos, inner.ethertype)
        else:
            link = _wlan(row, buf, inner.pos)
    except (Cut, Impossible):
        return 0
    if link is None:
        return 0
    version, inner.pos = link
    return version


# ---------------------------------------------------------------- checksums (verify_checksums)


def _sum16(data: bytes, acc: int = 0) -> int:
    """One's-complement sum of ``data`` (RFC 1071), folded to 16 bits."""
    if len(data) % 2:
        data += b"\x00"
    acc += sum(struct.unpack(f">{len(data) // 2}H", data))
    while acc >> 16:
        acc = (acc & 0xFFFF) + (acc >> 16)
    return acc


PORT_VXLAN_ZEEK = 4789  # Zeek's VXLAN::vxlan_ports: a zero UDP checksum there is accepted


def _transport_bad(row: Row, layer: Layer, whole_frame: bool) -> bool:
    """Is the TCP/UDP/ICMP checksum wrong, as Zeek checks it (the whole message captured; IPv4
    UDP checksum 0: none; IPv6 UDP: always, but VXLAN's zero; UDP only with the whole frame)?"""
    proto, buf, off, end = row.ip_proto, layer.buf, layer.l4, layer.data_wire_end
    if proto not in (6, 17, 1, 58) or len(buf) < end:
        return False
    msg = buf[off:end]
    if proto == 17:
        checksum = _u16(buf, off + 6)
        if not whole_frame or (row.ip_version == 4 and checksum == 0):
            return False
        if checksum == 0 and len(msg) > 8 + 8 + 14 and msg[8] & 0x08 and _u16(buf, off + 2) == PORT_VXLAN_ZEEK:
            return False
    acc = 0
    if proto != 1:  # ICMP (IPv4) has no pseudo-header
        at = 12 if row.ip_version == 4 else 0
        pseudo = row.src_ip[at:] + row.dst_ip[at:]
        length = len(msg)
        acc = _sum16(pseudo) + proto + (length & 0xFFFF) + (length >> 16 if row.ip_version == 6 else 0)
    return _sum16(msg, acc) != 0xFFFF


# ---------------------------------------------------------------- ICMP errors: the header they quote

ICMP_QUOTE = Tunnel.ICMP_QUOTE.value


def _icmp_error(proto: int, icmp_type: int) -> bool:
    """Unreachable, time exceeded, parameter problem (and ICMPv6 packet too big): they quote
    the packet they report on (Zeek's Context4/Context6)."""
    return icmp_type in (3, 11, 12) if proto == 1 else 1 <= icmp_type <= 4


def _quote(row: Row, buf: bytes, q: int, end: int, version: int) -> None:
    """The header quoted at ``q`` into ``row`` (see _decode.c's quote: OK with the IP header
    and 4 more bytes, TRUNCATED with fewer, MALFORMED if not IP of the ICMP's version,
    FRAGMENT for a non-first fragment)."""
    avail = end - q
    row.ip_version, row.status = version, Status.TRUNCATED
    if avail < (20 if version == 4 else 40):
        return
    if buf[q] >> 4 != version:
        row.status = Status.MALFORMED
        return
    later_fragment = False
    if version == 4:
        ip = _hdr(dpkt.ip.IP, buf, q)
        hl = ip.hl * 4
        if hl < 20:
            row.status = Status.MALFORMED
            return
        nh = ip.p
        row.ip_len, row.ip_id, row.ttl, row.frag_offset = ip.len, ip.id, ip.ttl, ip.offset
        row.frag = (FRAG_MF if ip.mf else 0) | (FRAG_DF if ip.df else 0) | (FRAG_IS_FRAGMENT if ip.mf or ip.offset else 0)
        later_fragment = ip.offset != 0
        row.src_ip, row.dst_ip = _mapped(ip.src), _mapped(ip.dst)
    else:
        ip6 = _hdr(dpkt.ip6.IP6, buf, q)
        nh, hl = ip6.nxt, 40
        row.ip_len, row.ttl, row.src_ip, row.dst_ip = ip6.plen + 40, ip6.hlim, ip6.src, ip6.dst
        for _ in range(MAX_IP6_EXT):
            if nh not in IP6_EXT_HEADERS:
                break
            if avail < hl + 8:
                return
            at = q + hl
            ext = 8 if nh == 44 else (buf[at + 1] + 2) * 4 if nh == 51 else (buf[at + 1] + 1) * 8
            if nh == 44:
                word = _u16(buf, at + 2)
                row.frag_offset, row.ip_id = word >> 3, struct.unpack_from(">I", buf, at + 4)[0]
                row.frag = (FRAG_MF if word & 1 else 0) | (FRAG_IS_FRAGMENT if word & 1 or word >> 3 else 0)
                later_fragment = (word >> 3) != 0
            nh = buf[at]
            hl += ext
        if nh in IP6_EXT_HEADERS:
            row.status = Status.MALFORMED
            return
    row.ip_proto = nh
    if later_fragment:
        row.status = Status.FRAGMENT
        return
    if avail < hl + 4:
        return
    t = q + hl
    if nh in (6, 17):
        row.src_port, row.dst_port = struct.unpack_from(">HH", buf, t)
        if nh == 6 and avail >= hl + 8:
            row.seq = struct.unpack_from(">I", buf, t + 4)[0]
    elif nh in (1, 58):
        row.icmp_type, row.icmp_code = buf[t], buf[t + 1]
    row.status = Status.OK


# ---------------------------------------------------------------- one record


def _decode_ip(row: Row, buf: bytes, off: int, wire_end: int, version: int, ctx, depth: int, ts: int):
    """Status and the tunnel-step layer (None unless OK) of the IP packet at ``off``."""
    row.ip_version = version  # as announced by the link layer, even if the header is cut
    try:
        layer = _ip(row, buf, off, wire_end, version, ctx, depth, ts)
        row.status = Status.OK
        if ctx.verify_checksums:
            whole_frame = layer.buf is not buf or len(buf) >= wire_end  # a reassembled datagram is whole
            row.bad_checksum = int(_transport_bad(row, layer, whole_frame))
        return layer
    except BadChecksum:
        row.status = Status.BAD_CHECKSUM
    except Cut:
        row.status = Status.TRUNCATED
    except Impossible:
        row.status = Status.MALFORMED
    except Held:
        row.status = Status.FRAGMENT
    return None


def decode_record(buf: bytes, linktype: int, wirelen: int | None = None, ts: int = 0, ctx=None) -> list[Row]:
    """Decode one record's captured bytes (never raises on bad input): its row, then one
    row per tunnel layer inside it.

    ``wirelen``: the frame's length on the wire; an IP length reaching beyond it is
    impossible (MALFORMED), whereas one beyond the captured bytes is a snapshot cut.
    """
    ctx = ctx if ctx is not None else Decoder()
    row = Row()
    rows = [row]
    wire_end = max(len(buf), wirelen or 0)
    try:
        try:
            link = _link(row, buf, linktype)
        except NotImplementedError:
            row.status = Status.UNSUPPORTED_LINK
            return rows
        if link is None:
            row.status = Status.NON_IP
            return rows
        version, off = link
        if version == 0:  # raw IP: the version nibble says which
            version = _u8(buf, off) >> 4
            if version not in (4, 6):
                raise Impossible
    except Cut:
        row.status = Status.TRUNCATED
        return rows
    except Impossible:
        row.status = Status.MALFORMED
        return rows
    depth = 0
    while True:
        layer = _decode_ip(row, buf, off, wire_end, version, ctx, depth, ts)
        if layer is None or not ctx.decap or depth >= MAX_TUNNEL_DEPTH or row.bad_checksum:
            return rows  # Zeek analyses nothing inside a packet whose checksum is wrong
        if row.ip_proto in (1, 58) and _icmp_error(row.ip_proto, row.icmp_type):
            child = Row()
            _quote(child, layer.buf, layer.data + ICMP_HEADER, layer.data_end, version)
            child.vlan, child.inner_vlan = row.vlan, row.inner_vlan
            child.tunnel_depth, child.tunnel_type = depth + 1, ICMP_QUOTE
            child.tunnel_src_ip, child.tunnel_dst_ip = row.src_ip, row.dst_ip
            # the ICMP error's type and code, as flows key ICMP
            child.tunnel_src_port, child.tunnel_dst_port, child.tunnel_proto = row.icmp_type, row.icmp_code, row.ip_proto
            rows.append(child)
            return rows
        inner = _find_inner(row, layer)
        if inner is None:
            return rows
        child = Row()
        body = layer.buf[: layer.data_end]
        version = _inner_link(child, body, inner)
        if version not in (4, 6):
            return rows
        depth += 1
        child.tunnel_depth, child.tunnel_type = depth, inner.type
        child.tunnel_src_ip, child.tunnel_dst_ip = row.src_ip, row.dst_ip
        child.tunnel_src_port, child.tunnel_dst_port, child.tunnel_proto = row.src_port, row.dst_port, row.ip_proto
        rows.append(child)
        row, buf, off, wire_end = child, body, inner.pos, layer.data_wire_end


def decode_packet(buf: bytes, linktype: int, wirelen: int | None = None) -> Row:
    """The first row of a record decoded on its own (no tunnels followed)."""
    return decode_record(buf, linktype, wirelen, ctx=Decoder(decap=False))[0]


# ---------------------------------------------------------------- a chunk

_FROM_ROW = [f.name for f in PACKET_SCHEMA if f.name in Row.__slots__]


def batch_from_columns(chunk: RecordChunk, columns: dict[str, np.ndarray | list],
                       rec: np.ndarray | None = None) -> pa.RecordBatch:
    """Assemble a PACKET_SCHEMA batch from ``columns``; record columns not given come from
    ``chunk`` (row i from record ``rec[i]``, one row per record without ``rec``), columns
    given by neither are zero."""
    rec = np.arange(len(chunk)) if rec is None else rec
    n = len(rec)
    base = {
        "index": chunk.index[rec],
        "ts": chunk.ts[rec],
        "caplen": chunk.caplen[rec],
        "wirelen": chunk.wirelen[rec],
        "iface": chunk.iface[rec],
        "linktype": chunk.linktype[rec],
    }
    arrays = []
    for field in PACKET_SCHEMA:
        if field.name in columns:
            values = columns[field.name]
        elif field.name in base:
            values = base[field.name]
        elif pa.types.is_fixed_size_binary(field.type):
            values = [bytes(field.type.byte_width)] * n
        else:
            values = np.zeros(n, field.type.to_pandas_dtype())
        if pa.types.is_fixed_size_binary(field.type):
            flat = np.frombuffer(b"".join(values), dtype=np.uint8) if n else np.zeros(0, np.uint8)
            arrays.append(pa.FixedSizeBinaryArray.from_buffers(field.type, n, [None, pa.py_buffer(flat)]))
        elif pa.types.is_timestamp(field.type):
            arrays.append(pa.array(np.asarray(values, dtype=np.int64), type=pa.int64()).cast(field.type))
        else:
            arrays.append(pa.array(np.asarray(values, dtype=field.type.to_pandas_dtype()), type=field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=PACKET_SCHEMA)


class Decoder:
    """Decodes consecutive chunks of one capture, keeping pending fragments between them
    (the same interface as the fast engine's Decoder)."""

    def __init__(self, decap: bool = True, reassemble: bool = True, frag_timeout_ns: int = FRAG_TIMEOUT_NS,
                 frag_max_bytes: int = FRAG_MAX_BYTES, verify_checksums: bool = False):
        self.decap = decap
        self.verify_checksums = verify_checksums
        self.in_whole = False  # decoding a reassembled datagram (its IPv4 header was rewritten)
        self.frags = Reassembler(frag_timeout_ns, frag_max_bytes, reassemble)
        self.given_up = 0

    def take_given_up(self) -> int:
        n, self.frags.given_up = self.frags.given_up, 0
        self.given_up += n
        return n

    def finish(self) -> int:
        self.frags.clear()
        return self.take_given_up()

    def decode(self, chunk: RecordChunk) -> pa.RecordBatch:
        data = chunk.data.tobytes()
        starts, caplens, links = chunk.start.tolist(), chunk.caplen.tolist(), chunk.linktype.tolist()
        wirelens, stamps = chunk.wirelen.tolist(), chunk.ts.tolist()
        rows, rec = [], []
        for i, (s, c, lt, w, ts) in enumerate(zip(starts, caplens, links, wirelens, stamps)):
            if self.frags.pending:
                self.frags.expire(ts)
            out = decode_record(data[s : s + c], lt, w, ts, self)
            rows.extend(out)
            rec.extend([i] * len(out))
        columns = {name: [getattr(r, name) for r in rows] for name in _FROM_ROW}
        batch = batch_from_columns(chunk, columns, np.asarray(rec, np.int64))
        if self.verify_checksums:
            bad = pa.array(np.asarray([r.bad_checksum for r in rows], np.uint8), BAD_CHECKSUM_FIELD.type)
            batch = batch.append_column(BAD_CHECKSUM_FIELD, bad)
        return batch


def decode_chunk(chunk: RecordChunk, decap: bool = True) -> pa.RecordBatch:
    """Decode every packet of ``chunk`` with the per-packet reference rules (fragments
    reassembled within the chunk)."""
    dec = Decoder(decap)
    batch = dec.decode(chunk)
    dec.finish()
    return batch
