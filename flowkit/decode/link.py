"""Link layer of the fast engine: find where the IP header starts, per link type.

Works on index subsets (one per link type) and returns, for every packet, the
absolute position of its network header and the IP version the link layer
announced (4 or 6; 0 when the packet ends here with a final status). Loops run over
header layers (VLAN tags, VN-Tags, PBB, LLC/SNAP, MPLS labels, NFLOG TLVs), never
over packets.
"""
from __future__ import annotations

import numpy as np

from flowkit.decode.fast_bytes import ByteView, Columns
from flowkit.decode.schema import Status

# DLT / LINKTYPE values
ETHERNET, NULL, PPP, RAW_12, RAW_14, PPP_HDLC, RAW, LOOP, SLL, IPV4, IPV6, SLL2 = (
    1, 0, 9, 12, 14, 50, 101, 108, 113, 228, 229, 276,
)
C_HDLC, IEEE802_11, RADIOTAP, NFLOG = 104, 105, 127, 239
SUPPORTED = (
    ETHERNET, NULL, PPP, RAW_12, RAW_14, PPP_HDLC, RAW, LOOP, SLL, IPV4, IPV6, SLL2,
    C_HDLC, IEEE802_11, RADIOTAP, NFLOG,
)  # fmt: skip

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
MAX_VLAN_TAGS = 4
MPLS_TYPES = (0x8847, 0x8848)
MAX_MPLS_LABELS = 16
PPPOE_SESSION = 0x8864
VNTAG = 0x8926  # 4-byte tag, then the next ethertype
PBB = 0x88E7  # 802.1ah: 4-byte I-TAG, then a whole inner Ethernet header
PBB_HDR = 18
ETH_MAX_LEN = 1500  # a type field up to here is an 802.3 length: LLC follows
LLC_SNAP = (0xAA, 0xAA, 0x03)  # DSAP, SSAP, control of a SNAP header (then OUI + ethertype)
MAX_SHIMS = 8  # VLAN tags, VN-Tags, PBB and LLC/SNAP headers peeled before the payload type
ETHERTYPE_MIN = 0x0600  # SLL / Cisco HDLC protocol values below this are no ethertype
PPP_IPV4, PPP_IPV6 = 0x0021, 0x0057

# IEEE 802.11 frame control (byte 0: version, type, subtype; byte 1: flags)
WLAN_TYPE_DATA = 2
WLAN_NO_DATA = 0x40  # subtype bit: Null / CF-only frames carry no payload
WLAN_QOS = 0x80  # subtype bit: a 2-byte QoS control field follows the addresses
WLAN_DS_BITS = 0x03  # ToDS and FromDS both set: a fourth address
WLAN_PROTECTED = 0x40  # encrypted body (WEP/TKIP/CCMP): no readable LLC
WLAN_ORDER = 0x80  # on QoS data: a 4-byte HT control field follows QoS control
WLAN_AMSDU = 0x80  # QoS control bit 7: the body is A-MSDU subframes, not one LLC frame
RADIOTAP_MIN = 8  # version, pad, length, first present word

# NFLOG: family, version, resource id; then TLVs (length incl. its 4-byte header,
# type), both in the capturing host's byte order, taken as little-endian like Zeek
NFLOG_HDR = 4
NFULA_PAYLOAD = 9
NFLOG_AF_INET, NFLOG_AF_INET6 = 2, 10
MAX_NFLOG_TLVS = 32

# BSD address families: AF_INET is 2 everywhere; AF_INET6 is 24 (NetBSD/OpenBSD),
# 28 (FreeBSD), 30 (macOS), and the capture may come from any of them.
AF_INET = 2
AF_INET6 = (24, 28, 30)


class _Layer:
    """Packets of one subset being peeled: row ids, current position, end, verdicts."""

    def __init__(self, rows: np.ndarray, pos: np.ndarray, end: np.ndarray):
        self.rows = rows
        self.pos = pos
        self.end = end
        self.kind = np.zeros(len(rows), np.uint8)  # 4 / 6 once decided
        self.status = np.full(len(rows), 255, np.uint8)  # 255 = still undecided

    def avail(self, sel=slice(None)) -> np.ndarray:
        return self.end[sel] - self.pos[sel]


