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
from flowkit.flows.schema import FLOW_SCHEMA
from flowkit.ledger import Ledger

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl",
           ".ndjson": "jsonl", ".log": "zeek"}

# Zeek conn.log fields flowkit can fill, in Zeek's order: (zeek name, zeek type, flowkit column or None)
ZEEK_FIELDS = [
    ("ts", "time", "ts_start"),
    ("uid", "string", "flow_id"),
    ("id.orig_h", "addr", "src_ip"),
    ("id.orig_p", "port", "src_port"),
    ("id.resp_h", "addr", "dst_ip"),
    ("id.resp_p", "port", "dst_port"),
    ("proto", "enum", "proto"),
    ("service", "string", None),
    ("duration", "interval", "duration"),
    ("orig_bytes", "count", "src_payload_bytes"),
    ("resp_bytes", "count", "dst_payload_bytes"),
    ("conn_state", "string", "conn_state"),
    ("local_orig", "bool", None),
    ("local_resp", "bool", None),
    ("missed_bytes", "count", None),
    ("history", "string", "history"),
    ("orig_pkts", "count", "src_pkts"),
    ("orig_ip_bytes", "count", "src_ip_bytes"),
    ("resp_pkts", "count", "dst_pkts"),
    ("resp_ip_bytes", "count", "dst_ip_bytes"),
    ("tunnel_parents", "set[string]", None),
    ("community_id", "string", "community_id"),
]
ROW_GROUP = 65536
# Parquet: dictionary pages only where values repeat across flows (dictionary-encoding
# unique values like timestamps, flow_id or community_id is wasted work), zstd level 1:
# on the 80k-flow mix 42 ms instead of 76 ms to write, 2.3 MB instead of 3.5 MB
PARQUET_DICTIONARY = ["proto", "ip_version", "src_ip", "src_port", "dst_ip", "dst_port", "conn_state", "history",
                      "vlan", "inner_vlan"]
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 1}


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
            self._spilled.spill.close()
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
            from flowkit.flows.spill import rechunk

            self._table = pa.concat_tables(rechunk(self._spilled.merged(), ROW_GROUP)).combine_chunks()
            self._spilled.spill.close()
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
        from flowkit.flows.spill import rechunk

        yield from rechunk(self._spilled.merged(), ROW_GROUP)

    def write(self, path, format: str | None = None) -> Path:
        """Write as Parquet, CSV, JSON lines or Zeek conn.log TSV (by extension or ``format``)."""
        path = Path(os.fspath(path))
        fmt = format or FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise FlowkitError(f"{path}: cannot tell the output format from the extension; pass format=")
        fmt = {"json": "jsonl", "tsv": "zeek", "conn.log": "zeek"}.get(fmt, fmt)
        if fmt == "parquet":
            import pyarrow.parquet as pq

            from flowkit.flows._pool import system_pool

            # row groups of 64k flows: the writer buffers one row group, not the whole table
            dictionary = [name for name in PARQUET_DICTIONARY if name in self.schema.names]
            with system_pool(), pq.ParquetWriter(path, self.schema, use_dictionary=dictionary,
                                                 **PARQUET_OPTIONS) as writer:
                for chunk in self._chunks():
                    writer.write_table(chunk, row_group_size=ROW_GROUP)
        elif fmt == "csv":
            import pyarrow.csv as pcsv

            with pcsv.CSVWriter(path, self.schema) as writer:
                for chunk in self._chunks():
                    writer.write_table(chunk)
        elif fmt == "jsonl":
            self._write_jsonl(path)
        elif fmt == "zeek":
            self._write_zeek(path)
        else:
            raise FlowkitError(f"{path}: unknown format {fmt!r} (parquet, csv, jsonl, zeek)")
        return path

    def _write_jsonl(self, path: Path) -> None:
        with open(path, "w", encoding="utf-8") as f:
            for chunk in self._chunks():
                df = chunk.to_pandas()
                for name, field in zip(chunk.schema.names, chunk.schema):
                    if pa.types.is_timestamp(field.type):
                        df[name] = df[name].map(lambda v: None if v is None or v != v else v.isoformat())
                if len(df):
                    text = df.to_json(orient="records", lines=True, date_format="iso")
                    f.write(text if text.endswith("\n") else text + "\n")

    def _write_zeek(self, path: Path) -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.write("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n")
            f.write("#fields\t" + "\t".join(z for z, _, _ in ZEEK_FIELDS) + "\n")
            f.write("#types\t" + "\t".join(ty for _, ty, _ in ZEEK_FIELDS) + "\n")
            for chunk in self._chunks():
                self._write_zeek_rows(f, chunk)
            f.write("#close\n")

    @staticmethod
    def _write_zeek_rows(f, t: pa.Table) -> None:
        n = t.num_rows
        cols = []
        for zname, ztype, col in ZEEK_FIELDS:
            if col is None:
                cols.append(np.full(n, "-", dtype=object))
            elif col == "ts_start":
                cols.append(np.array([f"{v / 1e9:.6f}" for v in t.column(col).cast(pa.int64()).to_numpy()], dtype=object))
            elif col == "flow_id":
                cols.append(np.array([f"F{v:016x}" for v in t.column(col).to_numpy()], dtype=object))
            elif col == "duration":
                cols.append(np.array([f"{v:.6f}" for v in t.column(col).to_numpy()], dtype=object))
            else:
                vals = t.column(col).to_pylist()
                cols.append(np.array(["-" if v is None or v == "" else str(v) for v in vals], dtype=object))
        for i in range(n):
            f.write("\t".join(c[i] for c in cols) + "\n")


def empty_table() -> FlowTable:
    return FlowTable(FLOW_SCHEMA.empty_table())
