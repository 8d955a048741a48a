"""Saved flows as input to ``flows`` and the analyses: flow Parquet files, batch dataset
directories and Zeek conn.logs (docs/cli.md, "Saved flows as input").

``kind_of`` tells a saved input from a capture by what the file holds (Parquet magic, a
directory, Zeek's log header), so a conn.log needs no particular name.
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field

import pyarrow as pa

from flowkit.errors import FlowkitError
from flowkit.flows.schema import FLOW_SCHEMA, nullable

PARQUET_SUFFIXES = (".parquet", ".pq")


def tsv_start(data: bytes) -> int:
    """Offset of the ``#separator`` line, after other comment lines (a test baseline's banner); -1: none."""
    pos = 0
    while data.startswith(b"#", pos):
        if data.startswith(b"#separator ", pos):
            return pos
        nl = data.find(b"\n", pos)
        if nl < 0:
            return -1
        pos = nl + 1
    return -1


def looks_like_conn_log(head: bytes) -> bool:
    """First bytes (decompressed) of a Zeek log: the TSV header or a JSON object."""
    return head.lstrip().startswith(b'{"') or tsv_start(head) >= 0


def kind_of(path: str) -> str:
    """``"parquet"``, ``"dataset"``, ``"zeek"`` or ``"capture"`` (anything else: the capture
    readers say what is wrong with it)."""
    if path == "-":
        return "capture"
    if os.path.isdir(path):  # a batch output (OUT or OUT/flows); any other directory is not an input
        found = os.listdir(path)
        dataset = "manifest.json" in found or "flows" in found or any(n.startswith("date=") for n in found)
        return "dataset" if dataset else "capture"
    if path.lower().endswith(PARQUET_SUFFIXES):
        return "parquet"
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
        if head[:2] == b"\x1f\x8b":
            with gzip.open(path, "rb") as g:
                head = g.read(4096)
    except (OSError, EOFError):
        return "capture"
    if head[:4] == b"PAR1":
        return "parquet"
    return "zeek" if looks_like_conn_log(head) else "capture"


def is_saved(path: str) -> bool:
    return kind_of(path) != "capture"


@dataclass
class Saved:
    """Flows read from saved inputs, in FLOW_SCHEMA order (a dataset adds ``source`` and ``date``)."""

    table: pa.Table
    notes: list[str] = field(default_factory=list)


def read_saved(paths) -> Saved:
    """Every saved input, concatenated in the order given."""
    tables, notes = [], []
    for path in paths:
        kind = kind_of(path)
        if kind == "parquet":
            tables.append(_read_parquet(path))
        elif kind == "dataset":
            from flowkit.batch.dataset import read_dataset

            tables.append(read_dataset(path))
        elif kind == "zeek":
            from flowkit.zeeklog import read_conn_log

            table, _ = read_conn_log(path)
            tables.append(table)
        else:
            raise FlowkitError(f"{path}: not saved flows (a capture cannot be mixed with saved flows)")
    if len(tables) == 1:
        return Saved(tables[0], notes)
    names = [n for n in tables[0].column_names if all(n in t.column_names for t in tables)]
    # every field nullable: a conn.log lacks values a flowkit file has in every row
    schema = nullable(tables[0].select(names).schema)
    return Saved(pa.concat_tables([t.select(names).cast(schema) for t in tables]), notes)


def _read_parquet(path: str) -> pa.Table:
    import pyarrow.parquet as pq

    if not os.path.exists(path):
        raise FileNotFoundError(2, "no such file", path)
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        reason = str(exc).rsplit(": ", 1)[-1].split(". ")[0]  # arrow's message without its file name
        raise FlowkitError(f"{path}: not a flow Parquet file ({reason})") from exc


def flow_columns(table: pa.Table) -> pa.Table:
    """The flow columns only (a dataset's ``source`` and ``date`` left out), for writers."""
    return table.select([n for n in FLOW_SCHEMA.names if n in table.column_names])
