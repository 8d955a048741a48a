"""Decode throughput: framing, the three engines, and a plain dpkt loop, in packets per second.

Usage:
    python benchmarks/bench_decode.py [CAPTURE] [--slice N] [--shark N] [--objects N]

CAPTURE defaults to benchmarks/data/mix.pcap (built by benchmarks/make_mix.py from the nfstream
corpus if missing). Framing and the fast engine run over the whole capture; the slow per-packet
stages (dpkt engine, plain dpkt loop) over the first --slice packets, tshark over the first --shark
packets, pyshark's packet objects over the first --objects. Rates are packets/s of one process;
ratios are against the plain dpkt loop, the usual way Python code reads captures.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import dpkt
import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT = HERE / "data" / "mix.pcap"


def first_packets(path: Path, n: int):
    """A RecordChunk holding the first ``n`` packets (framed by flowkit)."""
    from flowkit.capture import RecordChunk, read_chunks

    parts, have = [], 0
    for chunk in read_chunks(path):
        parts.append(chunk)
        have += len(chunk)
        if have >= n:
            break
    shift = np.cumsum([0] + [len(c.data) for c in parts[:-1]])
    cols = {k: np.concatenate([getattr(c, k) for c in parts])[:n]
            for k in ("caplen", "wirelen", "ts", "linktype", "iface", "file_offset", "index")}
    start = np.concatenate([c.start + s for c, s in zip(parts, shift)])[:n]
    return RecordChunk(data=np.concatenate([c.data for c in parts]), start=start, path=str(path), **cols)


def framing(path: Path) -> int:
    from flowkit.capture import read_chunks

    return sum(len(c) for c in read_chunks(path))


def fast_end_to_end(path: Path) -> tuple[int, float]:
    """All packets through read_chunks + fast decode; also returns the decode-only seconds."""
    from flowkit.capture import read_chunks
    from flowkit.decode.fast import decode_chunk

    n, decode_s = 0, 0.0
    for chunk in read_chunks(path):
        t = time.perf_counter()
        decode_chunk(chunk)
        decode_s += time.perf_counter() - t
        n += len(chunk)
    return n, decode_s


def plain_dpkt_loop(path: Path, limit: int) -> int:
    """What a typical script does: dpkt objects per packet, touching addresses and ports."""
    n = 0
    sink = 0
    with open(path, "rb") as f:
        for _ts, buf in dpkt.pcap.UniversalReader(f):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
                l4 = ip.data
                if isinstance(l4, (dpkt.tcp.TCP, dpkt.udp.UDP)):
                    sink ^= l4.sport ^ l4.dport ^ len(ip.src)
            n += 1
            if n >= limit:
                break
    return n


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture", nargs="?", default=str(DEFAULT))
    ap.add_argument("--slice", type=int, default=200_000, help="packets for the per-packet stages")
    ap.add_argument("--shark", type=int, default=20_000, help="packets for tshark (fields)")
    ap.add_argument("--objects", type=int, default=1_000, help="packets for pyshark's packet objects")
    args = ap.parse_args(argv)
    path = Path(args.capture)
    if not path.exists():
        if path != DEFAULT:
            print(f"{path}: no such capture", file=sys.stderr)
            return 1
        subprocess.run([sys.executable, str(HERE / "make_mix.py")], check=True)
    print(f"capture: {path} ({path.stat().st_size / 1e6:.0f} MB)")

    from flowkit.decode import dpkt_engine, pyshark_engine

    from flowkit.decode.fast import decode_chunk

    decode_chunk(first_packets(path, 1000))  # warm up: imports and first allocations stay out of the timings
    rows = []  # (stage, packets, seconds)
    n, s = timed(framing, path)
    rows.append(("framing only (read_chunks)", n, s))
    (n, decode_s), s = timed(fast_end_to_end, path)
    rows.append(("fast: framing + decode", n, s))
    rows.append(("fast: decode only", n, decode_s))

    sample = first_packets(path, args.slice)
    _, s = timed(dpkt_engine.decode_chunk, sample)
    rows.append(("dpkt engine", len(sample), s))
    n, s = timed(plain_dpkt_loop, path, args.slice)
    rows.append(("plain dpkt loop (reference)", n, s))
    baseline = n / s

    try:
        pyshark_engine.check_available()
    except Exception as exc:  # no tshark: report and go on
        print(f"pyshark stages skipped: {exc}")
    else:
        small = first_packets(path, args.shark)
        _, s = timed(pyshark_engine.decode_chunk, small)
        rows.append(("pyshark engine (tshark fields)", len(small), s))
        tiny = first_packets(path, args.objects)
        _, s = timed(pyshark_engine.decode_chunk, tiny, "pyshark")
        rows.append(("pyshark engine (packet objects)", len(tiny), s))

    print(f"{'stage':34} {'packets':>10} {'seconds':>9} {'packets/s':>12} {'vs dpkt loop':>13}")
    for stage, n, s in rows:
        rate = n / s if s else float("inf")
        print(f"{stage:34} {n:>10,} {s:>9.2f} {rate:>12,.0f} {rate / baseline:>12.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
