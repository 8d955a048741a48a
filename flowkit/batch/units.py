"""Units of a batch run: what is written together, how it is read, and how it is assembled.

A *unit* is one capture, or with ``stitch`` every capture of one directory as one rotated
sequence; it owns the Parquet files named after it. A unit is read as *pieces* (a whole
capture, or byte ranges of a large classic pcap); ``finish_unit`` merges the pieces' flow
states in capture order, finalizes, and writes the unit's flows and ledgers.
"""
from __future__ import annotations

import logging
import math
import os
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowkit.batch.atomic import write_json
from flowkit.batch.dataset import remove_outputs, with_source, write_flows
from flowkit.batch.inputs import CaptureInput, natural_key, output_key
from flowkit.batch.work import Piece, PieceResult, is_classic_pcap, merge_ledgers

log = logging.getLogger("flowkit.batch")

AUTO_SPLIT_BYTES = 256 * 2**20  # classic pcaps above this are read as parallel byte ranges
LEDGERS_DIR = "ledgers"


@dataclass
class Unit:
    key: str  # file-name stem of its Parquet files
    members: list[CaptureInput]


def plan_units(captures: list[CaptureInput], stitch: bool) -> list[Unit]:
    """One unit per capture; with ``stitch``, one per directory (its rotated files)."""
    if not stitch:
        return [Unit(output_key(c.source), [c]) for c in captures]
    groups: dict[str, list[CaptureInput]] = {}
    for c in captures:
        groups.setdefault(os.path.dirname(c.source) or ".", []).append(c)
    return [Unit(output_key(d + os.sep), members) for d, members in groups.items()]


def plan_pieces(unit: Unit, split_bytes: int | None, hashed=()) -> list[Piece]:
    """The unit's pieces; the first piece of each capture not in ``hashed`` also hashes the file."""
    threshold = AUTO_SPLIT_BYTES if split_bytes is None else split_bytes
    pieces = []
    for c in unit.members:
        first = len(pieces)
        n = math.ceil(c.size / threshold) if threshold and c.size > threshold else 1
        if n > 1 and not c.compressed and is_classic_pcap(c.path):
            from flowkit.capture import split_ranges

            for part, (start, end) in enumerate(split_ranges(c.path, n)):
                pieces.append(Piece(c.path, c.source, unit.key, part, start, end))
        else:
            pieces.append(Piece(c.path, c.source, unit.key))
        pieces[first].hash = c.source not in hashed
    if len(pieces) == 1:
        pieces[0].finalize = True
    return pieces


def merge_in_order(states: list):
    """Fold flow states left to right: ``((s0 + s1) + s2) + ...``, capture order kept.

    A left fold, not a tree: merging two already-merged states (``a + (b + c)``) does not
    give the one-pass result with the current FlowState.merge, while folding does.
    """
    merged = states[0]
    for later in states[1:]:
        merged = merged.merge(later)
    return merged


def iso_utc(ns: int | None) -> str | None:
    return None if ns is None else np.datetime_as_string(np.datetime64(ns, "ns"), unit="ns") + "Z"


def now_utc() -> str:
    return np.datetime_as_string(np.datetime64(time.time_ns(), "ns"), unit="ms") + "Z"


def row_sources(ts_start: pa.ChunkedArray, first_ts: list[int], sources: list[str]) -> pa.Array:
    """Source of each stitched flow: the last capture (in order) starting at or before it."""
    ts = ts_start.cast(pa.int64()).to_numpy()
    at = np.searchsorted(np.asarray(first_ts, dtype=np.int64), ts, side="right") - 1
    return pa.array(np.asarray(sources, dtype=object)[np.clip(at, 0, None)], pa.string())


def finish_unit(unit: Unit, results: list[PieceResult], options, stitch: bool, out: str, hashes, digest) -> list[dict]:
    """Merge, finalize and write one unit; returns the manifest entries of its captures."""
    by_source: dict[str, list[PieceResult]] = defaultdict(list)
    for r in sorted(results, key=lambda r: r.piece.part):
        by_source[r.piece.source].append(r)
        if r.sha256 is not None:
            hashes[r.piece.source] = r.sha256
    order = {c.source: i for i, c in enumerate(unit.members)}
    ok, failed = [], {}
    for c in unit.members:
        errors = [r.error for r in by_source[c.source] if r.error]
        if errors:
            failed[c.source] = errors[0]
            log.warning("%s", errors[0])
        else:
            ok.append(c)
    first_ts = {c.source: next((r.first_ts for r in by_source[c.source] if r.first_ts is not None), None) for c in ok}
    # capture order: first packet time; empty captures and ties by (natural) name
    ok.sort(key=lambda c: (first_ts[c.source] is None, first_ts[c.source] or 0, natural_key(c.source), order[c.source]))

    warnings = {}
    if stitch:  # merging assumes each file ends before the next begins (a rotated sequence)
        newest = None
        for c in ok:
            if first_ts[c.source] is None:
                continue
            if newest is not None and first_ts[c.source] < newest[0]:
                warnings[c.source] = (f"{c.source}: starts at {iso_utc(first_ts[c.source])}, before {newest[1]} "
                                      f"ends ({iso_utc(newest[0])}): not a rotated sequence, stitched flows may be wrong")
                log.warning("%s", warnings[c.source])
            last = max((r.last_ts for r in by_source[c.source] if r.last_ts is not None), default=None)
            if last is not None and (newest is None or last > newest[0]):
                newest = (last, c.source)

    table = None
    if ok:
        parts = [r for c in ok for r in by_source[c.source]]
        if len(parts) == 1 and parts[0].flows is not None:
            flows = parts[0].flows
        else:
            from flowkit.flows import FlowState

            flows = merge_in_order([FlowState.from_arrow(r.state, options) for r in parts]).finalize().to_arrow()
        if stitch and len(ok) > 1:
            started = [c for c in ok if first_ts[c.source] is not None]
            source = row_sources(flows["ts_start"], [first_ts[c.source] for c in started], [c.source for c in started])
        else:
            source = ok[0].source
        table = with_source(flows, source)
    outputs = write_flows(out, unit.key, table) if table is not None else []
    if table is None:
        remove_outputs(out, unit.key)
    counts = {}
    if table is not None and table.num_rows:
        vc = pc.value_counts(table["source"])
        counts = dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()))

    entries = []
    for c in unit.members:
        entry = {
            "source": c.source,
            "path": os.path.realpath(c.path),
            "size": c.size,
            "sha256": hashes.get(c.source),
            "status": "failed" if c.source in failed else "done",
            "error": failed.get(c.source),
            "unit": unit.key,
            "options_sha256": digest,
            "pieces": len(by_source[c.source]),
        }
        if c.source not in failed:
            ledger = merge_ledgers([r.ledger for r in by_source[c.source]])
            rel = os.path.join(LEDGERS_DIR, output_key(c.source) + ".json")
            write_json(os.path.join(out, rel), {"source": c.source, "sha256": hashes.get(c.source), **ledger})
            entry.update(
                first_ts=iso_utc(first_ts[c.source]),
                packets=ledger.get("packets", 0),
                flows=counts.get(c.source, 0),
                ledger=rel,
                outputs=outputs,
            )
            if c.source in warnings:
                entry["warning"] = warnings[c.source]
        entry["seconds"] = round(sum(r.seconds for r in by_source[c.source]), 3)
        entries.append(entry)
    return entries
