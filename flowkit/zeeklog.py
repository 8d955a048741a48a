"""Zeek conn.log (TSV or JSON, plain or gzip) into a flow table in flowkit's schema.

Zeek's field names map to flowkit's columns as ``flowkit.output.ZEEK_FIELDS`` says (the
same table flowkit writes its own Zeek logs with); what a conn.log does not hold is derived from
``history`` where Zeek's letters say it, else left null. Reference: docs/cli.md ("Saved flows as input").
"""
from __future__ import annotations

import gzip
import io
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flowkit.errors import FlowkitError
from flowkit.flows.schema import FLOW_SCHEMA, NULLABLE_SCHEMA
from flowkit.output import ZEEK_FIELDS
from flowkit.saved import tsv_start

REQUIRED = ("ts", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto")
ADDRS = {z: col for z, kind, col in ZEEK_FIELDS if kind == "addr"}  # id.orig_h -> src_ip, ...
PORTS = {z: col for z, kind, col in ZEEK_FIELDS if kind == "port"}
COUNTS = {z: col for z, kind, col in ZEEK_FIELDS if kind == "count" and col}  # orig_pkts -> src_pkts, ...
EMPTY_CAN_BE = ("history", "conn_state")  # text fields read whose empty value Zeek writes as #empty_field
_NUMBER = r"^-?[0-9]+(\.[0-9]*)?$"
LINE = "\0line"  # row -> line in the file, beside the fields


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise FlowkitError(f"{path}: damaged gzip data ({exc})") from exc
    return data


def read_conn_log(path) -> tuple[pa.Table, dict]:
    """(flows in FLOW_SCHEMA, {proto: rows left out}) from a conn.log. Every row is kept, as
    flowkit's own flow tables hold every IP protocol (the dict is empty; it stays for callers)."""
    path = str(path)
    data = _read_bytes(path)
    if data.lstrip()[:1] == b"{":
        cols = _json_columns(path, data)
    else:
        cols = _tsv_columns(path, data)
    return _to_flows(path, cols)


# ---------------------------------------------------------------- the two encodings


def _unescape(text: str) -> str:
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), text)


def _tsv_columns(path: str, data: bytes) -> dict[str, pa.ChunkedArray]:
    """Every data block under its own ``#fields`` header (rotated logs concatenated keep theirs)."""
    import pyarrow.csv as csv

    first = tsv_start(data)
    if first < 0:
        raise FlowkitError(f"{path}: line 1: not a Zeek log: no '#separator' header "
                           "(a zeek-cut extract without Zeek's headers cannot be read)")
    sep, unset, empty, fields = "\t", "-", "(empty)", None
    parts: dict[str, list] = {}
    headers = _header_lines(data, first)
    for i, (h_start, h_end) in enumerate(headers):
        line = data[h_start:h_end].decode("utf-8", "replace").rstrip("\n")
        if line.startswith("#separator "):
            sep = _unescape(line.split(" ", 1)[1])
            continue
        key, _, value = line.partition(sep)
        if key == "#unset_field":
            unset = value
        elif key == "#empty_field":
            empty = value
        elif key == "#fields":
            fields = value.split(sep)
        start = h_end
        stop = headers[i + 1][0] if i + 1 < len(headers) else len(data)
        block = data[start:stop]
        if not block.strip():
            continue
        if fields is None:
            line = data.count(b"\n", 0, start) + 1
            raise FlowkitError(f"{path}: line {line}: data before any '#fields' header")
        try:
            table = csv.read_csv(
                io.BytesIO(block),
                read_options=csv.ReadOptions(column_names=fields),
                parse_options=csv.ParseOptions(delimiter=sep, quote_char=False, escape_char=False, double_quote=False),
                convert_options=csv.ConvertOptions(column_types={f: pa.string() for f in fields},
                                                   null_values=[unset], strings_can_be_null=True),
            )
        except pa.ArrowInvalid as exc:
            line = data.count(b"\n", 0, start) + 1
            raise FlowkitError(f"{path}: lines from {line}: not a Zeek log row ({exc})") from exc
        line0 = data.count(b"\n", 0, start) + 1
        for f in fields:
            col = table.column(f)
            if empty is not None and f in EMPTY_CAN_BE:
                col = pc.if_else(pc.equal(col, empty), "", col)
            parts.setdefault(f, []).append((line0, col))
    if fields is None:
        raise FlowkitError(f"{path}: not a Zeek log: no '#fields' header")
    return _join(parts)


