"""``tunnel_parents``: the flow_ids of the connections a connection's packets came through.

Zeek's conn.log gives an inner connection the set of uids of its encapsulating
connections. Here the link is made per packet in C (flows/_rules.h ``tunnel_links``: the
carrier of an inner row is the row before it of the same record, one tunnel level out),
and each connection keeps up to ``N_PAR`` parent keys with the first and last time a
packet came through each (flows/_conn.h ``tunnel_packet``); connections that carried
packets are marked (``_encloses``). A parent's flow_id depends on its final start and
orientation, which a driver may not know yet when the inner packet passes (the parent's
row can be open in another part of a merge, or on disk under the memory budget), so the
keys are resolved once every row is final: to every marked connection on that key whose
[ts_start, ts_end] meets the [first, last] span (flows/_rows.c ``parents``). The result is
the same whatever the drivers, chunks, merges and spills.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from flowkit.decode import _arrow
from flowkit.decode._arrow import to_numpy
from flowkit.flows import _rows
from flowkit.flows.rows import PARENT_SLOTS
from flowkit.flows.schema import FLOW_SCHEMA

_POSITION = FLOW_SCHEMA.get_field_index("tunnel_parents")
_TYPE = FLOW_SCHEMA.field("tunnel_parents").type
_LINK_COLUMNS = ["_encloses", *PARENT_SLOTS]


def _ints(tab: pa.Table, name: str, dtype) -> np.ndarray:
    return to_numpy(tab.column(name)).view(dtype)


class ParentIndex:
    """The connections that carried tunnelled packets: (key, ts_start, ts_end, flow_id)."""

    def __init__(self):
        self._parts: list[tuple[np.ndarray, ...]] = []
        self._sorted: tuple[np.ndarray, ...] | None = None

    def add(self, tab: pa.Table) -> None:
        """Take the marked rows of ``tab`` (final rows with ``_key`` and ``_encloses``)."""
        if tab.num_rows == 0:
            return
        marked = np.flatnonzero(to_numpy(tab.column("_encloses")))
        if len(marked):
            self._parts.append(tuple(_ints(tab, name, dtype)[marked] for name, dtype in (
                ("_key", np.uint64), ("ts_start", np.int64), ("ts_end", np.int64), ("flow_id", np.uint64))))
            self._sorted = None

    @property
    def empty(self) -> bool:
        """No connection carried another (then every ``tunnel_parents`` list is empty)."""
        return not any(len(part[0]) for part in self._parts)

    def arrays(self) -> tuple[np.ndarray, ...]:
        if self._sorted is None:
            parts = self._parts or [tuple(np.zeros(0, d) for d in (np.uint64, np.int64, np.int64, np.uint64))]
            key, ts0, tsend, fid = (np.concatenate([p[j] for p in parts]) for j in range(4))
            order = np.lexsort((ts0, key))
            self._sorted = tuple(np.ascontiguousarray(a[order]) for a in (key, ts0, tsend, fid))
            self._parts = [self._sorted]
        return self._sorted


def with_parents(tab: pa.Table, index: ParentIndex) -> pa.Table:
    """``tab`` with its parent slots resolved into the ``tunnel_parents`` column (at its
    FLOW_SCHEMA position) and the link columns dropped."""
    n = tab.num_rows
    offsets = np.zeros(n + 1, np.int64)
    key, ts0, tsend, fid = index.arrays()
    values = np.empty(0, np.uint64)
    if len(key):  # else no connection carried another: every list is empty (most captures)
        slots = np.empty((n, len(PARENT_SLOTS)), np.int64)
        for j, name in enumerate(PARENT_SLOTS):
            slots[:, j] = _ints(tab, name, np.int64)
        _rows.parents(slots, key, ts0, tsend, fid, offsets, None)
        values = np.empty(int(offsets[-1]), np.uint64)
        if len(values):
            _rows.parents(slots, key, ts0, tsend, fid, offsets, values)
    # built from buffers: pa.array on numpy would import pandas into the capture -> Parquet path
    lists = pa.Array.from_buffers(_TYPE, n, [None, pa.py_buffer(offsets.astype(np.int32))],
                                  children=[_arrow.array(values, pa.uint64())])
    tab = tab.drop_columns([name for name in _LINK_COLUMNS if name in tab.column_names])
    return tab.add_column(_POSITION, FLOW_SCHEMA.field("tunnel_parents"), lists)
