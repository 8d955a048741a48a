"""``FlowTable``: the flow table users get (FLOW_SCHEMA).

Backed by one Arrow table, or, when ``flows()`` spilled (``FlowOptions.spill_rows``),
by sorted runs on disk plus the in-memory tail (spill.py): ``write`` then streams a
merge of the runs, ``to_arrow``/``to_pandas`` build the whole table in memory.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from flowkit.errors import FlowkitError
from flowkit.flows.schema import COUNTERS, FLOW_SCHEMA
from flowkit.ledger import Ledger
from flowkit.output import ZEEK_FIELDS  # noqa: F401  (the Zeek conn.log fields; flowkit.zeeklog reads by them)

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl",
           ".ndjson": "jsonl", ".log": "zeek"}

ROW_GROUP = 65536
# Parquet: dictionary pages for the text columns whose values repeat across flows (unique
# values like community_id are wasted work; integer columns such as ports gain nothing under
# zstd and cost a third of the write time), zstd level 1. On the 80k-flow mix: 56 ms
# instead of 88 ms with the ports, VLANs and IP version dictionary-encoded too, 2.41 MB either way
PARQUET_DICTIONARY = ["proto", "src_ip", "dst_ip", "conn_state", "history", "service", "server_name"]
# the times and the packet and byte counters delta-encoded (DELTA_BINARY_PACKED, read by every
# Parquet reader since format 2.0): zstd on their plain 8-byte values was a fifth of the write,
# ~70 ms a column per 3 M flows. Writing 3 M flows: 1.49 -> 1.16 CPU s, 114 -> 88 MB (synscan);
# the mix's 80k flows: 35 ms either way, 2.41 -> 2.16 MB. Columns mostly zero (flags, VLANs)
# stay plain: zstd packs runs of zeros faster than delta encoding does
PARQUET_DELTA = [*(f.name for f in FLOW_SCHEMA if pa.types.is_timestamp(f.type)), *COUNTERS]
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 1}


def parquet_options(schema: pa.Schema, dictionary=()) -> dict:
    """ParquetWriter options for a table of ``schema`` (flow columns and maybe others): the
    ones above for the flow columns it has; ``dictionary``: more columns whose values repeat."""
    names = set(schema.names)
    return {"use_dictionary": [n for n in (*PARQUET_DICTIONARY, *dictionary) if n in names],
            "column_encoding": {n: "DELTA_BINARY_PACKED" for n in PARQUET_DELTA if n in names},
            **PARQUET_OPTIONS}


class FlowTable:
    """One row per connection (docs/schema.md). ``len()``, ``.stats`` (Ledger), ``.schema``."""

    def __init__(self, table: pa.Table, stats: Ledger | None = None, *, spilled=None):
        # spilled: a spill.SpilledRows whose tail is ``table``; the whole table is built on demand
        self._table = table
        self._spilled = spilled
        self.stats = stats if stats is not None else Ledger()

    @property
    def spilled(self) -> bool:
        """Whether rows live in sorted runs on disk (removed with the table or by ``close()``)."""
        return self._spilled is not None

    def close(self) -> None:
        """Delete the spill files now; the table is empty afterwards (``to_arrow()`` first keeps the rows)."""
        if self._spilled is not None:
            self._spilled.close()
            self._spilled = None
            self._table = self._table.schema.empty_table()

    @property
    def schema(self) -> pa.Schema:
        return self._table.schema

    def __len__(self) -> int:
        return self._spilled.num_rows if self._spilled is not None else self._table.num_rows

    def __repr__(self) -> str:
        return f"FlowTable({len(self)} flows, {self.stats.packets} packets read)"

    def to_arrow(self) -> pa.Table:
        """The whole table in memory (a spilled table is merged into memory once, then kept)."""
        if self._spilled is not None:
            self._table = pa.concat_tables(self._spilled.merged(ROW_GROUP)).combine_chunks()
            self._spilled.close()
            self._spilled = None
        return self._table

    def to_pandas(self):
        """DataFrame; addresses are strings, timestamps tz-aware UTC datetimes."""
        return self.to_arrow().to_pandas()

    def _chunks(self):
        """The rows in order as tables of ROW_GROUP rows (one slice when held in memory)."""
        if self._spilled is None:
            yield self._table
            return
        from flowkit._prefetch import prefetch

        # merged (runs read, final segments converted) in a thread while the caller writes
        # the previous group: one group (~26 MB) in flight
        yield from prefetch(self._spilled.merged(ROW_GROUP), depth=1)

    def write(self, path, format: str | None = None, *, local_nets=None) -> Path | None:
        """Write as Parquet, CSV, JSON lines or Zeek conn.log TSV (by extension or ``format``).

        ``path`` may also be a binary stream (``sys.stdout.buffer``); then ``format`` is needed.
        The text formats are flowkit.output's (one ISO 8601 timestamp form). ``local_nets``:
        the networks (CIDR strings) the Zeek format's ``local_orig``/``local_resp`` test; by
        default Zeek's own default, its private address space (flowkit/flows/local.py)."""
        from flowkit import output

        stream = path if hasattr(path, "write") else None
        if stream is None:
            path = Path(os.fspath(path))
        fmt = format or (None if stream is not None else FORMATS.get(path.suffix.lower()))
        if fmt is None:
            raise FlowkitError(f"{path}: cannot tell the output format from the extension; pass format=")
        fmt = {"json": "jsonl", "tsv": "zeek", "conn.log": "zeek"}.get(fmt, fmt)
        if fmt not in ("parquet", *output.TEXT_FORMATS):
            raise FlowkitError(f"{path}: unknown format {fmt!r} (parquet, csv, jsonl, zeek)")
        if fmt == "parquet":  # a path goes to Arrow's own file, buffered (the writer writes page by page)
            if stream is None:
                from flowkit.flows.spill import IO_BUFFER

                with pa.BufferedOutputStream(pa.OSFile(str(path), "wb"), IO_BUFFER) as sink:
                    self._write_parquet(sink)
                return path
            self._write_parquet(output.unseekable_sink(stream))
            stream.flush()
            return None
        with (open(path, "wb") if stream is None else _borrowed(stream)) as sink:
            if fmt == "csv":
                output.write_csv(self._chunks(), self.schema, sink)
            elif fmt == "jsonl":
                output.write_jsonl(self._chunks(), sink)
            else:
                output.write_zeek(self._chunks(), sink, local_nets=local_nets)
        return path if stream is None else None

    def _write_parquet(self, sink) -> None:
        import pyarrow.parquet as pq

        from flowkit.flows._pool import system_pool

        # row groups of 64k flows: the writer buffers one row group, not the whole table
        with system_pool(), pq.ParquetWriter(sink, self.schema, **parquet_options(self.schema)) as writer:
            for chunk in self._chunks():
                writer.write_table(chunk, row_group_size=ROW_GROUP)


class _borrowed:
    """A stream the caller owns: flushed, not closed, at the end of ``with``."""

    def __init__(self, stream):
        self.stream = stream

    def __enter__(self):
        return self.stream

    def __exit__(self, *exc):
        self.stream.flush()
        return False


def empty_table() -> FlowTable:
    return FlowTable(FLOW_SCHEMA.empty_table())
