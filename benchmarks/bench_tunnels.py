"""Decode throughput of the checkout's fast engine on a capture, wall and CPU time.

    python benchmarks/bench_tunnels.py [CAPTURE ...] [--runs 5]

Defaults: benchmarks/data/mix.pcap and benchmarks/data/tunnels.pcap (make_mix.py,
make_tunnels.py). The capture is framed into memory first; then every chunk is decoded with
``flowkit.decode.fast.decode_chunk`` (tunnels followed, fragments reassembled within the
capture, one Decoder across its chunks as ``flowkit.packets`` uses it; older checkouts
without it: ``decode_chunk`` per chunk), ``--runs`` times. Prints the median records/s by wall clock and by process CPU time
(the decoder runs in the calling thread, so CPU time is its own work: the figure to use when
other processes share the cores), and rows per record.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's flowkit, not an installed one


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("captures", nargs="*", default=[str(HERE / "data" / "mix.pcap"), str(HERE / "data" / "tunnels.pcap")])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    from flowkit.capture import read_chunks
    from flowkit.decode import fast

    def decoder():
        return fast.Decoder().decode if hasattr(fast, "Decoder") else fast.decode_chunk

    print(f"{'capture':28s} {'records':>10s} {'rows':>10s} {'wall M rec/s':>13s} {'CPU M rec/s':>12s}")
    for path in args.captures:
        chunks = list(read_chunks(path))
        records = sum(len(c) for c in chunks)
        decoder()(chunks[0])  # imports, first allocations
        wall, cpu, rows = [], [], 0
        for _ in range(args.runs):
            decode = decoder()
            w, c = time.perf_counter(), time.process_time()
            rows = sum(decode(chunk).num_rows for chunk in chunks)
            cpu.append(time.process_time() - c)
            wall.append(time.perf_counter() - w)
        print(f"{Path(path).name:28s} {records:10,d} {rows:10,d} {records / statistics.median(wall) / 1e6:13.2f} "
              f"{records / statistics.median(cpu) / 1e6:12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
