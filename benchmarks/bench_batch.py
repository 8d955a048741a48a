"""Batch throughput: in-process vs Dask LocalCluster (1 and 2 workers), and byte-range splitting.

Data (git-ignored, built on first use from the nfstream corpus via make_mix.py):
  benchmarks/data/mix.pcap                the Ethernet mix (make_mix.py --repeat 24: ~1M packets)
  benchmarks/data/rotated-mix-N/dump.pcap*  the same packets cut into N rotated files (--files)

Measures packets/s of the whole flowkit.batch call (discovery, hashing, decode, flows,
Parquet writes, manifest). Dask runs use a cluster started beforehand (its start-up
time is reported on its own); every configuration runs once to warm up (imports in fresh
worker processes, the page cache) and is then timed --runs times (best kept).
Usage: python benchmarks/bench_batch.py [--repeat 24] [--files 16] [--runs 2]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dpkt

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"


def build_data(repeat: int, files: int) -> tuple[Path, Path]:
    mix = DATA / "mix.pcap" if repeat == 24 else DATA / f"mix-x{repeat}.pcap"
    if not mix.exists():
        subprocess.run([sys.executable, str(HERE / "make_mix.py"), "--repeat", str(repeat), str(HERE.parent.parent / "shared" / "corpus" / "nfstream"), str(mix)], check=True)
    rotated = DATA / f"rotated-{mix.stem}-{files}"
    if not rotated.exists():
        tmp = Path(tempfile.mkdtemp(dir=DATA, prefix=".building-"))
        per_file = mix.stat().st_size // files + 1
        with open(mix, "rb") as f:
            reader = dpkt.pcap.Reader(f)
            k, size, out, w = 0, 0, None, None
            for ts, buf in reader:
                if w is None or size >= per_file:  # tcpdump -C style: cut at a packet boundary past the size
                    if out:
                        out.close()
                    out = open(tmp / ("dump.pcap" if k == 0 else f"dump.pcap{k}"), "wb")
                    w = dpkt.pcap.Writer(out, snaplen=262144, linktype=reader.datalink())
                    k, size = k + 1, 0
                w.writepkt(buf, ts=ts)
                size += len(buf) + 16
            out.close()
        tmp.rename(rotated)
    return mix, rotated


def timed(label, fn, runs, packets):
    fn()  # warm-up: JIT compilation, page cache
    best = min(_once(fn) for _ in range(runs))
    rate = packets / best
    print(f"{label:<44} {best:7.2f} s  {rate / 1e6:6.3f} M packets/s", flush=True)
    return {"config": label, "seconds": round(best, 3), "packets_per_s": round(rate)}


def _once(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv=None) -> int:
    import flowkit
    from flowkit.batch.executor import local_cluster

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=24, help="mix repetitions (24: about a million packets)")
    ap.add_argument("--files", type=int, default=16, help="rotated files to cut the mix into")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)

    mix, rotated = build_data(args.repeat, args.files)
    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    results = []
    try:
        probe = flowkit.batch(str(mix), work / "probe", split_bytes=0)
        packets = probe["totals"]["packets"]
        nfiles = len(os.listdir(rotated))
        print(f"{mix.name}: {packets} packets, {mix.stat().st_size / 1e6:.0f} MB; {nfiles} rotated files; "
              f"{os.cpu_count()} CPUs", flush=True)

        def run(inputs, **kw):
            return lambda: flowkit.batch(inputs, work / "out", force=True, **kw)

        results.append(timed(f"rotated, in-process", run(str(rotated)), args.runs, packets))
        results.append(timed(f"rotated, in-process, stitch", run(str(rotated), stitch=True), args.runs, packets))
        for n in (1, 2):
            t = time.perf_counter()
            with local_cluster(n) as c:  # the cluster workers=N starts
                start = time.perf_counter() - t
                print(f"LocalCluster({n}) start-up: {start:.2f} s", flush=True)
                addr = c.scheduler_address
                results.append(timed(f"rotated, {n} worker(s)", run(str(rotated), scheduler=addr), args.runs, packets))
                results.append(timed(f"rotated, {n} worker(s), stitch", run(str(rotated), scheduler=addr, stitch=True), args.runs, packets))
                if n == 2:
                    quarter = mix.stat().st_size // 4 + 1
                    results.append(timed("one pcap, 2 workers, 4 byte ranges", run(str(mix), scheduler=addr, split_bytes=quarter), args.runs, packets))
                    results.append(timed("one pcap, 2 workers, no split", run(str(mix), scheduler=addr, split_bytes=0), args.runs, packets))
                results[-1]["cluster_start_s"] = round(start, 2)
        results.append(timed("one pcap, in-process, no split", run(str(mix), split_bytes=0), args.runs, packets))
        quarter = mix.stat().st_size // 4 + 1
        results.append(timed("one pcap, in-process, 4 byte ranges", run(str(mix), split_bytes=quarter), args.runs, packets))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"packets": packets, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
