"""Build a tunnel-heavy benchmark capture: the mix with every IP packet inside a tunnel.

Each Ethernet/IP packet of benchmarks/data/mix.pcap (built by make_mix.py) is wrapped, in
turn, in VXLAN (UDP 4789, inner Ethernet), GRE (IP protocol 47, key present) and GTPv1-U
(UDP 2152) between two fixed outer hosts; other packets are copied as they are. Timestamps
and order are kept, so every captured packet gives two rows (outer, inner) and two flows
(the tunnel's own, where it is UDP, and the inner connection).

Usage: python benchmarks/make_tunnels.py [MIX] [OUT]   (default benchmarks/data/tunnels.pcap)
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path

import dpkt

HERE = Path(__file__).resolve().parent
MAC = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02"
OUTER_SRC, OUTER_DST = bytes([10, 200, 0, 1]), bytes([10, 200, 0, 2])


def outer_ip(proto: int, payload: bytes, ident: int) -> bytes:
    return bytes(dpkt.ip.IP(src=OUTER_SRC, dst=OUTER_DST, p=proto, ttl=64, id=ident & 0xFFFF, data=payload))


def outer_udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def wrap(k: int, frame: bytes) -> bytes:
    """The k-th Ethernet frame inside one of three tunnels, or as it is when not IPv4/IPv6."""
    if len(frame) < 14 or frame[12:14] not in (b"\x08\x00", b"\x86\xdd"):
        return frame
    ip = frame[14:]
    kind = k % 3
    if kind == 0:  # VXLAN: flags (I), VNI 42, the whole inner Ethernet frame
        payload = outer_ip(17, outer_udp(49152 + k % 1024, 4789, b"\x08\x00\x00\x00\x00\x00\x2a\x00" + frame), k)
    elif kind == 1:  # GRE with a key, carrying the IP packet
        payload = outer_ip(47, struct.pack(">HHI", 0x2000, struct.unpack(">H", frame[12:14])[0], 7) + ip, k)
    else:  # GTPv1-U G-PDU, TEID 0x1234
        gtp = struct.pack(">BBHI", 0x30, 0xFF, len(ip), 0x1234) + ip
        payload = outer_ip(17, outer_udp(2152, 2152, gtp), k)
    return MAC + b"\x08\x00" + payload


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    src = Path(argv[0]) if argv else HERE / "data" / "mix.pcap"
    out = Path(argv[1]) if len(argv) > 1 else HERE / "data" / "tunnels.pcap"
    if not src.exists():
        print(f"{src} missing: run benchmarks/make_mix.py first", file=sys.stderr)
        return 1
    n = 0
    with open(src, "rb") as f, open(out, "wb") as g:
        reader = dpkt.pcap.Reader(f)
        writer = dpkt.pcap.Writer(g, linktype=dpkt.pcap.DLT_EN10MB, snaplen=65535 + 200)
        for ts, buf in reader:
            writer.writepkt(wrap(n, buf), ts=ts)
            n += 1
    print(f"{n} packets -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
