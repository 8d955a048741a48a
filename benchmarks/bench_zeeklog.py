"""Reading a Zeek conn.log into flows: flowkit against what Python users of Zeek logs do (pandas).

The conn.log is the flow table of benchmarks/data/mix.pcap written by flowkit's Zeek writer (TSV)
and the same rows as Zeek's JSON writer formats them. Timed in-process, runs interleaved, median
and min-max of CPU seconds (user + system) and wall seconds; the load average is printed, since
the machine may be shared.

    python benchmarks/bench_zeeklog.py [CAPTURE] [--runs N]

pandas baselines: ``read_csv(sep="\\t", comment="#", names=<#fields>, na_values="-")`` (the
approach of Zeek-log readers built on pandas) and ``read_json(lines=True)``. They give raw
columns (strings, floats); flowkit gives the typed flow table with Community IDs, history-derived
columns and checked values.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def as_json(tsv: Path, out: Path) -> None:
    numbers = {"ts", "duration"}
    counts = {"id.orig_p", "id.resp_p", "orig_bytes", "resp_bytes", "orig_pkts", "orig_ip_bytes", "resp_pkts",
              "resp_ip_bytes", "missed_bytes"}  # fmt: skip
    fields = None
    with open(tsv) as f, open(out, "w") as g:
        for line in f:
            if line.startswith("#fields"):
                fields = line.rstrip("\n").split("\t")[1:]
            elif not line.startswith("#"):
                obj = {}
                for k, v in zip(fields, line.rstrip("\n").split("\t")):
                    if v != "-":
                        obj[k] = float(v) if k in numbers else int(v) if k in counts else v
                g.write(json.dumps(obj) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("capture", nargs="?", default=str(HERE / "data" / "mix.pcap"))
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()

    import pandas as pd

    import flowkit
    from flowkit.zeeklog import read_conn_log

    tmp = Path(tempfile.mkdtemp(prefix="bench-zeeklog-"))
    tsv, js = tmp / "conn.log", tmp / "conn.json"
    flowkit.flows(args.capture).write(tsv, format="zeek")
    as_json(tsv, js)
    fields = next(line for line in open(tsv) if line.startswith("#fields")).rstrip("\n").split("\t")[1:]
    cases = {
        "flowkit TSV": lambda: read_conn_log(tsv),
        "flowkit JSON": lambda: read_conn_log(js),
        "pandas read_csv TSV": lambda: pd.read_csv(tsv, sep="\t", comment="#", names=fields, na_values="-"),
        "pandas read_json JSON": lambda: pd.read_json(js, lines=True),
    }
    rows = len(read_conn_log(tsv)[0])
    times = {name: ([], []) for name in cases}
    for name, fn in cases.items():  # warm-up: imports, page cache
        fn()
    for _ in range(args.runs):
        for name, fn in cases.items():
            c0, t0 = cpu(), time.perf_counter()
            fn()
            times[name][0].append(cpu() - c0)
            times[name][1].append(time.perf_counter() - t0)
    print(f"{rows:,} rows; TSV {tsv.stat().st_size / 1e6:.1f} MB, JSON {js.stat().st_size / 1e6:.1f} MB; "
          f"load average {os.getloadavg()[0]:.1f}")
    base = statistics.median(times["flowkit TSV"][0])
    for name, (c, w) in times.items():
        print(f"{name:24s} cpu {statistics.median(c):.3f} s ({min(c):.3f}-{max(c):.3f})  "
              f"wall {statistics.median(w):.3f} s  ({statistics.median(c) / base:.1f}x flowkit TSV cpu)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
