"""``OUT/manifest.json``: what a batch run read, with which options, and what it wrote.

The manifest is written last (after the Parquet files and ledgers of a unit), so
whatever it lists as done is complete on disk; a re-run trusts it to skip captures
whose content hash and options are unchanged. ``run`` describes the latest run
(timing, executor, counts) and is the only part that differs between two runs that
produced the same dataset.
"""
from __future__ import annotations

import hashlib
import json
import os

from flowkit.batch.atomic import write_json
from flowkit.errors import FlowkitError

MANIFEST = "manifest.json"
FORMAT = 1


def _describe(value):
    if callable(value):  # a filter function: its name (a repr would hold a memory address)
        return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', type(value).__name__)}"
    return value


def options_record(flow_options, stitch: bool) -> dict:
    """The options that change the dataset, JSON-ready: FlowOptions.result_record (read
    options and semantics); memory, spill settings, chunk size, split size and executor are
    operational and not part of it."""
    record = {k: _describe(v) for k, v in flow_options.result_record().items()}
    record = json.loads(json.dumps(record, sort_keys=True, default=str))
    return {"flows": record, "stitch": bool(stitch)}


def options_digest(record: dict) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def load(out: str) -> dict | None:
    path = os.path.join(out, MANIFEST)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as exc:
        raise FlowkitError(f"{path}: unreadable manifest ({exc}); remove it or use another output directory") from exc
    if manifest.get("format") != FORMAT:
        raise FlowkitError(f"{path}: manifest format {manifest.get('format')!r}, expected {FORMAT}")
    return manifest


def save(out: str, manifest: dict) -> None:
    write_json(os.path.join(out, MANIFEST), manifest)


def is_current(entry: dict | None, sha256: str, digest: str, unit: str, out: str) -> bool:
    """True when ``entry`` records this exact content done with these options, outputs present."""
    return (
        entry is not None
        and entry.get("status") == "done"
        and entry.get("sha256") == sha256
        and entry.get("options_sha256") == digest
        and entry.get("unit") == unit
        and all(os.path.exists(os.path.join(out, p)) for p in [*entry.get("outputs", []), entry.get("ledger", "")])
    )


def totals(entries: list[dict]) -> dict:
    """``totals`` of a manifest listing ``entries``."""
    done = [e for e in entries if e.get("status") == "done"]
    return {
        "captures": len(entries),
        "done": len(done),
        "failed": len(entries) - len(done),
        "packets": sum(e.get("packets", 0) for e in done),
        "flows": sum(e.get("flows", 0) for e in done),
    }
