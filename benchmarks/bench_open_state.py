"""Bytes per open connection: the layout's figures and the peak RSS of N open UDP connections.

    python benchmarks/bench_open_state.py [--connections 1000000] [--runs 3]

Writes a UDP spray of N packets (make_flowheavy.py's: every packet a new flow, all open at
once under the 60 s timeout) to a temporary directory, then per run, in a fresh process,
builds its flows without a memory budget and prints the peak RSS at the end of the pass
(every connection open, before the flow table is built) and at the end of the run.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # this checkout's flowkit, make_flowheavy

CHILD = r"""
import resource, sys
import flowkit
from flowkit.flows import stream
finalize = stream.StreamState.finalize
def at_end(self, **kw):
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"open {self.open_count:,}, rows allocated {len(self._rows[0]):,}, "
          f"peak RSS at the end of the pass {rss:,} MB")
    return finalize(self, **kw)
stream.StreamState.finalize = at_end
flowkit.flows(sys.argv[1], memory=None)
print(f"peak RSS at the end of the run {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024:,} MB")
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    from flowkit.flows import _machine, layout, stream

    print(f"per open connection: state {layout.CONN_SIZE}, history {_machine.HMAX}, key {layout.KEY_SIZE}, "
          f"open flag and free list 9, hash table {stream.TABLE_BYTES} (counted): {stream.OPEN_BYTES} bytes")
    import make_flowheavy

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "udpspray.pcap"
        make_flowheavy.write(path, "udp", args.connections)
        paths = [str(HERE.parent), os.environ.get("PYTHONPATH")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}
        for _ in range(args.runs):
            subprocess.run([sys.executable, "-c", CHILD, str(path)], check=True, env=env)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
