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
from flowkit.decode.api import PacketTable
from flowkit.flows._pool import system_pool
from flowkit.flows.keys import flow_packets
from flowkit.flows.schema import FLOW_COLUMNS, FLOW_SCHEMA
from flowkit.flows.options import DEFAULT_MEMORY, DEPRECATED, FlowOptions
from flowkit.flows.state import FlowState
from flowkit.flows.stream import StreamState
from flowkit.flows.table import FlowTable

__all__ = ["flows", "accumulate", "FlowOptions", "FlowState", "StreamState", "FlowTable", "FLOW_SCHEMA", "FLOW_COLUMNS"]


def _options(deprecated: dict, **given) -> FlowOptions:
    unknown = set(deprecated) - set(DEPRECATED)
    if unknown:
        raise TypeError(f"flows() got an unexpected keyword argument {sorted(unknown)[0]!r}")
    return FlowOptions.from_kwargs(**given, **deprecated)


def packet_table(source, options: FlowOptions) -> PacketTable:
    """The PacketTable of a flow source (paths, a binary file, a PacketTable, or decoded
    batches): it alone counts the ledger and applies the packet filter."""
    if isinstance(source, PacketTable):
        if options.packet_filter is not None:  # silently unfiltered flows would be worse than an error
            raise ValueError("a PacketTable applies its own packet filter: give it as "
                             "PacketTable(..., filter=...), not as packet_filter=")
        return source
    if isinstance(source, (str, os.PathLike)) or hasattr(source, "read") or (
        isinstance(source, (list, tuple)) and source and all(isinstance(s, (str, os.PathLike)) for s in source)
    ):
        return PacketTable(source, options.engine, strict=options.strict, filter=options.packet_filter,
                           chunk_bytes=options.chunk_bytes, decap=options.decap,
                           verify_checksums=options.verify_checksums)
    return PacketTable.of_batches(source, filter=options.packet_filter)


def accumulate(batches: Iterable[pa.RecordBatch], options: FlowOptions | None = None) -> FlowState:
    """Flow state of a run of consecutive packet batches (mergeable with its neighbours).

    ``batches``: decoded batches or a PacketTable; the state's ledger is the table's. Services
    are identified where the table's engine records payload positions (docs/services.md).
    """
    options = options or FlowOptions()
    table = packet_table(batches, options)
    state = FlowState(options)
    for batch, payload in table.with_payload():
        state.advance(flow_packets(batch, options.vlan_key, payload), None if payload is None else payload.data)
    state.ledger = table.stats
    return state


def flows(
    source,
    *,
    engine: str = "fast",
    tcp_timeout: float = 300.0,
    udp_timeout: float = 60.0,
    active_timeout: float | None = None,
    packet_filter=None,
    strict: bool = False,
    chunk_bytes: int | None = None,
    memory: int | str | None = DEFAULT_MEMORY,
    spill_rows: int | None = None,
    spill_dir: str | None = None,
    vlan_key: bool = False,
    local_nets=None,
    decap: bool = True,
    verify_checksums: bool = False,
    **deprecated,
) -> FlowTable:
    """Flow table of a capture: a path, several consecutive paths, a PacketTable, or packet batches.

    ``packet_filter``: tcpdump-style expression (or batch -> mask callable) applied to the
    packets before flows are built (every packet still counts in ``.stats``); ``filter=``
    is its deprecated spelling. Timeouts in seconds (see docs/semantics.md).

    Streams: each packet batch advances one state (the same state machine as
    ``accumulate``), connections no later packet can join are finished on the way.
    ``memory`` (bytes, or a size such as ``"300M"``; None: unlimited) bounds the flow
    state: open connections past half of it go to disk as partial state and are
    merged back at the end, finished flows past the other half go to sorted runs
    (``spill_rows`` sets that count instead), both in temporary directories under
    ``spill_dir``. The result is the same whatever the budget; ``.stats.spilled``
    says what went to disk. See docs/performance.md. ``vlan_key``: VLAN tags separate
    connections (Zeek's vlan_fivetuple key); by default, as Zeek, they do not.
    ``local_nets``: networks (CIDR strings) of the ``local_orig``/``local_resp`` columns;
    by default Zeek's, its private address space (flows/local.py). ``decap``: packets
    inside tunnels make their own flows too (False: the outer packets only).
    ``verify_checksums``: as Zeek without -C, a packet with a bad IPv4 header checksum
    makes no flow and one with a bad TCP/UDP/ICMP checksum is not counted in its flow
    (history C/c); by default, as ``zeek -C``, checksums are not verified.
    """
    options = _options(deprecated, engine=engine, tcp_timeout=tcp_timeout, udp_timeout=udp_timeout,
                       active_timeout=active_timeout, packet_filter=packet_filter, strict=strict,
                       chunk_bytes=chunk_bytes, memory=memory, spill_rows=spill_rows, spill_dir=spill_dir,
                       vlan_key=vlan_key, local_nets=local_nets, decap=decap, verify_checksums=verify_checksums)
    with system_pool():  # one allocator for numpy and Arrow: lower peak RSS (see _pool.py)
        table = packet_table(source, options)
        state = StreamState(options)  # one pass: no later merge, so no per-key bookkeeping
        # the next batches are read and decoded in a thread while this one advances the state
        for batch, payload in prefetch(table.with_payload()):
            state.advance_batch(batch, payload)
        state.ledger = table.stats
        return state.finalize(release=True)


make_callable(__name__, "flows")
