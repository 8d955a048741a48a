"""Build the benchmark capture: every Ethernet capture of the nfstream corpus, back to back.

The result (about a million packets of real application traffic) is written to
benchmarks/data/mix.pcap, classic pcap, microsecond timestamps, rewritten so each capture
starts one second after the previous one ended (monotonic time, as one long capture).
Usage: python benchmarks/make_mix.py [CORPUS_DIR] [OUT] [--repeat N]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import dpkt

HERE = Path(__file__).resolve().parent
DEFAULT_CORPUS = HERE.parent.parent / "shared" / "corpus" / "nfstream"


def ethernet_captures(corpus: Path):
    for path in sorted(corpus.iterdir()):
        try:
            with open(path, "rb") as f:
                reader = dpkt.pcap.Reader(f) if not path.name.endswith(".pcapng") else dpkt.pcapng.Reader(f)
                if reader.datalink() != dpkt.pcap.DLT_EN10MB:
                    continue
                yield path, list(reader)
        except (ValueError, dpkt.dpkt.NeedData, dpkt.dpkt.UnpackError):
            continue


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", nargs="?", default=str(DEFAULT_CORPUS))
    ap.add_argument("out", nargs="?", default=str(HERE / "data" / "mix.pcap"))
    ap.add_argument("--repeat", type=int, default=1, help="write the whole mix N times (bigger file; 24 gives about a million packets)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    captures = list(ethernet_captures(Path(args.corpus)))
    t = 1_700_000_000.0
    n = 0
    with open(out, "wb") as f:
        w = dpkt.pcap.Writer(f, snaplen=262144, linktype=dpkt.pcap.DLT_EN10MB)
        for _ in range(args.repeat):
            t += 600.0  # beyond every idle timeout: each repetition makes new flows
            for _path, pkts in captures:
                if not pkts:
                    continue
                prev = float(pkts[0][0])
                for ts, buf in pkts:
                    # keep real inter-packet gaps, but never backwards or absurdly long
                    t += min(max(0.0, float(ts) - prev), 10.0)
                    prev = float(ts)
                    w.writepkt(buf, ts=t)
                    n += 1
                t += 1.0
    print(f"{out}: {n} packets from {len(captures)} captures, {out.stat().st_size / 1e6:.0f} MB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
