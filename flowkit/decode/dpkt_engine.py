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
    PACKET_SCHEMA,
    Status,
)

# Ethertypes, PPP protocols and link types handled (values from the IEEE/IANA/tcpdump registries).
ETH_IP4, ETH_IP6 = 0x0800, 0x86DD
ETH_VLAN_TAGS = (0x8100, 0x88A8, 0x9100)
ETH_MPLS = (0x8847, 0x8848)
ETH_PPPOE_SESSION = 0x8864
PPP_IP4, PPP_IP6 = 0x0021, 0x0057
ETH_VNTAG = 0x8926  # 4-byte tag, then the next ethertype
ETH_PBB = 0x88E7  # 802.1ah: 4-byte I-TAG, then a whole inner Ethernet header
ETH_MAX_LEN = 1500  # a type field up to here is an 802.3 length: LLC follows
ETHERTYPE_MIN = 0x0600  # SLL / Cisco HDLC protocol values below this are no ethertype
LLC_SNAP = b"\xaa\xaa\x03"  # DSAP, SSAP, control of SNAP; then OUI 0 + ethertype for IP
MAX_VLAN_TAGS = 4  # deeper stacks are not IP as far as flowkit is concerned
MAX_SHIMS = 8  # VLAN tags, VN-Tags, PBB and LLC/SNAP headers peeled before the payload type
MAX_MPLS_LABELS = 16
MAX_IP6_EXT = 8

DLT_NULL, DLT_EN10MB, DLT_PPP, DLT_RAW_12, DLT_RAW_14 = 0, 1, 9, 12, 14
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
    )  # fmt: skip

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)
        self.src_ip = self.dst_ip = bytes(16)


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
        for _ in range(MAX_MPLS_LABELS):
            if len(buf) - off < 4:
                raise Cut
            bottom = buf[off + 2] & 0x01
            off += 4
            if bottom:
                version = _u8(buf, off) >> 4  # MPLS has no payload type: the IP version nibble says
                return (version, off) if version in (4, 6) else None
        return None
    if ethertype == ETH_PPPOE_SESSION:
        _hdr(dpkt.pppoe.PPPoE, buf, off)  # version/type, code, session, length: all must be there
        return _ppp_protocol(buf, off + dpkt.pppoe.PPPoE.__hdr_len__)
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
    if qos and buf[off + qos_at] & 0x80:  # A-MSDU: the body is subframes, not one LLC frame
        return None
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
        proto = _u16(buf, 2)
        return None if proto < ETHERTYPE_MIN else _ethertype_payload(row, buf, 4, proto)
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
        return {PPP_IP4: (4, off), PPP_IP6: (6, off)}.get(proto)
    raise NotImplementedError  # caller turns this into UNSUPPORTED_LINK


# ---------------------------------------------------------------- network layer


class LaterFragment(Exception):
    """A non-first fragment: the bytes after the IP header(s) are not a transport header."""


def _check_version(buf: bytes, off: int, version: int, size: int) -> None:
    """A header cut short is TRUNCATED, unless its first byte already shows the wrong version."""
    if len(buf) - off < size:
        if len(buf) > off and buf[off] >> 4 != version:
            raise Impossible
        raise Cut


def _ipv4(row: Row, buf: bytes, off: int, wire_end: int) -> tuple[int, int]:
    """Fill the IPv4 columns; returns (transport header offset, transport length from the IP header)."""
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
    if ip.offset:
        row.payload_len = total - hlen
        raise LaterFragment
    return off + hlen, total - hlen


def _ipv6(row: Row, buf: bytes, off: int, wire_end: int) -> tuple[int, int]:
    """Fill the IPv6 columns, walking extension headers; returns (transport offset, its length).

    ``row.ip_proto`` stays the fixed header's next-header value unless the chain is
    walked to its end (or to a later fragment, whose next header is then known).
    """
    _check_version(buf, off, 6, dpkt.ip6.IP6.__hdr_len__)
    ip6 = _hdr(dpkt.ip6.IP6, buf, off)
    row.src_ip, row.dst_ip = ip6.src, ip6.dst
    row.ip_len, row.ttl, row.ip_proto = ip6.plen + 40, ip6.hlim, ip6.nxt
    if ip6.v != 6 or off + 40 + ip6.plen > wire_end:
        raise Impossible
    nxt, pos, end = ip6.nxt, off + 40, off + 40 + ip6.plen
    for depth in range(MAX_IP6_EXT + 1):
        if nxt not in IP6_EXT_HEADERS:
            break
        if depth == MAX_IP6_EXT:
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
        nxt = buf[pos]
        pos += length
        if frag is not None:  # (the last fragment header describes the packet, should there be two)
            row.ip_id, row.frag_offset = frag.id, frag.frag_off
            row.frag = (FRAG_MF if frag.m_flag else 0) | (FRAG_IS_FRAGMENT if frag.m_flag or frag.frag_off else 0)
            if frag.frag_off:
                row.ip_proto, row.payload_len = nxt, end - pos
                raise LaterFragment
    row.ip_proto = nxt
    return pos, end - pos


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


