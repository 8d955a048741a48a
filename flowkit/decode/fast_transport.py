"""TCP, UDP and ICMP headers for the fast engine, vectorized per protocol.

Input: the packets that reached the transport layer (row ids, absolute transport
header positions, packet ends, ip_proto, transport length from the IP header).
``payload_len`` always derives from the IP length, never from the captured length,
so snaplen-limited captures still count the bytes that were on the wire.
"""
from __future__ import annotations

import numpy as np

from flowkit.decode.fast_bytes import ByteView, Columns
from flowkit.decode.schema import OPT_MSS, OPT_SACK, OPT_SACK_PERM, OPT_TS, OPT_WSCALE, Status

TCP, UDP, ICMP, ICMPV6 = 6, 17, 1, 58
# type, code, checksum, 4 bytes rest-of-header; Zeek's ICMP_MINLEN, below it Zeek
# reports truncated_header and ignores the packet
ICMP_HEADER = 8
MAX_TCP_OPTIONS = 40  # at most 40 option bytes, so at most 40 options
NOP_NOP_TS = 0x0101080A  # NOP, NOP, kind 8 (timestamps), length 10


def decode_transport(view: ByteView, cols: Columns, rows, pos, end, proto, l4len) -> None:
    tcp = proto == TCP
    udp = proto == UDP
    icmp = (proto == ICMP) | (proto == ICMPV6)
    other = ~(tcp | udp | icmp)
    cols["payload_len"][rows[other]] = l4len[other]
    if tcp.any():
        _tcp(view, cols, rows[tcp], pos[tcp], end[tcp], l4len[tcp])
    if udp.any():
        _udp(view, cols, rows[udp], pos[udp], end[udp], l4len[udp])
    if icmp.any():
        _icmp(view, cols, rows[icmp], pos[icmp], end[icmp], l4len[icmp])


def _ports(view: ByteView, cols: Columns, rows, pos, avail) -> None:
    has = avail >= 4
    r = rows[has]
    word = view.u32(pos[has])
    cols["src_port"][r] = word >> 16
    cols["dst_port"][r] = word & 0xFFFF


def _split(cols: Columns, rows, l4len, avail, need: int):
    """Fail packets whose IP length cannot hold the header (MALFORMED) or whose
    capture ends inside it (TRUNCATED); return the mask of complete headers."""
    malformed = l4len < need
    truncated = ~malformed & (avail < need)
    cols.fail(rows[malformed], Status.MALFORMED)
    cols.fail(rows[truncated], Status.TRUNCATED)
    return ~(malformed | truncated)


def _udp(view, cols, rows, pos, end, l4len) -> None:
    avail = end - pos
    _ports(view, cols, rows, pos, avail)
    ok = _split(cols, rows, l4len, avail, 8)
    r = rows[ok]
    cols["udp_len"][r] = view.u16(pos[ok] + 4)
    cols["payload_len"][r] = l4len[ok] - 8


def _icmp(view, cols, rows, pos, end, l4len) -> None:
    avail = end - pos
    typed = avail >= 2
    cols["icmp_type"][rows[typed]] = view.u8(pos[typed])
    cols["icmp_code"][rows[typed]] = view.u8(pos[typed] + 1)
    ok = _split(cols, rows, l4len, avail, ICMP_HEADER)
    cols["payload_len"][rows[ok]] = l4len[ok] - ICMP_HEADER


def _tcp(view, cols, rows, pos, end, l4len) -> None:
    avail = end - pos
    _ports(view, cols, rows, pos, avail)
    ok = _split(cols, rows, l4len, avail, 20)
    rows, pos, avail, l4len = rows[ok], pos[ok], avail[ok], l4len[ok]
    word = view.u32(pos + 12)  # data offset, NS, flags, window
    flags = (word >> 16) & 0x1FF  # byte 13 plus the NS bit from byte 12
    hlen = (word >> 28).astype(np.int64) * 4
    cols["seq"][rows] = view.u32(pos + 4)
    cols["ack"][rows] = view.u32(pos + 8)
    cols["tcp_flags"][rows] = flags
    cols["window"][rows] = word & 0xFFFF
    cols["tcp_hdr_len"][rows] = hlen
    malformed = (hlen < 20) | (hlen > l4len)
    truncated = ~malformed & (avail < hlen)
    cols.fail(rows[malformed], Status.MALFORMED)
    cols.fail(rows[truncated], Status.TRUNCATED)
    good = ~(malformed | truncated)
    cols["payload_len"][rows[good]] = l4len[good] - hlen[good]
    opt = good & (hlen > 20)
    if opt.any():
        _tcp_options(view, cols, rows[opt], pos[opt] + 20, pos[opt] + hlen[opt])


def _tcp_options(view, cols, rows, cur, stop) -> None:
    """Walk the option lists of many packets at once, one option per round.

    A malformed option (length < 2 or past the header) ends that packet's walk
    without changing its status: the header itself is complete.
    """
    bits = np.zeros(len(rows), np.uint8)
    # Most segments of an established connection carry exactly NOP NOP TS (12 bytes):
    # read those directly, walk only the rest.
    common = (stop - cur == 12) & (view.u32(cur) == NOP_NOP_TS)
    r, c = rows[common], cur[common]
    cols["tsval"][r] = view.u32(c + 4)
    cols["tsecr"][r] = view.u32(c + 8)
    bits[common] = OPT_TS
    live = np.flatnonzero(~common)
    for _ in range(MAX_TCP_OPTIONS):
        live = live[cur[live] < stop[live]]
        if len(live) == 0:
            break
        c = cur[live]
        kind = view.u8(c)
        nop = kind == 1
        cur[live[nop]] = c[nop] + 1
        nops = live[nop]
        rest = ~nop & (kind != 0) & (c + 1 < stop[live])
        live, c, kind = live[rest], c[rest], kind[rest]
        size = view.u8(c + 1).astype(np.int64)
        fits = (size >= 2) & (c + size <= stop[live])
        live, c, kind, size = live[fits], c[fits], kind[fits], size[fits]
        r = rows[live]
        m = (kind == 2) & (size == 4)
        cols["mss"][r[m]] = view.u16(c[m] + 2)
        bits[live[m]] |= OPT_MSS
        m = (kind == 3) & (size == 3)
        cols["wscale"][r[m]] = view.u8(c[m] + 2)
        bits[live[m]] |= OPT_WSCALE
        m = (kind == 4) & (size == 2)
        bits[live[m]] |= OPT_SACK_PERM
        m = kind == 5
        bits[live[m]] |= OPT_SACK
        m = (kind == 8) & (size == 10)
        cols["tsval"][r[m]] = view.u32(c[m] + 2)
        cols["tsecr"][r[m]] = view.u32(c[m] + 6)
        bits[live[m]] |= OPT_TS
        cur[live] = c + size
        # EOL, cut or bad options left ``live`` above; NOPs go on to the next round
        live = np.concatenate([nops, live])
    cols["tcp_opts"][rows] = bits
