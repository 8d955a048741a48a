"""Build the two flow-heavy benchmark captures: every packet a new five-tuple, 10 µs apart.

    python benchmarks/make_flowheavy.py [--packets 3000000] [--out benchmarks/data]

synscan.pcap  a SYN scan: one host sends a SYN to a different (address, port) each
              time, nothing answers (3 M one-packet connections, 30 s)
udpspray.pcap a UDP spray: distinct source addresses and ports to one server, 32 bytes
              of payload each (3 M distinct flows within 30 s: all open at once under
              the 60 s UDP timeout)

Classic pcap, Ethernet, microsecond timestamps. Deterministic: the same bytes every run
(no randomness; addresses and ports are counters). Checksums are left zero (flowkit,
Zeek -C and argus do not check them). Records are built as numpy arrays, a million at a
time, so generating 3 M packets takes a few seconds.
"""
from __future__ import annotations

import argparse
import struct
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
T0 = 1_700_000_000  # seconds
GAP_US = 10
BLOCK = 1_000_000


def _be(values, width: int, order: str = ">") -> np.ndarray:
    """Bytes of unsigned integers (big-endian unless ``order``), one row per value."""
    return np.asarray(values).astype(f"{order}u{width}").view(np.uint8).reshape(-1, width)


def _records(first: int, n: int, kind: str) -> bytes:
    i = np.arange(first, first + n, dtype=np.uint64)
    payload = 0 if kind == "syn" else 32
    l4 = 20 if kind == "syn" else 8
    ip_len = 20 + l4 + payload
    frame = 14 + ip_len
    rec = np.zeros((n, 16 + frame), np.uint8)
    us = i * GAP_US
    rec[:, 0:4] = _be(T0 + us // 1_000_000, 4, "<")  # record header: little-endian, as the file header
    rec[:, 4:8] = _be(us % 1_000_000, 4, "<")
    rec[:, 8:12] = np.frombuffer(struct.pack("<I", frame), np.uint8)
    rec[:, 12:16] = rec[:, 8:12]
    eth = rec[:, 16:30]
    eth[:, 0:6] = (0x02, 0, 0, 0, 0, 0x02)
    eth[:, 6:12] = (0x02, 0, 0, 0, 0, 0x01)
    eth[:, 12:14] = (0x08, 0x00)
    ip = rec[:, 30:50]
    ip[:, 0] = 0x45
    ip[:, 2:4] = _be(np.full(n, ip_len), 2)
    ip[:, 4:6] = _be(i & 0xFFFF, 2)
    ip[:, 8] = 64
    l4h = rec[:, 50:50 + l4]
    if kind == "syn":
        ip[:, 9] = 6
        ip[:, 12:16] = (198, 51, 100, 7)  # the scanner
        ip[:, 16:20] = _be(np.uint64(0x0A000000) + i // 1000, 4)  # 10.x.y.z, 1,000 ports each
        l4h[:, 0:2] = _be(np.full(n, 40000), 2)
        l4h[:, 2:4] = _be(1 + i % 1000, 2)
        l4h[:, 4:8] = _be((i * 2654435761) & 0xFFFFFFFF, 4)  # sequence number
        l4h[:, 12] = 0x50
        l4h[:, 13] = 0x02  # SYN
        l4h[:, 14:16] = _be(np.full(n, 1024), 2)
    else:
        ip[:, 9] = 17
        ip[:, 12:16] = _be(np.uint64(0xAC100000) + i // 64, 4)  # 172.16.x.y, 64 source ports each
        ip[:, 16:20] = (192, 0, 2, 53)
        l4h[:, 0:2] = _be(20000 + i % 64, 2)
        l4h[:, 2:4] = _be(np.full(n, 9999), 2)
        l4h[:, 4:6] = _be(np.full(n, 8 + payload), 2)
        rec[:, 16 + frame - payload:] = 0x61
    return rec.tobytes()


def write(path: Path, kind: str, packets: int) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for first in range(0, packets, BLOCK):
            f.write(_records(first, min(BLOCK, packets - first), kind))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=3_000_000)
    ap.add_argument("--out", default=str(HERE / "data"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, kind in (("synscan.pcap", "syn"), ("udpspray.pcap", "udp")):
        write(out / name, kind, args.packets)
        print(f"wrote {out / name}: {args.packets} packets")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
