"""Cost of service identification: the flows CLI of this checkout against another checkout.

    python benchmarks/bench_services.py OTHER_CHECKOUT [CAPTURE] [--runs 5]

Runs ``python -m flowkit flows CAPTURE -o out.parquet`` from each checkout in turn
(alternating, so load changes hit both alike), then ``argus -r CAPTURE -w /dev/null`` once
per round, and prints the median CPU time (user + system of the process and its threads)
and wall time of each, the cost of this checkout relative to the other and the ratios to
argus. OTHER_CHECKOUT is a flowkit checkout with built extensions: a copy of this commit
whose ``flows()`` iterates ``iter(table)`` instead of ``table.with_payload()`` (no payload, no
identification, same row layout) isolates the cost of identification. Run it alone: the machine is shared (the load average is printed).
"""
from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _time(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one run of ``cmd``."""
    # as installed: byte code cached (the warm-up run writes it), not compiled on every run
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, wall


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
    times: dict[str, list[tuple[float, float]]] = {"this": [], "other": [], "argus": []}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.parquet")
        for tree in (here, other):  # warm up: imports compiled, the capture in the page cache
            _time([sys.executable, "-m", "flowkit", "flows", str(capture), "-o", out], tree)
        for _ in range(runs):
            times["this"].append(_time([sys.executable, "-m", "flowkit", "flows", str(capture), "-o", out], here))
            times["other"].append(_time([sys.executable, "-m", "flowkit", "flows", str(capture), "-o", out], other))
            if argus:
                times["argus"].append(_time([argus, "-r", str(capture), "-w", "/dev/null"], here))
    cpu = {k: statistics.median(c for c, _ in v) for k, v in times.items() if v}
    wall = {k: statistics.median(w for _, w in v) for k, v in times.items() if v}
    for k, v in times.items():
        if v:
            print(f"{k:6s} CPU median {cpu[k]:.3f} s (runs {' '.join(f'{c:.3f}' for c, _ in v)}); "
                  f"wall median {wall[k]:.3f} s (runs {' '.join(f'{w:.3f}' for _, w in v)})")
    print(f"cost of this checkout: {cpu['this'] / cpu['other'] - 1:+.1%} CPU, {wall['this'] / wall['other'] - 1:+.1%} wall")
    if "argus" in cpu:
        print(f"argus / this: {cpu['argus'] / cpu['this']:.2f}x CPU, {wall['argus'] / wall['this']:.2f}x wall;  "
              f"argus / other: {cpu['argus'] / cpu['other']:.2f}x CPU, {wall['argus'] / wall['other']:.2f}x wall")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
