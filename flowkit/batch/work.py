"""One unit of work, runnable in this process or on a Dask worker: a capture or a byte range of it.

A piece returns its flow state as an Arrow table (so it can cross process
boundaries), its packet ledger, and the timestamp of its first packet (used to
order rotated captures when stitching). A piece that is a whole unit on its own
is finalized where it ran and returns flows instead, which saves shipping state.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import pyarrow as pa

from flowkit.errors import FlowkitError

@dataclass
class Piece:
    """What to read: a whole capture (start = end = None) or a byte range of a classic pcap."""

    path: str
    source: str
    unit: str = ""  # output unit (a capture, or a stitched sequence of captures)
    part: int = 0  # position of this byte range within its capture
    start: int | None = None
    end: int | None = None
    finalize: bool = False  # True when this piece is a whole unit: return flows, not state
    hash: bool = False  # also compute the SHA-256 of the whole file (for the manifest)


@dataclass
class PieceResult:
    piece: Piece
    ledger: dict = field(default_factory=dict)
    first_ts: int | None = None  # ns since epoch of the piece's first packet
    last_ts: int | None = None  # ns since epoch of its newest packet
    state: pa.Table | None = None  # FlowState.to_arrow() (finalize=False)
    flows: pa.Table | None = None  # FlowTable.to_arrow() (finalize=True)
    error: str | None = None  # one-line reason the piece could not be read
    sha256: str | None = None  # of the whole file, when the piece was asked to hash it
    seconds: float = 0.0


def is_classic_pcap(path: str) -> bool:
    """Uncompressed classic pcap: the only kind ``split_ranges`` cuts (a compressed stream
    cannot be entered in the middle)."""
    from flowkit.capture import sniff_format

    try:
        fmt = sniff_format(path)
    except (FlowkitError, OSError):
        return False  # read whole; the task reports what is wrong with it
    return fmt.kind == "pcap" and not fmt.compression


class _FirstTimestamp:
    """Pass batches through, remembering the first packet's timestamp (one look per batch)."""

    def __init__(self, batches):
        self.batches = batches
        self.first_ts: int | None = None

    def __iter__(self):
        for batch, payload in self.batches:
            if self.first_ts is None and batch.num_rows:
                self.first_ts = batch.column("ts").cast(pa.int64())[0].as_py()
            yield batch, payload


def _packets(piece: Piece, options):
    """The piece's packets as a PacketTable (its ``.stats`` ledger counts packets before any filter)."""
    from flowkit.decode import PacketTable

    byte_range = None if piece.start is None else (piece.start, piece.end)
    return PacketTable(piece.path, engine=options.engine, strict=options.strict, filter=options.packet_filter,
                       chunk_bytes=options.chunk_bytes, byte_range=byte_range, decap=getattr(options, "decap", True),
                       verify_checksums=getattr(options, "verify_checksums", False))


def run_piece(piece: Piece, options) -> PieceResult:
    """Accumulate one piece into flow state (or flows). Bad input becomes ``error``, not a crash."""
    from flowkit.flows import FlowState, StreamState
    from flowkit.flows.keys import flow_packets

    t0 = time.perf_counter()
    result = PieceResult(piece)
    try:
        if piece.hash:
            from flowkit.batch.inputs import sha256_file

            result.sha256 = sha256_file(piece.path)
        table = _packets(piece, options)
        batches = _FirstTimestamp(table.with_payload())
        if piece.finalize:  # a whole unit: one pass, nothing merges into it
            state = StreamState(options)
            for batch, payload in batches:
                state.advance_batch(batch, payload)
        else:
            state = FlowState(options)
            for batch, payload in batches:
                state.advance(flow_packets(batch, options.vlan_key, payload),
                              None if payload is None else payload.data)
        result.first_ts = batches.first_ts
        result.last_ts = state.tmax if batches.first_ts is not None else None
        state.ledger = table.stats  # every packet read, also those a filter dropped
        if piece.finalize:
            result.flows = state.finalize().to_arrow()
        else:
            result.state = state.to_arrow()
        result.ledger = state.ledger.to_dict()
    except (FlowkitError, OSError) as exc:
        result.error = str(exc) if isinstance(exc, FlowkitError) else f"{piece.source}: {exc.strerror or exc}"
    result.seconds = time.perf_counter() - t0
    return result


def merge_ledgers(ledgers: list[dict]) -> dict:
    """Sum ledger dicts (``Ledger.to_dict()``) of consecutive pieces of one capture."""
    out: dict = {}
    for ledger in ledgers:
        for key, value in ledger.items():
            if key == "damage":
                out.setdefault("damage", []).extend(value)
            elif isinstance(value, dict):  # "spilled": counts per kind
                into = out.setdefault(key, {})
                for name, count in value.items():
                    into[name] = into.get(name, 0) + count
            else:
                out[key] = out.get(key, 0) + value
    return out
