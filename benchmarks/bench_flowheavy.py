"""Flow-heavy traffic: flowkit, argus, nfstream and a plain dpkt loop on a SYN scan and a UDP spray, next to the mix.

    python benchmarks/bench_flowheavy.py [--runs 3] [--nfstream-packets 300000]

Builds benchmarks/data/synscan.pcap and udpspray.pcap (make_flowheavy.py, 3 M packets each,
every packet a new five-tuple, 10 µs apart) when missing; the mix is make_mix.py's. Each tool
runs in its own process under /usr/bin/time: wall seconds, CPU seconds (user + system, all
threads) and peak RSS. CPU seconds are what to compare on a shared machine (wall time follows
the load); packets/s below are per wall second and per CPU second. nfstream runs on the first
``--nfstream-packets`` packets of each capture (it takes minutes on 3 M one-packet flows), and so
does a plain dpkt loop (a dict of five-tuples: what a script would write).
flowkit: ``python -m flowkit flows CAPTURE -o out.parquet --quiet`` (default memory budget).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
NFSTREAM = "import sys; from nfstream import NFStreamer; print(len(NFStreamer(source=sys.argv[1]).to_pandas()))"
# what a script would write: dpkt objects per packet, a dict of five-tuples with packets,
# bytes and first/last time (no direction, states or timeouts): the floor of Python per packet
DPKT_LOOP = """
import sys, dpkt
flows = {}
with open(sys.argv[1], "rb") as f:
    for ts, buf in dpkt.pcap.UniversalReader(f):
        ip = dpkt.ethernet.Ethernet(buf).data
        if not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
            continue
        l4 = ip.data
        ports = (l4.sport, l4.dport) if isinstance(l4, (dpkt.tcp.TCP, dpkt.udp.UDP)) else (0, 0)
        key = (ip.src, ip.dst, ip.p if isinstance(ip, dpkt.ip.IP) else ip.nxt, *ports)
        row = flows.get(key)
        if row is None:
            flows[key] = [ts, ts, 1, len(buf)]
        else:
            row[1] = ts
            row[2] += 1
            row[3] += len(buf)
print(len(flows))
"""


def measure(cmd: list[str]) -> tuple[float, float, int]:
    """(wall s, cpu s, peak RSS bytes) of one process."""
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as out:
        proc = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", out.name, *cmd], capture_output=True,
                              text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {proc.stderr.strip()[-400:]}")
        wall, user, system, rss = out.read().split()[-4:]
    return float(wall), float(user) + float(system), int(rss) * 1024


def cut(capture: Path, packets: int) -> Path:
    """The first ``packets`` packets of a capture (tcpdump -c), for slow tools."""
    target = DATA / f"{capture.stem}-{packets // 1000}k.pcap"
    if not target.exists():
        subprocess.run(["tcpdump", "-r", str(capture), "-c", str(packets), "-w", str(target)], check=True,
                       capture_output=True)
    return target


def count(capture: Path) -> int:
    code = "import sys, flowkit; print(flowkit.packets(sys.argv[1]).stats.packets)"
    return int(subprocess.run([sys.executable, "-c", code, str(capture)], capture_output=True, text=True,
                              check=True).stdout)


def median(values):
    v = sorted(values)
    return v[len(v) // 2]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--nfstream-packets", type=int, default=300_000)
    args = ap.parse_args(argv)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))
    # compiled bytecode, as an installed package has (see bench_flows.py)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(HERE.parent / "flowkit")], check=True)
    if not (DATA / "synscan.pcap").exists() or not (DATA / "udpspray.pcap").exists():
        subprocess.run([sys.executable, str(HERE / "make_flowheavy.py")], check=True)
    captures = [DATA / "mix.pcap", DATA / "synscan.pcap", DATA / "udpspray.pcap"]
    captures = [c for c in captures if c.exists()]
    try:
        import nfstream  # noqa: F401
        has_nfstream = True
    except ImportError:
        has_nfstream = False
        print("nfstream not installed (pip install nfstream): skipped")
    out = Path(tempfile.mkdtemp())
    print(f"{'capture':16s} {'tool':10s} {'packets':>9s} {'wall s':>7s} {'cpu s':>7s} {'M pkt/s wall':>12s} "
          f"{'M pkt/s cpu':>11s} {'peak MB':>8s}")
    for capture in captures:
        runs = [("flowkit", [sys.executable, "-m", "flowkit", "flows", str(capture), "-o",
                             str(out / "f.parquet"), "--quiet"], capture)]
        if shutil.which("argus"):
            runs.append(("argus", ["argus", "-r", str(capture), "-w", str(out / "a.argus")], capture))
        if has_nfstream:
            small = cut(capture, args.nfstream_packets)
            runs.append(("nfstream", [sys.executable, "-c", NFSTREAM, str(small)], small))
        small = cut(capture, args.nfstream_packets)
        runs.append(("dpkt loop", [sys.executable, "-c", DPKT_LOOP, str(small)], small))
        for name, cmd, source in runs:
            n = count(source)
            got = []
            for _ in range(args.runs):
                (out / "a.argus").unlink(missing_ok=True)
                got.append(measure(cmd))
            wall, cpu, rss = (median([g[j] for g in got]) for j in range(3))
            print(f"{capture.stem:16s} {name:10s} {n:9d} {wall:7.2f} {cpu:7.2f} {n / wall / 1e6:12.2f} "
                  f"{n / cpu / 1e6:11.2f} {rss / 1e6:8.0f}", flush=True)
    shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
