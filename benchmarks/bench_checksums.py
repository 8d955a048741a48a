"""Cost of verify_checksums: CPU seconds of flowkit.flows() with and without it, best of N runs.

Usage:
    python benchmarks/bench_checksums.py [CAPTURE ...] [--runs N]

Default captures: the three largest of ../shared/corpus/nfstream. CPU time (user + system of
this process) rather than wall time: the machine is shared. Prints packets, seconds and the ratio.
"""
from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def best(path: Path, verify: bool, runs: int) -> tuple[float, int]:
    import flowkit

    times, packets = [], 0
    for _ in range(runs):
        t0 = cpu()
        table = flowkit.flows(str(path), verify_checksums=verify)
        times.append(cpu() - t0)
        packets = table.stats.packets
    return min(times), packets


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    p = argparse.ArgumentParser()
    p.add_argument("captures", nargs="*", type=Path)
    p.add_argument("--runs", type=int, default=5)
    a = p.parse_args(argv)
    captures = a.captures or sorted((ROOT.parent / "shared" / "corpus" / "nfstream").glob("*.pcap*"),
                                    key=lambda f: f.stat().st_size)[-3:]
    total = {False: 0.0, True: 0.0}
    for path in captures:
        (off, n), (on, _) = best(path, False, a.runs), best(path, True, a.runs)
        total[False] += off
        total[True] += on
        print(f"{path.name:30s} {n:8,d} packets  off {off:.3f} s  verify {on:.3f} s  x{on / off:.2f}")
    print(f"{'all':30s} {'':17s} off {total[False]:.3f} s  verify {total[True]:.3f} s  x{total[True] / total[False]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
