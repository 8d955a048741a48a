"""Machine-readable flow tables and analysis results: CSV, JSON lines, Zeek conn.log TSV, Parquet.

Every writer takes the rows as a sequence of Arrow tables (or a DataFrame) and a binary
stream, so a file and standard output get the same bytes, chunk after chunk (a reader at
the other end of a pipe sees rows before the last one is written; ``| head`` stops it).

Timestamps in the text formats have one form, ISO 8601 UTC with all nine fractional
digits: ``2026-11-24T21:08:24.405644123Z`` (the resolution of the flow table), except in
the Zeek format, whose ``time`` fields are epoch seconds with six decimals as Zeek writes them.
"""
from __future__ import annotations

import io
import json
import time
from collections.abc import Iterable

import numpy as np
import pyarrow as pa

TEXT_FORMATS = ("csv", "jsonl", "zeek")

# Zeek conn.log fields flowkit can fill, in Zeek's order: (zeek name, zeek type, flowkit column or None)
ZEEK_FIELDS = [
    ("ts", "time", "ts_start"),
    ("uid", "string", "flow_id"),
    ("id.orig_h", "addr", "src_ip"),
    ("id.orig_p", "port", "src_port"),
    ("id.resp_h", "addr", "dst_ip"),
    ("id.resp_p", "port", "dst_port"),
    ("proto", "enum", "proto"),
    ("service", "string", "service"),
    ("duration", "interval", "duration"),
    ("orig_bytes", "count", "src_payload_bytes"),
    ("resp_bytes", "count", "dst_payload_bytes"),
    ("conn_state", "string", "conn_state"),
    ("local_orig", "bool", "local_orig"),  # local networks: flowkit/flows/local.py
    ("local_resp", "bool", "local_resp"),
    ("missed_bytes", "count", "missed_bytes"),
    ("history", "string", "history"),
    ("orig_pkts", "count", "src_pkts"),
    ("orig_ip_bytes", "count", "src_ip_bytes"),
    ("resp_pkts", "count", "dst_pkts"),
    ("resp_ip_bytes", "count", "dst_ip_bytes"),
    ("tunnel_parents", "set[string]", "tunnel_parents"),
    ("ip_proto", "count", "ip_proto"),
    ("community_id", "string", "community_id"),
]
# written only when the connection lasted (Zeek's set_conn: duration > 0)
ZEEK_IF_DURATION = ("duration", "orig_bytes", "resp_bytes")