def _header_lines(data: bytes, pos: int) -> list[tuple[int, int]]:
    """(start, end) of every line starting with '#' from ``pos`` (a line start) on; bytes.find, not a regex
    over every line, since the data lines are nearly all of the file."""
    out = []
    while pos >= 0 and pos < len(data):
        if data.startswith(b"#", pos):
            end = data.find(b"\n", pos)
            end = len(data) if end < 0 else end + 1
            out.append((pos, end))
            pos = end
        else:
            nl = data.find(b"\n#", pos)
            pos = -1 if nl < 0 else nl + 1
    return out


def _json_columns(path: str, data: bytes) -> dict[str, pa.ChunkedArray]:
    """Zeek's JSON logs: one object per line, dotted names (``id.orig_h``), unset fields left out."""
    import pyarrow.json as pj

    try:
        table = pj.read_json(io.BytesIO(data))
    except pa.ArrowInvalid as exc:
        raise FlowkitError(f"{path}: not a Zeek JSON log ({exc})") from exc
    table = table.flatten() if "id" in table.column_names else table  # {"id": {"orig_h": ...}} as some shippers write
    cols = {name: table.column(name) for name in table.column_names}
    cols[LINE] = np.arange(1, table.num_rows + 1)  # one object per line
    return cols


def _join(parts: dict) -> dict:
    """Blocks with different ``#fields`` (logs concatenated): a field a block lacks is null there.
    ``LINE`` holds each row's line number in the file, for messages."""
    size = {line0: len(c) for pieces in parts.values() for line0, c in pieces}
    starts = sorted(size)
    out = {}
    for name, pieces in parts.items():
        have = dict(pieces)
        chunks = []
        for s in starts:
            chunks += have[s].chunks if s in have else [pa.nulls(size[s], pa.string())]
        out[name] = pa.chunked_array(chunks, pa.string())
    out[LINE] = np.concatenate([s + np.arange(size[s]) for s in starts]) if starts else np.zeros(0, np.int64)
    return out


# ---------------------------------------------------------------- to flowkit's columns


def _column(cols: dict, name: str, n: int) -> pa.ChunkedArray:
    if name in cols:
        c = cols[name]
        return c if isinstance(c, pa.ChunkedArray) else pa.chunked_array([c])
    return pa.chunked_array([pa.nulls(n)], pa.null())


def _numbers(path: str, cols: dict, name: str, n: int, kind) -> pa.ChunkedArray:
    """A numeric Zeek field as ``kind`` (strings are checked first, so a bad value is named)."""
    c = _column(cols, name, n)
    if pa.types.is_string(c.type):
        ok = pc.or_kleene(pc.match_substring_regex(c, _NUMBER), pc.is_null(c))
        if len(c) and not pc.all(ok).as_py():
            i = pc.index(ok, False).as_py()
            raise FlowkitError(f"{path}: line {cols[LINE][i]}: {name} {c[i].as_py()!r} is not a number")
        c = pc.cast(c, pa.float64() if kind in ("float", "time") else pa.int64())
    if pa.types.is_null(c.type):
        c = c.cast(pa.float64() if kind in ("float", "time") else pa.int64())
    return c


