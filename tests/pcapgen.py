"""Write pcap / pcapng captures byte by byte for tests (truth = how the file was built).

Stable, small API shared by every test module:

    write_pcap(path, packets, linktype=1, nanosecond=False, big_endian=False, snaplen=65535)
    write_pcapng(path, interfaces, packets, block="epb", big_endian=False, sections=None)
    pcap_bytes(...) / pcapng_bytes(...)  same, returning bytes instead of writing a file

Timestamps are given either as float seconds or as ``int`` nanoseconds (exact).
The helpers never validate: tests use them to build damaged files on purpose.
"""
from __future__ import annotations

import struct
from pathlib import Path

__all__ = [
    "pcap_header",
    "pcap_record",
    "pcap_bytes",
    "write_pcap",
    "pcapng_shb",
    "pcapng_idb",
    "pcapng_epb",
    "pcapng_spb",
    "pcapng_pb",
    "pcapng_block",
    "pcapng_bytes",
    "write_pcapng",
    "ts_ns",
    "ether_ip",
    "write_ip_pcap",
]

MAC = b"\x00\x11\x22\x33\x44\x55"


def ts_ns(ts) -> int:
    """Nanoseconds from float seconds (rounded) or int nanoseconds (as is)."""
    if isinstance(ts, int):
        return ts
    return int(round(ts * 1e9))


def _end(big_endian: bool) -> str:
    return ">" if big_endian else "<"


# ---------------------------------------------------------------- classic pcap
def pcap_header(linktype=1, nanosecond=False, big_endian=False, snaplen=65535) -> bytes:
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    return struct.pack(_end(big_endian) + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)


def pcap_record(ts, data: bytes, nanosecond=False, big_endian=False, wirelen=None, caplen=None) -> bytes:
    """One record; ``caplen``/``wirelen`` override the header fields (for damaged files)."""
    ns = ts_ns(ts)
    sec, frac = divmod(ns, 1_000_000_000)
    if not nanosecond:
        frac //= 1000
    cl = len(data) if caplen is None else caplen
    wl = len(data) if wirelen is None else wirelen
    return struct.pack(_end(big_endian) + "IIII", sec, frac, cl, wl) + data


def pcap_bytes(packets, linktype=1, nanosecond=False, big_endian=False, snaplen=65535) -> bytes:
    """``packets``: list of ``(ts, bytes)`` or ``(ts, bytes, wirelen)``."""
    out = [pcap_header(linktype, nanosecond, big_endian, snaplen)]
    for p in packets:
        wirelen = p[2] if len(p) > 2 else None
        out.append(pcap_record(p[0], p[1], nanosecond, big_endian, wirelen))
    return b"".join(out)


def write_pcap(path, packets, linktype=1, nanosecond=False, big_endian=False, snaplen=65535) -> Path:
    path = Path(path)
    path.write_bytes(pcap_bytes(packets, linktype, nanosecond, big_endian, snaplen))
    return path


def ether_ip(ip_packet) -> bytes:
    """An Ethernet II frame around an IPv4 or IPv6 packet (bytes or a dpkt object); the
    ethertype follows the packet's version nibble."""
    data = bytes(ip_packet)
    return MAC + MAC + (b"\x86\xdd" if data[0] >> 4 == 6 else b"\x08\x00") + data


def write_ip_pcap(path, ip_packets, gap=0.5, start=1000.0) -> Path:
    """IP packets in Ethernet frames, ``gap`` seconds apart from ``start``."""
    return write_pcap(path, [(start + i * gap, ether_ip(p)) for i, p in enumerate(ip_packets)])


# ---------------------------------------------------------------------- pcapng
def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _options(opts, e: str) -> bytes:
    if not opts:
        return b""
    out = b"".join(struct.pack(e + "HH", code, len(val)) + _pad4(val) for code, val in opts)
    return out + struct.pack(e + "HH", 0, 0)