# ----------------------------------------------------------------------------- timestamps
def iso_ns(values) -> pa.Array:
    """ISO 8601 UTC strings with nine fractional digits (null where missing) of timestamps:
    an Arrow timestamp array of any unit, or pandas/numpy datetimes.

    Why not one strftime per value: the whole seconds of a capture repeat, so only the
    distinct ones are formatted; the nanoseconds are joined on by Arrow."""
    import pyarrow.compute as pc

    if not isinstance(values, (pa.Array, pa.ChunkedArray)):
        values = pa.array(values)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    ns = values.cast(pa.timestamp("ns", tz=values.type.tz)).cast(pa.int64())
    valid = ns.is_valid()
    whole = np.floor_divide(ns.fill_null(0).to_numpy(), 1_000_000_000)
    seconds, which = np.unique(whole, return_inverse=True)
    day_time = pa.array(np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s")).take(pa.array(which))
    fraction = pc.utf8_lpad(pc.cast(pa.array(ns.fill_null(0).to_numpy() - whole * 1_000_000_000), pa.string()),
                            9, "0")
    text = pc.binary_join_element_wise(day_time, ".", fraction, "Z", "")
    return pc.if_else(valid, text, pa.scalar(None, pa.string()))


def _text_timestamps(t: pa.Table) -> pa.Table:
    """``t`` with its timestamp columns as ISO strings."""
    for i, field in enumerate(t.schema):
        if pa.types.is_timestamp(field.type):
            t = t.set_column(i, field.name, iso_ns(t.column(i)))
    return t


def _list_texts(col, sep: str) -> pa.Array:
    """Each list of ``col`` as its values' text joined by ``sep`` (null where missing)."""
    import pyarrow.compute as pc

    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    return pc.binary_join(col.cast(pa.list_(pa.string())), sep)


def _text_lists(t: pa.Table) -> pa.Table:
    """``t`` with its list columns (tunnel_parents) as text: values separated by spaces (CSV has no lists)."""
    for i, field in enumerate(t.schema):
        if pa.types.is_list(field.type):
            t = t.set_column(i, field.name, _list_texts(t.column(i), " "))
    return t


# ----------------------------------------------------------------------------- writers
def write_csv(chunks: Iterable[pa.Table], schema: pa.Schema, stream) -> None:
    """CSV with a header line; strings quoted, missing values empty."""
    import pyarrow.csv as pcsv

    header = True
    for t in chunks:
        buf = pa.BufferOutputStream()
        pcsv.write_csv(_text_lists(_text_timestamps(t)), buf, write_options=pcsv.WriteOptions(include_header=header))
        stream.write(buf.getvalue().to_pybytes())
        header = False
    if header:  # no rows: the header alone
        buf = pa.BufferOutputStream()
        pcsv.write_csv(_text_lists(_text_timestamps(schema.empty_table())), buf)
        stream.write(buf.getvalue().to_pybytes())


def write_jsonl(chunks: Iterable[pa.Table], stream) -> None:
    """One JSON object per row, keys in column order; missing values and NaN are null."""
    for t in chunks:
        if t.num_rows:
            stream.write(json_lines(t))


def write_frame_jsonl(df, stream) -> None:
    """The JSON lines of a DataFrame (an analysis result), as ``write_jsonl`` writes tables."""
    if len(df) == 0:
        return
    import pandas as pd

    df = df.copy()
    for name in df.columns:  # categories as their values; objects (mixed None/str) as strings
        if isinstance(df[name].dtype, pd.CategoricalDtype):
            df[name] = df[name].astype(object)
    stream.write(json_lines(pa.Table.from_pandas(df, preserve_index=False)))


def json_lines(t: pa.Table) -> bytes:
    """The rows of ``t`` as JSON lines, built column by column by Arrow (no per-row Python)."""
    import pyarrow.compute as pc

    parts = []
    for i, (name, col) in enumerate(zip(t.column_names, t.columns)):
        parts.append(("{" if i == 0 else ",") + json.dumps(name) + ":")
        parts.append(_json_values(col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col))
    parts.append("}\n")
    rows = pc.binary_join_element_wise(*parts, "")
    rows = rows.combine_chunks() if isinstance(rows, pa.ChunkedArray) else rows
    # no value is null, so the rows are the bytes between the first and last offsets
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32)[rows.offset:rows.offset + len(rows) + 1]
    return rows.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0])).to_pybytes()


def _json_values(col: pa.Array) -> pa.Array:
    """Each value of ``col`` as JSON text (``null`` where missing)."""
    import pyarrow.compute as pc

    kind = col.type
    if pa.types.is_dictionary(kind):
        col, kind = col.cast(kind.value_type), kind.value_type
    if pa.types.is_timestamp(kind):
        return pc.fill_null(pc.binary_join_element_wise('"', iso_ns(col), '"', ""), "null")
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if pc.any(pc.match_substring_regex(col, "[\\x00-\\x1f]")).as_py():
            return pa.array([json.dumps(v) if v is not None else "null" for v in col.to_pylist()], pa.string())
        text = pc.replace_substring(pc.replace_substring(col, "\\", "\\\\"), '"', '\\"')
        return pc.fill_null(pc.binary_join_element_wise('"', text.cast(pa.string()), '"', ""), "null")
    if pa.types.is_floating(kind):
        finite = pc.is_finite(col)
        return pc.fill_null(pc.if_else(finite, pc.cast(col, pa.string()), pa.scalar(None, pa.string())), "null")
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return pc.fill_null(pc.cast(col, pa.string()), "null")
    if pa.types.is_null(kind):
        return pa.array(["null"] * len(col), pa.string())
    if pa.types.is_list(kind) and pa.types.is_integer(kind.value_type):
        return pc.fill_null(pc.binary_join_element_wise("[", _list_texts(col, ","), "]", ""), "null")
    return pa.array([json.dumps(v, default=str) for v in col.to_pylist()], pa.string())