def _ts_ns(path: str, cols: dict, n: int) -> np.ndarray:
    """Zeek ``ts``: epoch seconds (TSV, JSON::TS_EPOCH), integer milliseconds (JSON::TS_MILLIS)
    or ISO 8601 text (JSON::TS_ISO8601), as int64 nanoseconds."""
    c = cols["ts"]
    if pa.types.is_string(c.type) and n and not pc.all(pc.match_substring_regex(c, _NUMBER)).as_py():
        try:
            return pc.cast(c, pa.timestamp("ns", "UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:
            ok = pc.match_substring_regex(c, _NUMBER)
            i = pc.index(ok, False).as_py()
            raise FlowkitError(f"{path}: line {cols[LINE][i]}: ts {c[i].as_py()!r} is not a Zeek time") from None
    if pa.types.is_integer(c.type):
        v = c.to_numpy().astype(np.int64)
        return np.where(np.abs(v) >= 10**11, v * 1_000_000, v * 1_000_000_000)  # milliseconds or seconds
    v = _numbers(path, cols, "ts", n, "time").to_numpy()
    return np.round(v * 1e6).astype(np.int64) * 1000  # Zeek writes microseconds


def _strings(cols: dict, name: str, n: int, default: str | None) -> pa.Array:
    c = _column(cols, name, n)
    c = c.cast(pa.string()) if not pa.types.is_string(c.type) else c
    return pc.fill_null(c, default).combine_chunks() if default is not None else c.combine_chunks()


def _to_flows(path: str, cols: dict) -> tuple[pa.Table, dict]:
    missing = [f for f in REQUIRED if f not in cols]
    if missing:
        raise FlowkitError(f"{path}: not a conn.log with connections: no {', '.join(missing)} field "
                           "(flowkit needs ts, the id.* five-tuple and proto)")
    n = len(cols["ts"])
    proto = pc.utf8_lower(_strings(cols, "proto", n, ""))
    left_out: dict = {}

    ts = _ts_ns(path, cols, n)
    duration = np.nan_to_num(_numbers(path, cols, "duration", n, "float").to_numpy(zero_copy_only=False), nan=0.0)
    out = {
        "flow_id": _flow_ids(cols, n),
        "ts_start": pa.array(ts, pa.int64()).cast(pa.timestamp("ns", "UTC")),
        "ts_end": pa.array(ts + np.round(duration * 1e9).astype(np.int64), pa.int64()).cast(pa.timestamp("ns", "UTC")),
        "duration": pa.array(duration, pa.float64()),
        "proto": proto,
    }
    for zeek, name in ADDRS.items():
        out[name] = _strings(cols, zeek, n, "")
    out["ip_version"] = pc.if_else(pc.match_substring(out["src_ip"], ":"), 6, 4).cast(pa.uint8())
    for zeek, name in PORTS.items():
        out[name] = _numbers(path, cols, zeek, n, "int").cast(pa.uint16())
    for zeek, name in COUNTS.items():  # unset (Zeek leaves the byte counts unset at duration 0) reads as 0
        if name != "ip_proto":
            out[name] = pc.fill_null(_numbers(path, cols, zeek, n, "int"), 0).cast(pa.uint64())
    out["ip_proto"], out["proto"] = _protocols(path, cols, n, proto, out["ip_version"])
    history = _strings(cols, "history", n, "")
    out["conn_state"] = _strings(cols, "conn_state", n, None)
    for f in ("local_orig", "local_resp"):  # TSV T/F, JSON true/false; unset (or absent) stays null
        flag = _strings(cols, f, n, None)
        out[f] = pc.if_else(pc.is_in(flag, pa.array(["T", "true"])), True,
                            pc.if_else(pc.is_in(flag, pa.array(["F", "false"])), False, pa.scalar(None, pa.bool_())))
    out["history"] = history
    # TCP flag counts per direction cannot be told from history (its letters say "at least once")
    for f in FLOW_SCHEMA.names:
        if f.startswith(("src_", "dst_")) and f not in out and f not in ("src_payload_bytes", "dst_payload_bytes"):
            out[f] = pa.nulls(n, pa.uint32())
    is_tcp = pc.equal(proto, "tcp")
    first_syn = pc.and_(is_tcp, pc.starts_with(history, "S"))
    # the originator's first packet was its SYN: ts is the SYN's time; the others' times are not in a conn.log
    out["syn_ts"] = pc.if_else(first_syn, out["ts_start"], pa.scalar(None, pa.timestamp("ns", "UTC")))
    for f in ("syn_last_ts", "synack_ts", "ack_ts"):
        out[f] = pa.nulls(n, pa.timestamp("ns", "UTC"))
    # Zeek repeats S only for a SYN with a new sequence number: retransmissions of one SYN count once
    out["syn_count"] = pc.if_else(is_tcp, pc.count_substring(history, "S"), 0).cast(pa.uint32())
    out["community_id"] = (_strings(cols, "community_id", n, None) if "community_id" in cols
                           else _community_ids(out, n))
    for f in ("vlan", "inner_vlan"):
        out[f] = pc.fill_null(_numbers(path, cols, f, n, "int"), 0).cast(pa.uint16())
    # Zeek's service set as flowkit writes it ('-' unset -> ""); a conn.log has no server name
    out["service"] = pc.replace_substring_regex(_strings(cols, "service", n, ""), "^-$", "")
    out["server_name"] = pa.array([""] * n, pa.string())
    for f in ("icmp_errors", "icmp_error_type", "icmp_error_code", "icmp_error_src"):  # not in a conn.log
        out[f] = pa.nulls(n, FLOW_SCHEMA.field(f).type)
    out["tunnel_parents"] = _tunnel_parents(cols, n)
    table = pa.table({f.name: out[f.name] for f in FLOW_SCHEMA}, schema=NULLABLE_SCHEMA)
    return table, left_out


def _protocols(path: str, cols: dict, n: int, proto: pa.Array, version: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(ip_proto, proto) as flowkit writes them: Zeek's ``ip_proto`` field, else the number its
    ``proto`` implies (icmp: 1 or 58 by IP version); ``unknown_transport`` takes the protocol's name
    when the number is known (older Zeek logs lack ``ip_proto``: the name stays)."""
    from flowkit.flows.schema import proto_names, proto_numbers

    names = proto.to_numpy(zero_copy_only=False).astype(object)
    implied = proto_numbers(names, version.to_numpy(zero_copy_only=False))
    given = _numbers(path, cols, "ip_proto", n, "int").to_numpy(zero_copy_only=False)
    given = np.where(np.isnan(given.astype(np.float64)), -1, given).astype(np.int64) if len(given) else implied
    number = np.where(given >= 0, given, implied)
    table = np.array(proto_names(), dtype=object)
    named = np.where((names == "unknown_transport") & (number >= 0), table[np.clip(number, 0, 255)], names)
    return pa.array(number, pa.uint8(), mask=number < 0), pa.array(named.tolist(), pa.string())


def _flow_ids(cols: dict, n: int) -> pa.Array:
    """flowkit's own Zeek output writes ``uid`` as ``F`` + 16 hex digits of flow_id: read it back;
    Zeek's random uids map to nothing."""
    if "uid" not in cols:
        return pa.nulls(n, pa.uint64())
    return _uids(_strings(cols, "uid", n, ""))


def _uids(uid: pa.Array) -> pa.Array:
    """flowkit uids (``F`` + 16 hex digits) as flow_ids; null for any other text."""
    n = len(uid)
    ours = pc.match_substring_regex(uid, r"^F[0-9a-f]{16}$")
    if not n or not pc.any(ours).as_py():
        return pa.nulls(n, pa.uint64())
    # the 16 hex digits as nibbles, whole column at once
    text = pc.if_else(ours, uid, "F" + "0" * 16).to_numpy(zero_copy_only=False).astype("S17")
    digits = np.frombuffer(text.tobytes(), np.uint8).reshape(n, 17)[:, 1:]
    nibbles = np.where(digits >= ord("a"), digits - ord("a") + 10, digits - ord("0")).astype(np.uint64)
    value = np.zeros(n, np.uint64)
    for k in range(16):
        value = (value << np.uint64(4)) | nibbles[:, k]
    return pa.array(value, pa.uint64(), mask=~ours.to_numpy(zero_copy_only=False))


def _tunnel_parents(cols: dict, n: int) -> pa.Array:
    """The ``tunnel_parents`` set: flowkit uids back to flow_ids; empty when unset; null for a row
    naming a uid of another tool (Zeek's random uids map to no flow_id)."""
    kind = pa.list_(pa.uint64())
    if "tunnel_parents" not in cols:
        return pa.array([[]] * n, kind)
    text = _strings(cols, "tunnel_parents", n, "-")
    unset = pc.or_(pc.equal(text, "-"), pc.equal(text, "(empty)"))
    parts = pc.split_pattern(pc.if_else(unset, "", text), ",")
    flat = pc.list_flatten(parts)
    flat_ids = _uids(pc.if_else(pc.equal(flat, ""), "F" + "0" * 16, flat))  # "" only where unset: no element
    lengths = np.where(unset.to_numpy(zero_copy_only=False), 0, pc.list_value_length(parts).to_numpy())
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    keep = ~pc.equal(flat, "").to_numpy(zero_copy_only=False)
    values = flat_ids.filter(pa.array(keep))
    bad = np.zeros(n, bool)
    rows = np.repeat(np.arange(n), lengths)
    bad[rows[~values.is_valid().to_numpy(zero_copy_only=False)]] = True
    lists = pa.ListArray.from_arrays(pa.array(offsets), values.fill_null(0))
    return pc.if_else(pa.array(bad), pa.scalar(None, kind), lists)


def _community_ids(out: dict, n: int) -> pa.Array:
    """Community ID v1 from the five-tuple, as flowkit computes it for captures."""
    from flowkit.decode.addresses import address_matrix, from_strings
    from flowkit.flows.community import oriented_community_ids

    if n == 0:
        return pa.array([], pa.string())
    try:
        a = address_matrix(from_strings(out["src_ip"])).view(">u8").astype(np.uint64)
        b = address_matrix(from_strings(out["dst_ip"])).view(">u8").astype(np.uint64)
    except ValueError:
        return pa.nulls(n, pa.string())  # an address that is not one: no ID rather than a wrong one
    ap = out["src_port"].to_numpy(zero_copy_only=False).astype(np.int64)
    bp = out["dst_port"].to_numpy(zero_copy_only=False).astype(np.int64)
    proto = out["ip_proto"].fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    version = out["ip_version"].to_numpy(zero_copy_only=False)
    return oriented_community_ids(a[:, 0], a[:, 1], b[:, 0], b[:, 1], ap, bp, proto, version)
