"""Cost of service identification: the flows CLI of this checkout against another checkout.

    python benchmarks/bench_services.py OTHER_CHECKOUT [CAPTURE] [--runs 5]

Runs ``python -m flowkit flows CAPTURE -o out.parquet`` from each checkout in turn
(alternating, so load changes hit both alike), then argus once per round, and prints the
median wall time of each, the cost of this checkout relative to the other and both
ratios to argus. OTHER_CHECKOUT is a flowkit checkout with built extensions, e.g. the
commit before identification. Run it alone: the machine is shared.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _time(cmd: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main(argv: list[str]) -> int:
    runs = 5
    if "--runs" in argv:
        i = argv.index("--runs")
        runs = int(argv[i + 1])
        del argv[i : i + 2]
    other = Path(argv[0]).resolve()
    capture = Path(argv[1] if len(argv) > 1 else HERE / "data" / "mix.pcap").resolve()
    here = HERE.parent
    argus = shutil.which("argus")
    times: dict[str, list[float]] = {"this": [], "other": [], "argus": []}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.parquet")
        for tree in (here, other):  # warm up: imports compiled, the capture in the page cache
            _time([sys.executable, "-m", "flowkit", "flows", str(capture), "-o", out], tree)
        for _ in range(runs):
            times["this"].append(_time([sys.executable, "-m", "flowkit", "flows", str(capture), "-o", out], here))
            times["other"].append(_time([sys.executable, "-m", "flowkit", "flows", str(capture), "-o", out], other))
            if argus:
                times["argus"].append(_time([argus, "-r", str(capture), "-w", os.path.join(tmp, "o.argus")], here))
    med = {k: statistics.median(v) for k, v in times.items() if v}
    for k, v in times.items():
        if v:
            print(f"{k:6s} median {med[k]:.3f} s  runs {' '.join(f'{x:.3f}' for x in v)}")
    print(f"cost of this checkout: {med['this'] / med['other'] - 1:+.1%} wall time")
    if "argus" in med:
        print(f"argus / this: {med['argus'] / med['this']:.2f}x   argus / other: {med['argus'] / med['other']:.2f}x")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
