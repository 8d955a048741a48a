"""Link layer of the fast engine: find where the IP header starts, per link type.

Works on index subsets (one per link type) and returns, for every packet, the
absolute position of its network header and the IP version the link layer
announced (4 or 6; 0 when the packet ends here with a final status). Loops run over
header layers (VLAN tags, MPLS labels), never over packets.
"""
from __future__ import annotations

import numpy as np

from flowkit.decode.fast_bytes import ByteView, Columns
from flowkit.decode.schema import Status

# DLT / LINKTYPE values
ETHERNET, NULL, PPP, RAW_12, RAW_14, PPP_HDLC, RAW, LOOP, SLL, IPV4, IPV6, SLL2 = (
    1, 0, 9, 12, 14, 50, 101, 108, 113, 228, 229, 276,
)
SUPPORTED = (ETHERNET, NULL, PPP, RAW_12, RAW_14, PPP_HDLC, RAW, LOOP, SLL, IPV4, IPV6, SLL2)

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
MAX_VLAN_TAGS = 4
MPLS_TYPES = (0x8847, 0x8848)
MAX_MPLS_LABELS = 16
PPPOE_SESSION = 0x8864
PPP_IPV4, PPP_IPV6 = 0x0021, 0x0057

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


def _sll(view: ByteView, cols: Columns, layer: _Layer, lt: int) -> None:
    # SLL: 16-byte header, protocol at 14. SLL2: 20-byte header, protocol at 0.
    hdr, proto_at = (16, 14) if lt == SLL else (20, 0)
    short = layer.avail() < hdr
    _decide(layer, short, Status.TRUNCATED)
    etype = np.zeros(len(layer.rows), np.uint16)
    ok = np.flatnonzero(~short)
    etype[ok] = view.u16(layer.pos[ok] + proto_at)
    layer.pos[ok] += hdr
    _ethertype(view, cols, layer, etype)


def _ethertype(view: ByteView, cols: Columns, layer: _Layer, etype: np.ndarray) -> None:
    """Dispatch on an ethertype: VLAN tags, then PPPoE / MPLS / IPv4 / IPv6 / other."""
    depth = np.zeros(len(layer.rows), np.uint8)
    for _ in range(MAX_VLAN_TAGS):
        tagged = np.flatnonzero(np.isin(etype, VLAN_TPIDS) & _undecided(layer))
        if len(tagged) == 0:
            break
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
}
