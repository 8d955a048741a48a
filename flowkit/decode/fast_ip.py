"""IPv4 and IPv6 headers for the fast engine, vectorized over the packets of each version.

Each function takes the packets whose link layer announced that version (row ids,
absolute header positions, packet ends), fills the IP columns, sets final statuses
(TRUNCATED, MALFORMED, FRAGMENT) and returns the packets that go on to the transport
layer, as ``(rows, transport position, ip_proto, transport length from the IP header)``.
"""
from __future__ import annotations

import numpy as np

from flowkit.decode.fast_bytes import ByteView, Columns
from flowkit.decode.schema import FRAG_DF, FRAG_IS_FRAGMENT, FRAG_MF, Status

IPV6_EXT_HEADERS = (0, 43, 44, 51, 60)  # hop-by-hop, routing, fragment, AH, dest options
IPV6_FRAGMENT, IPV6_AH = 44, 51
MAX_IPV6_EXT = 8

Continue = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


_MAPPED_WORD = np.frombuffer(b"\0\0\xff\xff", "<u4")[0]  # bytes 8..11 of ::ffff:a.b.c.d


def _put_mapped(column: np.ndarray, rows: np.ndarray, raw4: np.ndarray) -> None:
    """Store IPv4 addresses (uint32 holding the 4 bytes in memory order) as
    IPv4-mapped IPv6 into a k x 16 byte column, through a k x 4 word view."""
    words = column.view("<u4")
    words[rows, 2] = _MAPPED_WORD
    words[rows, 3] = raw4


def _fail_short(view: ByteView, cols: Columns, rows, pos, avail, version: int) -> None:
    """Packets ending inside the fixed IP header: TRUNCATED, unless the first byte
    already shows the wrong IP version (then the header is impossible: MALFORMED)."""
    cols.fail(rows, Status.TRUNCATED)
    has = avail >= 1
    wrong = (view.u8(pos[has]) >> 4) != version
    cols.fail(rows[has][wrong], Status.MALFORMED)


def decode_ipv4(view: ByteView, cols: Columns, rows, pos, end, wire_end) -> Continue:
    cols["ip_version"][rows] = 4
    avail = end - pos
    short = avail < 20
    _fail_short(view, cols, rows[short], pos[short], avail[short], 4)
    keep = ~short
    rows, pos, avail, wire_end = rows[keep], pos[keep], avail[keep], wire_end[keep]

    # three 32-bit words hold every fixed field: fewer, wider gathers
    w0, w1, w2 = view.u32(pos), view.u32(pos + 4), view.u32(pos + 8)
    b0 = (w0 >> 24).astype(np.uint8)
    ihl = (b0 & 0x0F).astype(np.int64) * 4
    total = (w0 & 0xFFFF).astype(np.int64)
    # TCP segmentation offload leaves total length 0 in captures taken on the sender:
    # use the captured bytes instead, as Zeek does (weird "ip_hdr_len_zero")
    tso = total == 0
    total[tso] = avail[tso]
    flags_off = w1 & 0xFFFF
    proto = ((w2 >> 16) & 0xFF).astype(np.uint8)
    cols["ip_len"][rows] = total
    cols["ip_id"][rows] = w1 >> 16
    cols["ttl"][rows] = w2 >> 24
    cols["ip_proto"][rows] = proto
    _put_mapped(cols["src_ip"], rows, view.raw4(pos + 12))
    _put_mapped(cols["dst_ip"], rows, view.raw4(pos + 16))
    frag_offset = flags_off & 0x1FFF
    # MF (bit 13) and DF (bit 14) shift straight onto FRAG_MF = 1 and FRAG_DF = 2
    frag = ((flags_off >> 13) & (FRAG_MF | FRAG_DF)) | np.where(flags_off & 0x3FFF, FRAG_IS_FRAGMENT, 0)
    cols["frag"][rows] = frag
    cols["frag_offset"][rows] = frag_offset

    # a total length beyond the frame's length on the wire is impossible (not a snaplen cut)
    malformed = ((b0 >> 4) != 4) | (ihl < 20) | (total < ihl) | (pos + total > wire_end)
    truncated = ~malformed & (avail < ihl)
    cols.fail(rows[malformed], Status.MALFORMED)
    cols.fail(rows[truncated], Status.TRUNCATED)
    good = ~(malformed | truncated)
    l4len = total - ihl
    later = good & (frag_offset > 0)
    cols.fail(rows[later], Status.FRAGMENT)
    cols["payload_len"][rows[later]] = l4len[later]
    go = good & (frag_offset == 0)
    return rows[go], pos[go] + ihl[go], proto[go], l4len[go]


