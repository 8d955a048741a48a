"""``flowkit.batch(inputs, out, ...)``: many captures into one partitioned flow dataset.

A run plans *units* (one capture, or with ``stitch`` every capture of one directory
as one rotated sequence), splits large classic pcaps into byte ranges (*pieces*),
runs the pieces on the executor, merges each unit's flow states in capture order,
and writes the unit's Parquet files, its ledgers and then the manifest.
"""
from __future__ import annotations

import os
import time
from collections import defaultdict

from flowkit.batch import manifest as mf
from flowkit.batch.atomic import remove_stale_temps
from flowkit.batch.executor import InProcess, check_arguments, make_executor
from flowkit.batch.inputs import CaptureInput, discover, sha256_file
from flowkit.batch.units import LEDGERS_DIR, finish_unit as _finish_unit, now_utc, plan_pieces, plan_units
from flowkit.batch.work import PieceResult, run_piece
from flowkit.errors import FlowkitError

_SAVE_EVERY = 2.0  # seconds between manifest rewrites once it lists many captures
_SAVE_ALWAYS_BELOW = 500  # entries; rewriting a small manifest after every unit is cheap


def _check_options(capture: CaptureInput, options) -> None:
    """Fail once, before any work, on an unknown engine or a filter that does not parse
    (a PacketTable checks both when made, and reads nothing until iterated)."""
    from flowkit.decode import PacketTable

    PacketTable(capture.path, engine=options.engine, strict=options.strict, filter=options.packet_filter)


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
                 parallel (default 256 MiB on Dask, no split in-process; 0 never splits)
    progress     called with each capture's manifest entry as it is written (captures
                 skipped as already done: a copy with status "skipped")
    flow_options FlowOptions fields (tcp_timeout, udp_timeout, engine, packet_filter, strict, memory, ...;
                 filter= is the deprecated spelling of packet_filter)
    """
    from flowkit import __version__
    from flowkit.flows import FlowOptions

    t0 = time.perf_counter()
    started = now_utc()
    try:
        options = FlowOptions.from_kwargs(**flow_options)
    except (TypeError, ValueError) as exc:
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
    _forget_vanished_failures(entries, {c.source for c in captures})
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
        failed_now = [e["source"] for e in given if e["status"] != "done"]
        return {
            "format": mf.FORMAT,
            "flowkit_version": __version__,
            "options": record,
            "options_sha256": digest,
            "dataset": {"flows": "flows", "partitioning": "hive", "partition_column": "date", "ledgers": LEDGERS_DIR},
            "totals": mf.totals(listed),
            "run": {
                "started": started,
                "finished": now_utc() if run_done else None,
                "seconds": round(time.perf_counter() - t0, 3),
                "executor": executor.description,
                "units": len(units),
                "units_skipped": skipped,
                "failed": failed_now,
                "complete": run_done,
            },
            "captures": listed,
        }

    executor = make_executor(workers, scheduler)
    try:
        if split_bytes is None and isinstance(executor, InProcess):
            split_bytes = 0  # in one process byte ranges only add merges: one pass is faster
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


def _forget_vanished_failures(entries: dict, given: set) -> None:
    """A failed capture wrote nothing: once its file is gone (and it is not an input) its entry goes too."""
    for source, e in list(entries.items()):
        if e.get("status") != "done" and source not in given and not os.path.exists(e.get("path") or source):
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
