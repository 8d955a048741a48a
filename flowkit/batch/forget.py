"""``flowkit.batch.forget(out, captures)``: drop captures from a dataset and its manifest."""
from __future__ import annotations

import os

from flowkit.batch import manifest as mf
from flowkit.errors import FlowkitError


def _matches(entry: dict, name: str) -> bool:
    """``name`` is the capture's source as listed, its file (by resolved path), or a directory holding it."""
    norm, real = os.path.normpath(name), os.path.realpath(name)
    source, path = os.path.normpath(entry["source"]), entry.get("path") or ""
    return (source == norm or path == real
            or source.startswith(norm.rstrip(os.sep) + os.sep) or path.startswith(real.rstrip(os.sep) + os.sep))


def forget(out, captures) -> dict:
    """Remove the entries of ``captures`` (sources as listed, paths, or directories) from ``out``'s
    manifest together with their Parquet files and ledgers; returns the new manifest.

    A capture stitched with others shares their files: forget the whole directory, or run the
    batch again without the file (its directory is then redone)."""
    out = os.fspath(out)
    manifest = mf.load(out)
    if manifest is None:
        raise FlowkitError(f"{out}: not a flowkit dataset (no {mf.MANIFEST})")
    names = [captures] if isinstance(captures, (str, os.PathLike)) else list(captures)
    entries = manifest.get("captures", [])
    drop = []
    for name in map(os.fspath, names):
        found = [e for e in entries if _matches(e, name)]
        if not found:
            raise FlowkitError(f"{out}: no capture {name} in {mf.MANIFEST}")
        drop += [e for e in found if e not in drop]
    for e in drop:
        partners = [o["source"] for o in entries if o.get("unit") == e.get("unit") and o not in drop]
        if partners:
            raise FlowkitError(f"{e['source']}: stitched with {len(partners)} other capture(s) of its directory "
                               f"({partners[0]}, ...); forget the directory, or run the batch again without the file")
    for e in drop:
        for rel in [*e.get("outputs", []), e.get("ledger")]:
            if rel and os.path.exists(os.path.join(out, rel)):
                os.unlink(os.path.join(out, rel))
    kept = [e for e in entries if e not in drop]
    manifest = {**manifest, "captures": kept, "totals": mf.totals(kept)}
    mf.save(out, manifest)
    return manifest
