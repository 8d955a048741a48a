"""``flowkit.batch(inputs, out, ...)``: many captures into one partitioned flow dataset.

A run plans *units* (one capture, or with ``stitch`` every capture of one directory
as one rotated sequence), splits large classic pcaps into byte ranges (*pieces*),
runs the pieces on the executor, merges each unit's flow states in capture order,
and writes the unit's Parquet files, its ledgers and then the manifest.
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

from flowkit.batch import manifest as mf
from flowkit.batch.atomic import remove_stale_temps, write_json
from flowkit.batch.dataset import remove_outputs, with_source, write_flows
from flowkit.batch.executor import check_arguments, make_executor
from flowkit.batch.inputs import CaptureInput, discover, natural_key, output_key, sha256_file
from flowkit.batch.work import Piece, PieceResult, is_classic_pcap, merge_ledgers, run_piece
from flowkit.errors import FlowkitError

log = logging.getLogger("flowkit.batch")

AUTO_SPLIT_BYTES = 256 * 2**20  # classic pcaps above this are read as parallel byte ranges
LEDGERS_DIR = "ledgers"
_SAVE_EVERY = 2.0  # seconds between manifest rewrites once it lists many captures
_SAVE_ALWAYS_BELOW = 500  # entries; rewriting a small manifest after every unit is cheap


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


def _iso(ns: int | None) -> str | None:
    return None if ns is None else np.datetime_as_string(np.datetime64(ns, "ns"), unit="ns") + "Z"


def _now() -> str:
    return np.datetime_as_string(np.datetime64(time.time_ns(), "ns"), unit="ms") + "Z"


def row_sources(ts_start: pa.ChunkedArray, first_ts: list[int], sources: list[str]) -> pa.Array:
    """Source of each stitched flow: the last capture (in order) starting at or before it."""
    ts = ts_start.cast(pa.int64()).to_numpy()
    at = np.searchsorted(np.asarray(first_ts, dtype=np.int64), ts, side="right") - 1
    return pa.array(np.asarray(sources, dtype=object)[np.clip(at, 0, None)], pa.string())


def _finish_unit(unit: Unit, results: list[PieceResult], options, stitch: bool, out: str, hashes, digest) -> list[dict]:
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
                warnings[c.source] = (f"{c.source}: starts at {_iso(first_ts[c.source])}, before {newest[1]} "
                                      f"ends ({_iso(newest[0])}): not a rotated sequence, stitched flows may be wrong")
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
                first_ts=_iso(first_ts[c.source]),
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


def _check_options(capture: CaptureInput, options) -> None:
    """Fail once, before any work, on an unknown engine or a filter that does not parse
    (a PacketTable checks both when made, and reads nothing until iterated)."""
    from flowkit.decode import PacketTable

    PacketTable(capture.path, engine=options.engine, strict=options.strict, filter=options.filter)


def _hash_all(captures: list[CaptureInput]) -> dict[str, str]:
    """SHA-256 of every input; hashlib releases the GIL on large blocks, so threads overlap."""
    from concurrent.futures import ThreadPoolExecutor

    if not captures:
        return {}
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1, len(captures))) as pool:
        return dict(zip((c.source for c in captures), pool.map(lambda c: sha256_file(c.path), captures)))


def batch(
    inputs,
    out,
    *,
    stitch: bool = False,
    workers: int | None = None,
    scheduler=None,
    force: bool = False,
    split_bytes: int | None = None,
    progress=None,
    **flow_options,
) -> dict:
    """Turn captures into a Hive-partitioned Parquet flow dataset under ``out``; returns the manifest.

    inputs       a path, directory (searched recursively), glob, or a list of them
    stitch       treat the captures of each directory as one rotated sequence (ordered by
                 first packet): a connection spanning files is one flow
    workers      run on a dask LocalCluster of this many single-threaded processes
    scheduler    address (or ``distributed.Client``) of a running Dask cluster;
                 default ``DASK_SCHEDULER_ADDRESS`` from the environment, else in-process
    force        reprocess captures even when the manifest says they are done
    split_bytes  read uncompressed classic pcaps larger than this as byte ranges in
                 parallel (default 256 MiB; 0 never splits)
    progress     called with each capture's manifest entry as it is written (captures
                 skipped as already done: a copy with status "skipped")
    flow_options FlowOptions fields (tcp_timeout, udp_timeout, engine, filter, strict, ...)
    """
    from flowkit import __version__
    from flowkit.flows import FlowOptions

    t0 = time.perf_counter()
    started = _now()
    try:
        options = FlowOptions(**flow_options)
    except TypeError as exc:
        raise FlowkitError(f"batch: {exc}") from exc
    out = os.fspath(out)
    check_arguments(workers, scheduler)
    captures = discover(inputs)
    _check_options(captures[0], options)
    if os.path.exists(out) and not os.path.isdir(out):
        raise FlowkitError(f"{out}: output must be a directory, this is a file")
    os.makedirs(out, exist_ok=True)
    remove_stale_temps(out)
    previous = mf.load(out) or {}
    entries: dict[str, dict] = {e["source"]: e for e in previous.get("captures", [])}
    _forget_other_spellings(out, entries, captures)
    record = mf.options_record(options, stitch)
    digest = mf.options_digest(record)
    # Hash here only what might be skipped (listed as done before); the other captures are
    # hashed by the task that reads them, in parallel on the workers.
    maybe_done = [] if force else [c for c in captures if entries.get(c.source, {}).get("status") == "done"]
    hashes = _hash_all(maybe_done)

    units = plan_units(captures, stitch)
    todo = []
    for unit in units:
        members = {c.source for c in unit.members}
        before = {s for s, e in entries.items() if e.get("unit") == unit.key}
        current = all(c.source in hashes and mf.is_current(entries.get(c.source), hashes[c.source], digest, unit.key, out)
                      for c in unit.members)
        if force or not current or before != members:
            todo.append(unit)
    skipped = len(units) - len(todo)
    if progress is not None:
        planned = {u.key for u in todo}
        for unit in units:
            if unit.key not in planned:
                for c in unit.members:
                    progress({**entries[c.source], "status": "skipped"})

    given_sources = {c.source for c in captures}

    def manifest(run_done: bool) -> dict:
        given = [entries[c.source] for c in captures if c.source in entries]
        others = [e for s, e in entries.items() if s not in given_sources]  # earlier runs' inputs stay in the dataset
        listed = given + others
        done = [e for e in listed if e["status"] == "done"]
        return {
            "format": mf.FORMAT,
            "flowkit_version": __version__,
            "options": record,
            "options_sha256": digest,
            "dataset": {"flows": "flows", "partitioning": "hive", "partition_column": "date", "ledgers": LEDGERS_DIR},
            "totals": {
                "captures": len(listed),
                "done": len(done),
                "failed": len(listed) - len(done),
                "packets": sum(e.get("packets", 0) for e in done),
                "flows": sum(e.get("flows", 0) for e in done),
            },
            "run": {
                "started": started,
                "finished": _now() if run_done else None,
                "seconds": round(time.perf_counter() - t0, 3),
                "executor": executor.description,
                "units": len(units),
                "units_skipped": skipped,
                "complete": run_done,
            },
            "captures": listed,
        }

    executor = make_executor(workers, scheduler)
    try:
        plans = {u.key: (u, plan_pieces(u, split_bytes, hashed=hashes)) for u in todo}
        waiting = {key: len(pieces) for key, (_u, pieces) in plans.items()}
        arrived: dict[str, list[PieceResult]] = defaultdict(list)
        last_save = float("-inf")  # the first finished unit is saved at once
        all_pieces = [p for _u, pieces in plans.values() for p in pieces]
        for piece, result in executor.run(run_piece, all_pieces, options):
            arrived[piece.unit].append(result)
            waiting[piece.unit] -= 1
            if waiting[piece.unit]:
                continue
            unit = plans[piece.unit][0]
            new = _finish_unit(unit, arrived.pop(piece.unit), options, stitch, out, hashes, digest)
            members = {e["source"] for e in new}
            _drop_replaced(out, entries, unit.key, members, new)
            for e in new:
                entries[e["source"]] = e
                if progress is not None:
                    progress(e)
            if len(entries) < _SAVE_ALWAYS_BELOW or time.monotonic() - last_save >= _SAVE_EVERY:
                mf.save(out, manifest(False))
                last_save = time.monotonic()
    finally:
        executor.close()
    result = manifest(True)
    mf.save(out, result)
    return result


def _forget_other_spellings(out: str, entries: dict, captures: list[CaptureInput]) -> None:
    """A file given before under another path (``caps/a.pcap`` then ``/data/caps/a.pcap``) is
    the same capture: drop the old entry and its files, or its flows would be in twice."""
    current = {os.path.realpath(c.path): c.source for c in captures}
    for source, e in list(entries.items()):
        if current.get(e.get("path"), source) != source:
            for rel in [*e.get("outputs", []), e.get("ledger")]:
                if rel and os.path.exists(os.path.join(out, rel)):
                    os.unlink(os.path.join(out, rel))
            del entries[source]


def _drop_replaced(out: str, entries: dict, key: str, members: set, new: list[dict]) -> None:
    """Forget what a unit's captures wrote before under other names, and captures that left the unit."""
    keep = {p for e in new for p in e.get("outputs", [])}
    for e in new:
        old = entries.get(e["source"])
        for rel in (old or {}).get("outputs", []):
            if rel not in keep and os.path.exists(os.path.join(out, rel)):
                os.unlink(os.path.join(out, rel))
    for source in [s for s, e in entries.items() if e.get("unit") == key and s not in members]:
        del entries[source]