def decode_ipv6(view: ByteView, cols: Columns, rows, pos, end, wire_end) -> Continue:
    cols["ip_version"][rows] = 6
    avail = end - pos
    short = avail < 40
    _fail_short(view, cols, rows[short], pos[short], avail[short], 6)
    keep = ~short
    rows, pos, end, wire_end = rows[keep], pos[keep], end[keep], wire_end[keep]

    b0 = view.u8(pos)
    plen = view.u16(pos + 4).astype(np.int64)
    nh = view.u8(pos + 6)
    cols["ip_len"][rows] = plen + 40
    cols["ttl"][rows] = view.u8(pos + 7)
    cols["src_ip"][rows] = view.rows16(pos + 8)
    cols["dst_ip"][rows] = view.rows16(pos + 24)
    bad = ((b0 >> 4) != 6) | (pos + 40 + plen > wire_end)
    cols["ip_proto"][rows] = nh
    cols.fail(rows[bad], Status.MALFORMED)
    keep = ~bad
    rows, pos, end, plen, nh = rows[keep], pos[keep], end[keep], plen[keep], nh[keep]

    # extension-header chain: a bounded loop over header depth, vectorized over packets
    cur = pos + 40
    used = np.zeros(len(rows), np.int64)  # extension bytes consumed
    live = np.ones(len(rows), bool)  # still walking the chain (not failed)
    for _ in range(MAX_IPV6_EXT + 1):
        ext = np.flatnonzero(live & np.isin(nh, IPV6_EXT_HEADERS))
        if len(ext) == 0:
            break
        if _ == MAX_IPV6_EXT:  # a chain deeper than flowkit follows
            cols.fail(rows[ext], Status.MALFORMED)
            live[ext] = False
            break
        kind = nh[ext]
        is_frag = kind == IPV6_FRAGMENT
        need = np.where(is_frag, 8, 2)
        short = (end[ext] - cur[ext]) < need
        cols.fail(rows[ext[short]], Status.TRUNCATED)
        live[ext[short]] = False
        ext, kind, is_frag = ext[~short], kind[~short], is_frag[~short]
        c = cur[ext]
        b1 = view.u8(c + 1).astype(np.int64)
        hlen = np.where(kind == IPV6_AH, (b1 + 2) * 4, (b1 + 1) * 8)
        hlen[is_frag] = 8
        over = used[ext] + hlen > plen[ext]
        cols.fail(rows[ext[over]], Status.MALFORMED)
        live[ext[over]] = False
        cut = ~over & (end[ext] - c < hlen)
        cols.fail(rows[ext[cut]], Status.TRUNCATED)
        live[ext[cut]] = False
        fine = ~(over | cut)
        ext, c, hlen, is_frag = ext[fine], c[fine], hlen[fine], is_frag[fine]
        nh[ext] = view.u8(c)
        cur[ext] = c + hlen
        used[ext] += hlen

        fr, fc = ext[is_frag], c[is_frag]
        if len(fr):
            word = view.u16(fc + 2)
            offset = word >> 3
            more = (word & 1) != 0
            frows = rows[fr]
            cols["ip_id"][frows] = view.u32(fc + 4)
            cols["frag_offset"][frows] = offset
            bits = np.where(more, FRAG_MF, 0) | np.where(more | (offset > 0), FRAG_IS_FRAGMENT, 0)
            cols["frag"][frows] = bits
            later = offset > 0
            cols.fail(frows[later], Status.FRAGMENT)
            cols["ip_proto"][frows[later]] = nh[fr[later]]
            cols["payload_len"][frows[later]] = plen[fr[later]] - used[fr[later]]
            live[fr[later]] = False

    cols["ip_proto"][rows[live]] = nh[live]
    return rows[live], cur[live], nh[live], plen[live] - used[live]