def decode_link(
    view: ByteView, cols: Columns, linktype: np.ndarray, pos: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return (network header position, announced IP version) for every packet."""
    n = len(pos)
    net_pos = pos.copy()
    kind = np.zeros(n, np.uint8)
    cols.status[:] = Status.UNSUPPORTED_LINK
    if n == 0:
        return net_pos, kind
    first = linktype[0]
    if (linktype == first).all():  # the common case: one link type per chunk
        groups = [(int(first), np.arange(n))]
    else:
        groups = [(int(t), np.flatnonzero(linktype == t)) for t in np.unique(linktype)]
    for lt, rows in groups:
        if lt not in SUPPORTED:
            continue
        layer = _Layer(rows, pos[rows].copy(), end[rows])
        _HANDLERS[lt](view, cols, layer, lt)
        undecided = layer.status == 255
        layer.status[undecided] = Status.OK
        layer.kind[~undecided] = 0  # a final status ends decoding here
        cols.status[rows] = layer.status
        net_pos[rows] = layer.pos
        kind[rows] = layer.kind
    return net_pos, kind


def _decide(layer: _Layer, sel: np.ndarray, status: Status) -> None:
    """Give the selected (undecided) packets a final status."""
    layer.status[sel] = status


def _undecided(layer: _Layer) -> np.ndarray:
    return layer.status == 255


def _ethernet(view: ByteView, cols: Columns, layer: _Layer, lt: int) -> None:
    short = layer.avail() < 14
    _decide(layer, short, Status.TRUNCATED)
    etype = np.zeros(len(layer.rows), np.uint16)
    ok = np.flatnonzero(~short)
    etype[ok] = view.u16(layer.pos[ok] + 12)
    layer.pos[ok] += 14
    _ethertype(view, cols, layer, etype)


# header length and position of the 16-bit protocol (an ethertype) per link type
_PROTO_HEADERS = {SLL: (16, 14), SLL2: (20, 0), C_HDLC: (4, 2)}


def _sll(view: ByteView, cols: Columns, layer: _Layer, lt: int) -> None:
    # SLL: 16-byte header, protocol at 14. SLL2: 20-byte header, protocol at 0.
    # Cisco HDLC: address, control, then the protocol at 2.
    hdr, proto_at = _PROTO_HEADERS[lt]
    short = layer.avail() < hdr
    _decide(layer, short, Status.TRUNCATED)
    etype = np.zeros(len(layer.rows), np.uint16)
    ok = np.flatnonzero(~short)
    etype[ok] = view.u16(layer.pos[ok] + proto_at)
    layer.pos[ok] += hdr
    # small values here are Linux packet types (802.2, Novell, ...), not 802.3 lengths
    _decide(layer, _undecided(layer) & (etype < ETHERTYPE_MIN), Status.NON_IP)
    _ethertype(view, cols, layer, etype)


def _ethertype(view: ByteView, cols: Columns, layer: _Layer, etype: np.ndarray) -> None:
    """Dispatch on an ethertype: shim headers, then PPPoE / MPLS / IPv4 / IPv6 / other."""
    _shims(view, cols, layer, etype)

    und = _undecided(layer)
    layer.kind[und & (etype == ETH_IPV4)] = 4
    layer.kind[und & (etype == ETH_IPV6)] = 6

    pppoe = np.flatnonzero(und & (etype == PPPOE_SESSION))
    if len(pppoe):
        # 6-byte PPPoE session header, then the 2-byte PPP protocol
        short = layer.avail(pppoe) < 8
        _decide(layer, pppoe[short], Status.TRUNCATED)
        pppoe = pppoe[~short]
        proto = view.u16(layer.pos[pppoe] + 6)
        layer.kind[pppoe[proto == PPP_IPV4]] = 4
        layer.kind[pppoe[proto == PPP_IPV6]] = 6
        layer.pos[pppoe] += 8

    mpls = np.flatnonzero(und & np.isin(etype, MPLS_TYPES))
    for _ in range(MAX_MPLS_LABELS):
        if len(mpls) == 0:
            break
        short = layer.avail(mpls) < 4
        _decide(layer, mpls[short], Status.TRUNCATED)
        mpls = mpls[~short]
        bottom = (view.u8(layer.pos[mpls] + 2) & 1).astype(bool)
        layer.pos[mpls] += 4
        last = mpls[bottom]
        mpls = mpls[~bottom]
        # below the label stack there is no type field: the IP version nibble decides
        short = layer.avail(last) < 1
        _decide(layer, last[short], Status.TRUNCATED)
        last = last[~short]
        version = view.u8(layer.pos[last]) >> 4
        layer.kind[last[version == 4]] = 4
        layer.kind[last[version == 6]] = 6
    # deeper label stacks and everything else that is not IP
    _decide(layer, _undecided(layer) & (layer.kind == 0), Status.NON_IP)


def _shims(view: ByteView, cols: Columns, layer: _Layer, etype: np.ndarray) -> None:
    """Peel VLAN tags, VN-Tags, PBB I-TAGs and LLC/SNAP headers, updating ``etype``.

    One header per packet per round, at most MAX_SHIMS rounds; a type still naming a
    shim afterwards is NON_IP (the caller's dispatch finds no IP in it).
    """
    depth = np.zeros(len(layer.rows), np.uint8)  # VLAN tags read so far
    for _ in range(MAX_SHIMS):
        und = _undecided(layer)
        vlan = und & np.isin(etype, VLAN_TPIDS)
        vntag = und & (etype == VNTAG)
        pbb = und & (etype == PBB)
        llc = und & (etype <= ETH_MAX_LEN)
        if not (vlan.any() or vntag.any() or pbb.any() or llc.any()):
            break
        tagged = np.flatnonzero(vlan)
        if len(tagged):
            deep = depth[tagged] >= MAX_VLAN_TAGS  # a fifth tag: not followed
            _decide(layer, tagged[deep], Status.NON_IP)
            tagged = tagged[~deep]
            short = layer.avail(tagged) < 4
            _decide(layer, tagged[short], Status.TRUNCATED)
            tagged = tagged[~short]
            p = layer.pos[tagged]
            vid = view.u16(p) & 0x0FFF
            d = depth[tagged]
            rows = layer.rows[tagged]
            cols["vlan"][rows[d == 0]] = vid[d == 0]
            cols["inner_vlan"][rows[d == 1]] = vid[d == 1]
            etype[tagged] = view.u16(p + 2)
            layer.pos[tagged] = p + 4
            depth[tagged] = d + 1
        # VN-Tag: 4-byte tag, next ethertype at +4; PBB: I-TAG + inner MACs, type at +16
        for sel, size in ((vntag, 6), (pbb, PBB_HDR)):
            idx = np.flatnonzero(sel)
            if len(idx):
                short = layer.avail(idx) < size
                _decide(layer, idx[short], Status.TRUNCATED)
                idx = idx[~short]
                etype[idx] = view.u16(layer.pos[idx] + size - 2)
                layer.pos[idx] += size
        idx = np.flatnonzero(llc)
        if len(idx):
            _llc_snap(view, layer, idx, etype)


def _llc_snap(view: ByteView, layer: _Layer, idx: np.ndarray, etype: np.ndarray) -> None:
    """802.2 LLC: only SNAP with OUI 0 (an encapsulated ethertype) can carry IP."""
    short = layer.avail(idx) < 3
    _decide(layer, idx[short], Status.TRUNCATED)
    idx = idx[~short]
    p = layer.pos[idx]
    snap = (view.u8(p) == LLC_SNAP[0]) & (view.u8(p + 1) == LLC_SNAP[1]) & (view.u8(p + 2) == LLC_SNAP[2])
    _decide(layer, idx[~snap], Status.NON_IP)
    idx = idx[snap]
    short = layer.avail(idx) < 8
    _decide(layer, idx[short], Status.TRUNCATED)
    idx = idx[~short]
    p = layer.pos[idx]
    oui0 = (view.u8(p + 3) | view.u8(p + 4) | view.u8(p + 5)) == 0
    _decide(layer, idx[~oui0], Status.NON_IP)
    idx = idx[oui0]
    etype[idx] = view.u16(layer.pos[idx] + 6)
    layer.pos[idx] += 8


def _null(view: ByteView, cols: Columns, layer: _Layer, lt: int) -> None:
    # 4-byte address family: host byte order of the capturing machine for DLT_NULL
    # (either order here), network order for DLT_LOOP.
    short = layer.avail() < 4
    _decide(layer, short, Status.TRUNCATED)
    ok = np.flatnonzero(~short)
    fam = view.u32(layer.pos[ok])
    fams = [fam] if lt == LOOP else [fam, fam.byteswap()]
    for f in fams:
        layer.kind[ok[f == AF_INET]] = 4
        layer.kind[ok[np.isin(f, AF_INET6)]] = 6
    layer.pos[ok] += 4
    _decide(layer, _undecided(layer) & (layer.kind == 0), Status.NON_IP)


def _raw(view: ByteView, cols: Columns, layer: _Layer, lt: int) -> None:
    if lt == IPV4:
        layer.kind[:] = 4
        return
    if lt == IPV6:
        layer.kind[:] = 6
        return
    short = layer.avail() < 1
    _decide(layer, short, Status.TRUNCATED)
    ok = np.flatnonzero(~short)
    version = view.u8(layer.pos[ok]) >> 4
    layer.kind[ok[version == 4]] = 4
    layer.kind[ok[version == 6]] = 6
    _decide(layer, _undecided(layer) & (layer.kind == 0), Status.MALFORMED)


def _ppp(view: ByteView, cols: Columns, layer: _Layer, lt: int) -> None:
    # optional 0xff 0x03 address/control, then a 2-byte protocol, or 1 byte when
    # protocol-field compression is on (an odd first byte)
    short = layer.avail() < 1
    _decide(layer, short, Status.TRUNCATED)
    ok = np.flatnonzero(~short)
    # a leading 0xff is always the HDLC address byte (0xff is no PPP protocol)
    has_ac = view.u8(layer.pos[ok]) == 0xFF
    cut = has_ac & (layer.avail(ok) < 2)
    _decide(layer, ok[cut], Status.TRUNCATED)
    ok, has_ac = ok[~cut], has_ac[~cut]
    layer.pos[ok[has_ac]] += 2
    short = layer.avail(ok) < 1
    _decide(layer, ok[short], Status.TRUNCATED)
    ok = ok[~short]
    b0 = view.u8(layer.pos[ok])
    compressed = (b0 & 1).astype(bool)
    full = ok[~compressed]
    short = layer.avail(full) < 2
    _decide(layer, full[short], Status.TRUNCATED)
    full = full[~short]
    proto = np.zeros(len(layer.rows), np.uint16)
    proto[ok[compressed]] = b0[compressed]
    proto[full] = view.u16(layer.pos[full])
    layer.pos[ok[compressed]] += 1
    layer.pos[full] += 2
    und = _undecided(layer)
    layer.kind[und & (proto == PPP_IPV4)] = 4
    layer.kind[und & (proto == PPP_IPV6)] = 6
    _decide(layer, und & (layer.kind == 0), Status.NON_IP)


def _wlan(view: ByteView, cols: Columns, layer: _Layer, lt: int) -> None:
    if lt == RADIOTAP:
        # skip the radiotap header by its little-endian length; an FCS at the end of
        # the frame is left in place, as Zeek does (the IP length bounds the payload)
        short = layer.avail() < 4
        _decide(layer, short, Status.TRUNCATED)
        ok = np.flatnonzero(~short)
        p = layer.pos[ok]
        it_len = view.u8(p + 2).astype(np.int64) | (view.u8(p + 3).astype(np.int64) << 8)
        bad = it_len < RADIOTAP_MIN
        _decide(layer, ok[bad], Status.MALFORMED)
        ok, it_len = ok[~bad], it_len[~bad]
        cut = layer.avail(ok) < it_len
        _decide(layer, ok[cut], Status.TRUNCATED)
        layer.pos[ok[~cut]] += it_len[~cut]
    idx = np.flatnonzero(_undecided(layer))
    short = layer.avail(idx) < 2
    _decide(layer, idx[short], Status.TRUNCATED)
    idx = idx[~short]
    p = layer.pos[idx]
    fc0, fc1 = view.u8(p), view.u8(p + 1)
    # management/control frames, data subtypes without payload, encrypted bodies
    skip = (((fc0 >> 2) & 3) != WLAN_TYPE_DATA) | ((fc0 & WLAN_NO_DATA) != 0) | ((fc1 & WLAN_PROTECTED) != 0)
    _decide(layer, idx[skip], Status.NON_IP)
    keep = ~skip
    idx, fc0, fc1 = idx[keep], fc0[keep], fc1[keep]
    qos = (fc0 & WLAN_QOS) != 0
    qos_at = np.where((fc1 & WLAN_DS_BITS) == WLAN_DS_BITS, 30, 24)
    hdr = qos_at + np.where(qos, 2, 0) + np.where(qos & ((fc1 & WLAN_ORDER) != 0), 4, 0)
    cut = layer.avail(idx) < hdr
    _decide(layer, idx[cut], Status.TRUNCATED)
    idx, qos, qos_at, hdr = idx[~cut], qos[~cut], qos_at[~cut], hdr[~cut]
    q = idx[qos]
    amsdu = (view.u8(layer.pos[q] + qos_at[qos]) & WLAN_AMSDU) != 0
    _decide(layer, q[amsdu], Status.NON_IP)
    layer.pos[idx] += hdr
    # the body starts with an LLC header: an "802.3 length" type sends it there
    etype = np.zeros(len(layer.rows), np.uint16)
    _ethertype(view, cols, layer, etype)


def _nflog(view: ByteView, cols: Columns, layer: _Layer, lt: int) -> None:
    short = layer.avail() < NFLOG_HDR
    _decide(layer, short, Status.TRUNCATED)
    ok = np.flatnonzero(~short)
    p = layer.pos[ok]
    family, version = view.u8(p), view.u8(p + 1)
    _decide(layer, ok[version != 0], Status.MALFORMED)
    ip = version == 0
    _decide(layer, ok[ip & (family != NFLOG_AF_INET) & (family != NFLOG_AF_INET6)], Status.NON_IP)
    layer.pos[ok] += NFLOG_HDR
    want = np.zeros(len(layer.rows), np.uint8)
    want[ok[family == NFLOG_AF_INET]] = 4
    want[ok[family == NFLOG_AF_INET6]] = 6
    walk = np.flatnonzero(_undecided(layer))
    for _ in range(MAX_NFLOG_TLVS):
        if len(walk) == 0:
            break
        # the captured bytes ending before the payload TLV: cut (or no payload logged)
        short = layer.avail(walk) < 4
        _decide(layer, walk[short], Status.TRUNCATED)
        walk = walk[~short]
        p = layer.pos[walk]
        tlen = view.u8(p).astype(np.int64) | (view.u8(p + 1).astype(np.int64) << 8)
        ttype = view.u8(p + 2).astype(np.int64) | (view.u8(p + 3).astype(np.int64) << 8)
        bad = tlen < 4  # a TLV shorter than its own header
        _decide(layer, walk[bad], Status.MALFORMED)
        walk, tlen, ttype = walk[~bad], tlen[~bad], ttype[~bad]
        found = ttype == NFULA_PAYLOAD
        hit = walk[found]
        layer.pos[hit] += 4  # the IP packet; a cut inside it is the IP layer's business
        layer.kind[hit] = want[hit]
        walk, tlen = walk[~found], tlen[~found]
        padded = (tlen + 3) & ~3
        cut = layer.avail(walk) < padded
        _decide(layer, walk[cut], Status.TRUNCATED)
        walk, padded = walk[~cut], padded[~cut]
        layer.pos[walk] += padded
    _decide(layer, _undecided(layer) & (layer.kind == 0), Status.NON_IP)


_HANDLERS = {
    ETHERNET: _ethernet,
    SLL: _sll,
    SLL2: _sll,
    NULL: _null,
    LOOP: _null,
    RAW_12: _raw,
    RAW_14: _raw,
    RAW: _raw,
    IPV4: _raw,
    IPV6: _raw,
    PPP: _ppp,
    PPP_HDLC: _ppp,
    C_HDLC: _sll,
    IEEE802_11: _wlan,
    RADIOTAP: _wlan,
    NFLOG: _nflog,
}
