"""Five-tuple flow table: ``flowkit.flows(source, **options)`` returns a FlowTable.

Connections follow Zeek's conn.log semantics (docs/semantics.md). The mergeable
partial state (``accumulate``, ``FlowState.merge``/``finalize``) is what chunked
streaming, rotated files and Dask workers build on.
"""
from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from flowkit._callable import make_callable
from flowkit._prefetch import prefetch
from flowkit.decode._arrow import to_numpy
from flowkit.flows._pool import system_pool
from flowkit.flows.keys import flow_packets
from flowkit.flows.schema import FLOW_COLUMNS, FLOW_SCHEMA
from flowkit.flows.state import FlowOptions, FlowState
from flowkit.flows.stream import StreamState
from flowkit.flows.table import FlowTable
from flowkit.ledger import Ledger

__all__ = ["flows", "accumulate", "FlowOptions", "FlowState", "FlowTable", "FLOW_SCHEMA", "FLOW_COLUMNS"]


def _count(ledger: Ledger, batch: pa.RecordBatch) -> None:
    ledger.add_batch(
        to_numpy(batch.column("status")),
        to_numpy(batch.column("ip_proto")),
    )


def _batches(source, options: FlowOptions):
    """(iterator of packet batches, function returning the ledger once iterated).

    Every packet is counted in the ledger before the optional filter drops any, as
    ``flowkit.packets`` does for files.
    """
    from flowkit.decode import PacketTable, packets

    if isinstance(source, (str, os.PathLike)) or (
        isinstance(source, (list, tuple)) and source and all(isinstance(s, (str, os.PathLike)) for s in source)
    ) or hasattr(source, "read"):
        kwargs = {"strict": options.strict, "filter": options.filter}
        if options.chunk_bytes:
            kwargs["chunk_bytes"] = options.chunk_bytes
        source = packets(source, engine=options.engine, **kwargs)
    if isinstance(source, PacketTable):
        return iter(source), lambda: source.stats
    if isinstance(source, pa.RecordBatch):
        source = [source]
    if isinstance(source, pa.Table):
        source = source.to_batches()
    ledger = Ledger()
    return _counted(source, options.filter, ledger), lambda: ledger


def _counted(batches, filter, ledger: Ledger):
    """Count batches given directly, then apply the filter (callable mask or expression)."""
    if isinstance(filter, str):
        from flowkit.filter import compile_filter

        filter = compile_filter(filter)
    for b in batches:
        _count(ledger, b)
        if filter is not None:
            b = b.filter(pa.array(np.asarray(filter(b), dtype=bool)))
        yield b


def accumulate(batches: Iterable[pa.RecordBatch], options: FlowOptions | None = None) -> FlowState:
    """Flow state of a run of consecutive packet batches (mergeable with its neighbours)."""
    state = FlowState(options or FlowOptions())
    for batch in batches:
        _count(state.ledger, batch)
        state.advance(flow_packets(batch, state.options.vlan_key))
    return state


def flows(
    source,
    *,
    engine: str = "fast",
    tcp_timeout: float = 300.0,
    udp_timeout: float = 60.0,
    active_timeout: float | None = None,
    filter=None,
    strict: bool = False,
    chunk_bytes: int | None = None,
    spill_rows: int | None = 100_000,
    spill_dir: str | None = None,
    vlan_key: bool = False,
) -> FlowTable:
    """Flow table of a capture: a path, several consecutive paths, a PacketTable, or packet batches.

    Streams: each packet batch advances one state (the same state machine as
    ``accumulate``), connections no later packet can join are finished on the way,
    so memory follows the number of concurrently active connections. Past
    ``spill_rows`` finished connections (None or 0: never), they go to a sorted run
    in a temporary directory (under ``spill_dir``), so memory is bounded whatever
    the number of flows; see FlowTable and docs/semantics.md. ``vlan_key``: VLAN tags
    separate connections (Zeek's vlan_fivetuple key); by default, as Zeek, they do not.
    """
    options = FlowOptions(engine, tcp_timeout, udp_timeout, active_timeout, filter, strict, chunk_bytes,
                          spill_rows, spill_dir, vlan_key)
    with system_pool():  # one allocator for numpy and Arrow: lower peak RSS (see _pool.py)
        it, ledger_of = _batches(source, options)
        state = StreamState(options)  # one pass: no later merge, so no per-key bookkeeping
        # the next batches are read and decoded in a thread while this one advances the state
        for batch in prefetch(it):
            state.advance_batch(batch)
        state.ledger = ledger_of()
        return state.finalize(release=True)


make_callable(__name__, "flows")
