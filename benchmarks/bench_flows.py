"""Time flow building end to end: flowkit vs nfstream vs argus on the same capture.

    python benchmarks/bench_flows.py [CAPTURE] [--runs 3]   (default benchmarks/data/mix.pcap,
                                                             built by benchmarks/make_mix.py)

Each tool runs in its own process (so peak RSS is its own), one after the other:
  flowkit API  flowkit.flows(CAPTURE).write(out.parquet)   (decode included)
  flowkit CLI  python -m flowkit flows CAPTURE -o out.parquet (start-up and imports included)
  nfstream NFStreamer(source=CAPTURE).to_pandas()       (if the package is installed)
  argus    argus -r CAPTURE -w out.argus                (if the binary is installed)
Prints median and min-max of packets/s and peak RSS, and wall-time ratios to the CLI. Run it alone: the machine is shared.
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
flowkit.flows(sys.argv[1])  # warm up: the capture into the page cache, before the timed runs
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


def summary(values: list[float]) -> tuple[float, float, float]:
    """(median, min, max)."""
    v = sorted(values)
    mid = len(v) // 2
    med = v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2
    return med, v[0], v[-1]


def main(argv: list[str]) -> int:
    runs = 3
    if "--runs" in argv:
        i = argv.index("--runs")
        runs = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    capture = Path(argv[0]) if argv else HERE / "data" / "mix.pcap"
    if not capture.exists():
        print(f"{capture} not found: run python benchmarks/make_mix.py first")
        return 1
    out = Path(tempfile.mkdtemp())
    size = capture.stat().st_size
    # children import this checkout's flowkit, whatever is installed
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))
    # an installed package has its bytecode compiled at install time; a checkout may not (and
    # PYTHONDONTWRITEBYTECODE stops imports from writing it): compile it once, so flowkit's
    # imports cost what they cost for users (~0.04 s more per process otherwise)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(HERE.parent / "flowkit")], check=True)
    subprocess.run([sys.executable, "-c", FLOWKIT_WARM, str(capture)], check=True)
    tools = [
        # (name, command, seconds from the child's own clock (True) or wall time of the process)
        ("flowkit API", [sys.executable, "-c", FLOWKIT, str(capture), str(out / "flows.parquet")], True),
        ("flowkit CLI", [sys.executable, "-m", "flowkit", "flows", str(capture), "-o", str(out / "cli.parquet"),
                         "--quiet"], False),
    ]
    try:
        import nfstream  # noqa: F401

        tools.append(("nfstream", [sys.executable, "-c", NFSTREAM, str(capture)], True))
    except ImportError:
        print("nfstream not installed (pip install nfstream): skipped")
    if shutil.which("argus"):
        tools.append(("argus", ["argus", "-r", str(capture), "-w", str(out / "out.argus")], False))
    else:
        print("argus not installed (Debian argus-server): skipped")
    packets = None
    results = {name: ([], [], []) for name, _, _ in tools}  # seconds, wall, rss
    for _ in range(runs):  # interleaved, so a busy moment hits every tool alike
        for name, cmd, own_clock in tools:
            if name == "argus":
                (out / "out.argus").unlink(missing_ok=True)
            info, wall, rss = timed(cmd)
            if name == "flowkit API":
                packets = info["packets"]
            secs, walls, rsss = results[name]
            secs.append(info["seconds"] if own_clock else wall)
            walls.append(wall)
            rsss.append(rss)
    print(f"capture {capture}: {packets} packets, {size / 1e6:.0f} MB; median of {runs} runs (min-max)")
    print("flowkit API and nfstream: time inside the process (imports excluded); CLI and argus: whole process")
    base = summary(results["flowkit CLI"][1])[0]
    print(f"{'tool':12s} {'seconds':>18s} {'M packets/s':>18s} {'wall s':>6s} {'peak RSS MB':>16s} {'wall vs CLI':>11s}")
    for name, (secs, walls, rsss) in results.items():
        s, s0, s1 = summary(secs)
        w = summary(walls)[0]
        r, r0, r1 = summary(rsss)
        print(f"{name:12s} {s:6.2f} ({s0:.2f}-{s1:.2f}) {packets / s / 1e6:6.2f} ({packets / s1 / 1e6:.2f}-{packets / s0 / 1e6:.2f}) "
              f"{w:6.2f} {r / 1e6:5.0f} ({r0 / 1e6:.0f}-{r1 / 1e6:.0f}) {w / base:10.2f}x")
    shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
