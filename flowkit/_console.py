"""Entry point of the ``flowkit`` command (console script and ``python -m flowkit``).

Why a module of its own: it relaxes Python's cyclic garbage collector *before* the CLI and
its libraries are imported. A command is one short process that allocates many objects
while importing numpy, pyarrow and typer and very few cycles; with the default thresholds
the collector runs hundreds of times for nothing (~0.015-0.02 s of a 0.45 s
``flows -o`` run). Collections still happen, 70x less often, so a long ``batch`` run keeps
freeing cyclic garbage. For the same reason it keeps OpenBLAS to one thread (below).
"""
import gc
import os


def run() -> None:
    gc.set_threshold(50_000, 20, 20)
    # numpy's OpenBLAS starts a thread per core that spins for a while at import; no command
    # does linear algebra worth threads (5% of a ``flows -o`` run's CPU time on the mix)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # Arrow's C++ default pool is what the Parquet writer's encoders allocate from (pyarrow
    # gives it no other): the system allocator, as the flow path uses (flows/_pool.py), reuses
    # the heap the flows freed instead of faulting in fresh huge pages (-0.03 s sys on the mix)
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    from flowkit.cli import run as cli_run

    cli_run()
