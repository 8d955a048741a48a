"""Seed inputs for fuzz/decode_fuzzer.c, built from the packets the tests construct.

    python fuzz/make_seeds.py DIR

One file per packet of the engines' test mix (every link type, tag stacks, IPv6
extension headers, malformed headers), per tunnel case, and a few fragment sequences
(in order, reversed, overlapping), in the harness's input format: a flags byte (1 follow
tunnels, 2 reassemble), then records of link selector, 2-byte little-endian length, bytes.
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

# the harness's link selectors, in its LINKS order
LINKS = [1, 0, 9, 10, 12, 14, 50, 101, 104, 105, 108, 113, 127, 228, 229, 239, 276, 230]


def record(linktype: int, data: bytes) -> bytes:
    return bytes([LINKS.index(linktype) if linktype in LINKS else len(LINKS) - 1]) + struct.pack("<H", len(data)) + data


def seed(records: list[tuple[int, bytes]]) -> bytes:
    return b"\x03" + b"".join(record(lt, d) for lt, d in records)


def main(out: Path) -> int:
    from test_decode_reassembly import D, frag4, frag6
    from test_decode_tunnels import CASES, nest
    from test_engines_diff import packet_mix

    out.mkdir(parents=True, exist_ok=True)
    seeds = [seed([(c.linktype, c.data)]) for c in packet_mix()]
    seeds += [seed([(1, packet)]) for _, packet, *_ in CASES]
    seeds.append(seed([(1, nest(6))]))
    parts = [frag4(D, 0, 512, True), frag4(D, 512, 512, True), frag4(D, 1024, 8, False)]
    seeds += [seed([(1, p) for p in parts]), seed([(1, p) for p in reversed(parts)]),
              seed([(1, frag4(D, 0, 512, True)), (1, frag4(D, 8, 512, True)), (1, frag4(D, 512, 520, False))]),
              seed([(1, frag6(D, 0, 512, True, hop=True)), (1, frag6(D, 512, 520, False))])]
    for k, s in enumerate(seeds):
        (out / f"seed-{k:04d}").write_bytes(s)
    print(f"{len(seeds)} seeds in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "fuzz/seeds")))