def _transport(row: Row, buf: bytes, off: int, l4len: int) -> None:
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
        _tcp_options(row, buf, off + 20, off + hlen)
    elif proto == 17:
        _ports(row, buf, off)
        _need(buf, off, l4len, 8)
        udp = _hdr(dpkt.udp.UDP, buf, off)
        row.udp_len = udp.ulen
        row.payload_len = l4len - 8  # from the IP length, like TCP (udp_len is kept as sent)
    elif proto in (1, 58):
        if len(buf) - off >= 2:
            row.icmp_type, row.icmp_code = buf[off], buf[off + 1]
        _need(buf, off, l4len, ICMP_HEADER)
        row.payload_len = l4len - ICMP_HEADER
    else:
        row.payload_len = l4len


# ---------------------------------------------------------------- one packet


def decode_packet(buf: bytes, linktype: int, wirelen: int | None = None) -> Row:
    """Decode one packet's captured bytes into a Row (never raises on bad input).

    ``wirelen``: the frame's length on the wire; an IP length reaching beyond it is
    impossible (MALFORMED), whereas one beyond the captured bytes is a snapshot cut.
    """
    row = Row()
    wire_end = max(len(buf), wirelen or 0)
    try:
        try:
            link = _link(row, buf, linktype)
        except NotImplementedError:
            row.status = Status.UNSUPPORTED_LINK
            return row
        if link is None:
            row.status = Status.NON_IP
            return row
        version, off = link
        if version == 0:  # raw IP: the version nibble says which
            version = _u8(buf, off) >> 4
            if version not in (4, 6):
                raise Impossible
        row.ip_version = version  # as announced by the link layer, even if the header is cut
        if version == 4:
            off, l4len = _ipv4(row, buf, off, wire_end)
        else:
            off, l4len = _ipv6(row, buf, off, wire_end)
        _transport(row, buf, off, l4len)
        row.status = Status.OK
    except Cut:
        row.status = Status.TRUNCATED
    except Impossible:
        row.status = Status.MALFORMED
    except LaterFragment:
        row.status = Status.FRAGMENT
    return row


# ---------------------------------------------------------------- a chunk

_FROM_ROW = [f.name for f in PACKET_SCHEMA if f.name in Row.__slots__]


def batch_from_columns(chunk: RecordChunk, columns: dict[str, np.ndarray | list]) -> pa.RecordBatch:
    """Assemble a PACKET_SCHEMA batch from ``columns``; record columns not given come from ``chunk``."""
    n = len(chunk)
    base = {
        "index": chunk.index,
        "ts": chunk.ts,
        "caplen": chunk.caplen,
        "wirelen": chunk.wirelen,
        "iface": chunk.iface,
        "linktype": chunk.linktype,
    }
    arrays = []
    for field in PACKET_SCHEMA:
        values = columns[field.name] if field.name in columns else base[field.name]
        if pa.types.is_fixed_size_binary(field.type):
            flat = np.frombuffer(b"".join(values), dtype=np.uint8) if n else np.zeros(0, np.uint8)
            arrays.append(pa.FixedSizeBinaryArray.from_buffers(field.type, n, [None, pa.py_buffer(flat)]))
        elif pa.types.is_timestamp(field.type):
            arrays.append(pa.array(np.asarray(values, dtype=np.int64), type=pa.int64()).cast(field.type))
        else:
            arrays.append(pa.array(np.asarray(values, dtype=field.type.to_pandas_dtype()), type=field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=PACKET_SCHEMA)


def decode_chunk(chunk: RecordChunk) -> pa.RecordBatch:
    """Decode every packet of ``chunk`` with the per-packet reference rules."""
    data = chunk.data.tobytes()
    starts, caplens, links = chunk.start.tolist(), chunk.caplen.tolist(), chunk.linktype.tolist()
    wirelens = chunk.wirelen.tolist()
    rows = [
        decode_packet(data[s : s + c], lt, w) for s, c, lt, w in zip(starts, caplens, links, wirelens)
    ]
    columns = {name: [getattr(r, name) for r in rows] for name in _FROM_ROW}
    return batch_from_columns(chunk, columns)
