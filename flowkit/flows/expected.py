"""Announced data connections across the pieces of a run: the expectation table
(protocols/_expect.h) that the flow kernels fill and use, and what Python does with it
when a part of a capture is merged into the next (state.py) or a spilled control connection
is replayed after the data connection it named (stream.py, finished.py).

In one pass, _conn.h's ``expected`` names a TCP connection when it opens, from the first
entry for its responder address and port that has not expired; the entry is used up.
``take_expected`` does the same for connections that opened before an announcement could
be read: per entry in the order announced, the first TCP connection to its address and port
that started after it and before it expired takes it, with only that service (nothing of a
named connection is read) and no server name.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from flowkit.flows import _machine as k
from flowkit.flows.layout import conn, key


def new_expectations() -> np.ndarray:
    """An empty expectation table (protocols/_expect.h): row 0 holds the entry count."""
    return np.zeros((1 + k.EXPECT_CAP, k.EXPECT_WIDTH), np.int64)


def entries(E: np.ndarray) -> np.ndarray:
    """The entries of expectation table E (one row each)."""
    return E[1:1 + int(E[0, 0])]


def joined_expectations(*tables: np.ndarray) -> np.ndarray:
    """One expectation table holding the entries of several (the latest-expiring kept when full)."""
    rows = np.concatenate([entries(E) for E in tables])
    rows = rows[np.argsort(-rows[:, k.X_EXPIRES], kind="stable")[:k.EXPECT_CAP]] if len(rows) > k.EXPECT_CAP else rows
    out = new_expectations()
    out[0, 0] = len(rows)
    out[1:1 + len(rows)] = rows
    return out


def take_expected(E: np.ndarray, tables: list[pa.Table], C: np.ndarray | None = None,
                  K: np.ndarray | None = None) -> list[pa.Table]:
    """The connections of ``tables`` (flow rows) and of the open rows C (keys K) that the
    entries of E name (see the module docstring). Used entries leave E; C changes in place,
    the tables are returned changed."""
    waiting = entries(E)
    if len(waiting) == 0:
        return tables
    from flowkit.flows.rows import _addr

    ports = waiting[:, k.X_PORT]
    cands = [c for j, t in enumerate(tables) if (c := candidates(t, j, ports)) is not None]
    cf = conn(C) if C is not None else None
    tcp = np.flatnonzero(cf["proto"] == 6) if C is not None else []
    if len(tcp):
        kf = key(K)[tcp]
        resp = 1 - cf["orig"][tcp].astype(np.int64)
        hi = np.where(resp == 1, kf["bhi"], kf["ahi"])
        lo = np.where(resp == 1, kf["blo"], kf["alo"])
        port = np.where(resp == 1, kf["bport"], kf["aport"]).astype(np.int64)
        cands.append((cf["ts0"][tcp], np.full(len(tcp), -1), tcp, np.asarray(_addr(hi, lo).to_pylist(), object),
                      port))
    named = assign(E, cands, C)
    return [name_rows(t, named[j]) if j in named else t for j, t in enumerate(tables)]


def candidates(t: pa.Table, j: int, ports: np.ndarray, first: int = 0):
    """The TCP connections of flow table ``t`` (source ``j`` of ``assign``; its rows
    numbered from ``first``) to a port an entry names, as (ts_start, source, row, responder
    address, port) arrays; None when there are none."""
    if not t.num_rows:
        return None
    port = t.column("dst_port").to_numpy()
    tcp = np.flatnonzero((t.column("ip_proto").to_numpy() == 6) & np.isin(port, ports))
    if not len(tcp):
        return None
    return (t.column("ts_start").cast(pa.int64()).to_numpy()[tcp], np.full(len(tcp), j), tcp + first,
            np.asarray(t.column("dst_ip").take(tcp).to_pylist(), object), port[tcp].astype(np.int64))


def assign(E: np.ndarray, cands: list[tuple], C: np.ndarray | None = None) -> dict[int, dict[int, str]]:
    """The candidates (``candidates``, in source and row order; source -1: open rows of C)
    that the entries of E name, as {source: {row: service}}; open rows are named in C. Used
    entries leave E."""
    from flowkit.flows.rows import _addr
    from flowkit.protocols import SERVICES

    waiting = entries(E)
    if not cands or len(waiting) == 0:
        return {}
    ts, where, row, addr, port = (np.concatenate([c[i] for c in cands]) for i in range(5))
    order = np.argsort(ts, kind="stable")
    ts, where, row, addr, port = ts[order], where[order], row[order], addr[order], port[order]
    want = np.asarray(_addr(waiting[:, k.X_HI].view(np.uint64), waiting[:, k.X_LO].view(np.uint64)).to_pylist(), object)
    taken = np.zeros(len(ts), bool)
    used = np.zeros(len(waiting), bool)
    named: dict[int, dict[int, str]] = {}
    for e in np.argsort(waiting[:, k.X_EXPIRES], kind="stable"):
        expires = waiting[e, k.X_EXPIRES]
        hit = np.flatnonzero(~taken & (port == waiting[e, k.X_PORT]) & (addr == want[e]) &
                             (ts >= expires - k.EXPECT_NS) & (ts < expires))
        if not len(hit):
            continue
        i = hit[0]
        taken[i] = used[e] = True
        service = int(waiting[e, k.X_SERVICE])
        if where[i] < 0:
            cf, r = conn(C), row[i]
            cf["svc"][r] = 1 << service
            cf["svcn"][r] = np.iinfo(np.int64).min
            cf["name"][r] = 0
        else:
            named.setdefault(int(where[i]), {})[int(row[i])] = SERVICES[service]
    rest = waiting[~used]
    E[0, 0] = len(rest)
    E[1:1 + len(rest)] = rest
    return named


def name_rows(t: pa.Table, rows: dict[int, str], first: int = 0) -> pa.Table:
    """Flow table ``t`` (its rows numbered from ``first``) with rows ``rows`` given their
    service and no server name."""
    mine = {r - first: value for r, value in rows.items() if first <= r < first + t.num_rows}
    if not mine:
        return t
    service = t.column("service").to_pylist()
    name = t.column("server_name").to_pylist()
    for r, value in mine.items():
        service[r], name[r] = value, ""
    for column, values in (("service", service), ("server_name", name)):
        i = t.schema.get_field_index(column)
        t = t.set_column(i, t.schema.field(i), pa.array(values, t.schema.field(i).type))
    return t