def pcapng_block(btype: int, body: bytes, big_endian=False) -> bytes:
    """Generic block: type, total length, body (padded to 4), total length."""
    e = _end(big_endian)
    body = _pad4(body)
    n = len(body) + 12
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def pcapng_shb(big_endian=False, options=()) -> bytes:
    e = _end(big_endian)
    body = struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1) + _options(options, e)
    return pcapng_block(0x0A0D0D0A, body, big_endian)


def pcapng_idb(linktype=1, tsresol=None, tsoffset=None, snaplen=0, big_endian=False) -> bytes:
    """``tsresol``: None (microseconds), an int exponent of 10, or ``("2", exp)`` for 2^-exp."""
    e = _end(big_endian)
    opts = []
    if tsresol is not None:
        if isinstance(tsresol, tuple):
            opts.append((9, bytes([0x80 | int(tsresol[1])])))
        else:
            opts.append((9, bytes([int(tsresol)])))
    if tsoffset is not None:
        opts.append((14, struct.pack(e + "q", tsoffset)))
    body = struct.pack(e + "HHI", linktype, 0, snaplen) + _options(opts, e)
    return pcapng_block(1, body, big_endian)


def _units(ts, tsresol) -> int:
    """Timestamp in the interface's units (exact for int nanoseconds)."""
    ns = ts_ns(ts)
    if tsresol is None:
        tsresol = 6
    if isinstance(tsresol, tuple):
        exp = int(tsresol[1])
        return (ns << exp) // 1_000_000_000
    exp = int(tsresol)
    if exp <= 9:
        return ns // 10 ** (9 - exp)
    return ns * 10 ** (exp - 9)


def pcapng_epb(iface, ts, data, tsresol=None, big_endian=False, wirelen=None) -> bytes:
    e = _end(big_endian)
    u = _units(ts, tsresol)
    wl = len(data) if wirelen is None else wirelen
    body = struct.pack(e + "IIIII", iface, u >> 32, u & 0xFFFFFFFF, len(data), wl) + _pad4(data)
    return pcapng_block(6, body, big_endian)


def pcapng_spb(data, big_endian=False, wirelen=None) -> bytes:
    e = _end(big_endian)
    wl = len(data) if wirelen is None else wirelen
    return pcapng_block(3, struct.pack(e + "I", wl) + _pad4(data), big_endian)


def pcapng_pb(iface, ts, data, tsresol=None, big_endian=False, wirelen=None) -> bytes:
    e = _end(big_endian)
    u = _units(ts, tsresol)
    wl = len(data) if wirelen is None else wirelen
    body = struct.pack(e + "HHIIII", iface, 0, u >> 32, u & 0xFFFFFFFF, len(data), wl) + _pad4(data)
    return pcapng_block(2, body, big_endian)


def pcapng_bytes(interfaces, packets, block="epb", big_endian=False) -> bytes:
    """One section: SHB, one IDB per ``(linktype, tsresol_or_None)``, then the packets.

    ``packets``: list of ``(iface, ts, bytes)``; ``block`` is "epb", "spb" or "pb"
    (SPB ignores iface and ts: it has neither).
    """
    out = [pcapng_shb(big_endian)]
    resols = []
    for itf in interfaces:
        linktype, tsresol = itf[0], itf[1]
        tsoffset = itf[2] if len(itf) > 2 else None
        resols.append(tsresol)
        out.append(pcapng_idb(linktype, tsresol, tsoffset, big_endian=big_endian))
    for iface, ts, data in packets:
        if block == "epb":
            out.append(pcapng_epb(iface, ts, data, resols[iface], big_endian))
        elif block == "pb":
            out.append(pcapng_pb(iface, ts, data, resols[iface], big_endian))
        elif block == "spb":
            out.append(pcapng_spb(data, big_endian))
        else:
            raise ValueError(f"unknown block kind {block!r}")
    return b"".join(out)


def write_pcapng(path, interfaces=((1, None),), packets=(), block="epb", big_endian=False) -> Path:
    path = Path(path)
    path.write_bytes(pcapng_bytes(interfaces, packets, block, big_endian))
    return path
