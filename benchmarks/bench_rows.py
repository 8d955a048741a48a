"""Finished connection rows to Arrow (``flows/rows.py``'s ``rows_to_arrow``), in process.

    python benchmarks/bench_rows.py CAPTURE [--groups 12] [--runs 10] [--rows rows.npz] [--write out.arrow]

Runs ``flowkit.flows(CAPTURE)`` once, keeping a copy of the first ``--groups`` groups of
connection rows handed to ``rows_to_arrow`` (or loads them from ``--rows`` when that file
exists, else saves them there: two checkouts then convert the same rows); then converts
those groups again, warm, ``--runs`` times and prints the median (min-max) time per group
and per row. ``--write`` saves the converted groups (one Arrow IPC file) to compare the
output of two checkouts.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]  # this checkout's flowkit


def capture_groups(path: str, groups: int):
    import flowkit
    from flowkit.flows import finished

    kept = []
    convert = finished.rows_to_arrow

    def keeping(C, H, K, local):
        if len(kept) < groups:
            kept.append((C.copy(), H.copy(), K.copy(), local))
        return convert(C, H, K, local)

    finished.rows_to_arrow = keeping
    try:
        flowkit.flows(path)
    finally:
        finished.rows_to_arrow = convert
    return kept


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture")
    ap.add_argument("--groups", type=int, default=12)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--rows", help="npz file of the captured groups: loaded if it exists, else written")
    ap.add_argument("--write", help="Arrow IPC file of the converted groups")
    args = ap.parse_args(argv)

    import pyarrow as pa

    from flowkit.flows.rows import rows_to_arrow

    if args.rows and Path(args.rows).exists():
        import numpy as np

        from flowkit.flows.local import DEFAULT

        with np.load(args.rows) as f:
            kept = [(f[f"C{j}"], f[f"H{j}"], f[f"K{j}"], DEFAULT) for j in range(len(f.files) // 3)]
    else:
        kept = capture_groups(args.capture, args.groups)
        if args.rows:
            import numpy as np

            np.savez(args.rows, **{f"{m}{j}": a for j, g in enumerate(kept) for m, a in zip("CHK", g)})
    rows = sum(len(g[0]) for g in kept)
    for g in kept:  # warm
        rows_to_arrow(*g)
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        for g in kept:
            rows_to_arrow(*g)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"{args.capture}: {len(kept)} groups, {rows:,} rows; rows_to_arrow {med * 1e3:.1f} ms "
          f"({min(times) * 1e3:.1f}-{max(times) * 1e3:.1f}), {med / rows * 1e6:.3f} us a row")
    if args.write:
        table = pa.concat_tables([rows_to_arrow(*g) for g in kept])
        with pa.OSFile(args.write, "wb") as f, pa.ipc.new_file(f, table.schema) as w:
            w.write_table(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
