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
    from flowkit.protocols import SERVICES

    # candidates: (ts_start, where: table index or -1 for open rows, row)
    cands = []
    for j, t in enumerate(tables):
        if t.num_rows:
            tcp = np.flatnonzero(t.column("ip_proto").to_numpy() == 6)
            if len(tcp):
                cands.append((t.column("ts_start").cast(pa.int64()).to_numpy()[tcp], np.full(len(tcp), j),
                              tcp, np.asarray(t.column("dst_ip").take(tcp).to_pylist(), object),
                              t.column("dst_port").to_numpy()[tcp].astype(np.int64)))
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
    if not cands:
        return tables
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
            r = row[i]
            cf["svc"][r] = 1 << service
            cf["svcn"][r] = np.iinfo(np.int64).min
            cf["name"][r] = 0
        else:
            named.setdefault(int(where[i]), {})[int(row[i])] = SERVICES[service]
    rest = waiting[~used]
    E[0, 0] = len(rest)
    E[1:1 + len(rest)] = rest
    out = list(tables)
    for j, rows in named.items():
        t = out[j]
        service = t.column("service").to_pylist()
        name = t.column("server_name").to_pylist()
        for r, value in rows.items():
            service[r], name[r] = value, ""
        t = t.set_column(t.schema.get_field_index("service"), "service", pa.array(service, pa.string()))
        out[j] = t.set_column(t.schema.get_field_index("server_name"), "server_name", pa.array(name, pa.string()))
    return out