def _zeek_time(when: float) -> str:
    return time.strftime("%Y-%m-%d-%H-%M-%S", time.localtime(when))


def write_zeek(chunks: Iterable[pa.Table], stream, local_nets=None) -> None:
    """Zeek's ASCII conn.log: the header Zeek writes (with ``#open``), the rows, ``#close``.

    ``local_nets``: CIDR strings for ``local_orig``/``local_resp``; by default the table's own
    columns, or Zeek's default networks for a table without them."""
    from flowkit.flows.local import LocalNets

    local = None if local_nets is None else LocalNets(local_nets)
    stream.write(("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n"
                  f"#open\t{_zeek_time(time.time())}\n"
                  "#fields\t" + "\t".join(z for z, _, _ in ZEEK_FIELDS) + "\n"
                  "#types\t" + "\t".join(ty for _, ty, _ in ZEEK_FIELDS) + "\n").encode())
    for t in chunks:
        if t.num_rows:
            stream.write(_zeek_rows(t, local).encode())
    stream.write(f"#close\t{_zeek_time(time.time())}\n".encode())


def _zeek_rows(t: pa.Table, local) -> str:
    from flowkit.flows.schema import zeek_proto

    n = t.num_rows
    lasted = t.column("duration").to_numpy(zero_copy_only=False) > 0
    cols = []
    for zname, ztype, col in ZEEK_FIELDS:
        if ztype == "bool":  # local_orig / local_resp
            cols.append(_local_flags(t, col, local))
        elif col is None or col not in t.column_names:  # a saved table from before the column existed
            cols.append(["-"] * n)
        elif zname == "proto":
            cols.append([zeek_proto(p) for p in t.column(col).to_pylist()])
        elif col == "ts_start":
            ns = t.column(col).cast(pa.int64()).to_numpy()
            cols.append([f"{v / 1e9:.6f}" for v in ns])
        elif col == "flow_id":  # null for flows read from another tool's log: no uid to give
            cols.append(["-" if v is None else f"F{v:016x}" for v in t.column(col).to_pylist()])
        elif col == "tunnel_parents":  # a set of uids; unset ("-") for a connection outside tunnels
            cols.append([",".join(f"F{v:016x}" for v in vs) if vs else "-" for vs in t.column(col).to_pylist()])
        elif col == "duration":
            cols.append([f"{v:.6f}" for v in t.column(col).to_numpy()])
        else:
            cols.append(["-" if v is None or v == "" else str(v) for v in t.column(col).to_pylist()])
        if zname in ZEEK_IF_DURATION:
            cols[-1] = np.where(lasted, cols[-1], "-").tolist()
    return "".join("\t".join(row) + "\n" for row in zip(*cols))


def _local_flags(t: pa.Table, col: str, local) -> list[str]:
    """Zeek's T/F of ``local_orig``/``local_resp``: the table's column unless other networks are
    given (``local``) or it has none (a table saved before the column existed: Zeek's default)."""
    from flowkit.decode.addresses import address_matrix, from_strings
    from flowkit.flows.local import DEFAULT

    if local is None and col in t.column_names:
        return ["-" if v is None else "T" if v else "F" for v in t.column(col).to_pylist()]
    addr = "src_ip" if col == "local_orig" else "dst_ip"
    inside = (local or DEFAULT).contains(address_matrix(from_strings(t.column(addr).combine_chunks())))
    return np.where(inside, "T", "F").tolist()


class _Counted(io.RawIOBase):
    """A write-only stream that knows its position, so Parquet can be written to a pipe."""

    def __init__(self, stream):
        self.stream, self.position = stream, 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.stream.write(data)
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        self.stream.flush()


def unseekable_sink(stream):
    """``stream`` (e.g. standard output) as a sink the Parquet writer accepts."""
    return pa.PythonFile(_Counted(stream), mode="w")
