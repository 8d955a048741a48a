"""Time flow building end to end: flowkit vs nfstream vs argus on the same capture.

    python benchmarks/bench_flows.py [CAPTURE]     (default benchmarks/data/mix.pcap,
                                                    built by benchmarks/make_mix.py)

Each tool runs in its own process (so peak RSS is its own), one after the other:
  flowkit  flowkit.flows(CAPTURE).write(out.parquet)   (decode included)
  nfstream NFStreamer(source=CAPTURE).to_pandas()       (if the package is installed)
  argus    argus -r CAPTURE -w out.argus                (if the binary is installed)
Prints packets/s, peak RSS and the ratios to flowkit. Run it alone: the machine is shared.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

FLOWKIT = """
import sys, time, json, resource, flowkit
t = time.perf_counter()
table = flowkit.flows(sys.argv[1])
table.write(sys.argv[2])
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "packets": table.stats.packets, "flows": len(table)}))
"""

FLOWKIT_WARM = """
import flowkit, sys
flowkit.flows(sys.argv[1])  # compile the numba kernels into the cache
"""

NFSTREAM = """
import sys, time, json
from nfstream import NFStreamer
t = time.perf_counter()
df = NFStreamer(source=sys.argv[1]).to_pandas()
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "flows": len(df)}))
"""


def run(cmd: list[str]) -> tuple[dict, float, int]:
    """(json printed by the child or {}, wall seconds, peak RSS of the child in bytes)."""
    t = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {proc.stderr.strip()[-500:]}")
    info = {}
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith("{"):
            info = json.loads(line)
            break
    # ru_maxrss of children is the maximum over all children so far: run the biggest last
    # or read it per child; here each child is measured with /usr/bin/time when available
    return info, wall, max(peak, before) * 1024


def timed(cmd: list[str]) -> tuple[dict, float, int]:
    gnu_time = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    if gnu_time is None:
        return run(cmd)
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as rss:
        info, wall, _ = run([gnu_time, "-f", "%M", "-o", rss.name, *cmd])
        return info, wall, int(rss.read().strip().splitlines()[-1]) * 1024


def count_packets(path: Path) -> int:
    import flowkit

    return flowkit.packets(str(path)).stats.packets


def main(argv: list[str]) -> int:
    capture = Path(argv[0]) if argv else HERE / "data" / "mix.pcap"
    if not capture.exists():
        print(f"{capture} not found: run python benchmarks/make_mix.py first")
        return 1
    out = Path(tempfile.mkdtemp())
    size = capture.stat().st_size
    subprocess.run([sys.executable, "-c", FLOWKIT_WARM, str(capture)], check=True)
    rows = []
    info, wall, rss = timed([sys.executable, "-c", FLOWKIT, str(capture), str(out / "flows.parquet")])
    packets = info["packets"]
    rows.append(("flowkit", info["seconds"], rss, info["flows"]))
    try:
        import nfstream  # noqa: F401

        info, wall, rss = timed([sys.executable, "-c", NFSTREAM, str(capture)])
        rows.append(("nfstream", info["seconds"], rss, info["flows"]))
    except ImportError:
        print("nfstream not installed (pip install nfstream): skipped")
    if shutil.which("argus"):
        info, wall, rss = timed(["argus", "-r", str(capture), "-w", str(out / "out.argus")])
        rows.append(("argus", wall, rss, None))
    else:
        print("argus not installed (Debian argus-server): skipped")
    print(f"capture {capture}: {packets} packets, {size / 1e6:.0f} MB")
    base = rows[0][1]
    print(f"{'tool':10s} {'seconds':>8s} {'Mpkt/s':>8s} {'peak RSS MB':>12s} {'flows':>8s} {'time vs flowkit':>16s}")
    for name, secs, rss, flows in rows:
        print(f"{name:10s} {secs:8.2f} {packets / secs / 1e6:8.2f} {rss / 1e6:12.0f} {flows if flows is not None else '-':>8} "
              f"{secs / base:15.2f}x")
    shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
