"""The flow dataset on disk: Hive-partitioned Parquet under ``OUT/flows/date=YYYY-MM-DD/``.

Each capture (or each stitched sequence of rotated captures) owns one file per date
it has flows on, named after its source path, so a re-run replaces exactly its own
files. ``date`` is the UTC date of ``ts_start``; it lives in the directory name, not
in the files, and comes back as a string column when the dataset is read.
"""
from __future__ import annotations

import glob
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from flowkit.batch.atomic import write_parquet
from flowkit.errors import FlowkitError
from flowkit.flows.schema import FLOW_SCHEMA

FLOWS_DIR = "flows"
SOURCE = pa.field("source", pa.string())
DATE = pa.field("date", pa.string())
# What a file holds (flow columns plus where each flow came from) and what a read returns.
FILE_SCHEMA = FLOW_SCHEMA.append(SOURCE)
DATASET_SCHEMA = FILE_SCHEMA.append(DATE)
PARTITIONING = ds.partitioning(pa.schema([DATE]), flavor="hive")


def with_source(flows: pa.Table, source) -> pa.Table:
    """Flow table in the file schema, with ``source`` (one string, or one per row)."""
    flows = flows.select(FLOW_SCHEMA.names).cast(FLOW_SCHEMA)
    if isinstance(source, str):
        column = pa.array(np.full(flows.num_rows, source, dtype=object), pa.string())
    else:
        column = pa.array(source, pa.string())
    return flows.append_column(SOURCE, column)


def write_flows(out: str, key: str, flows: pa.Table) -> list[str]:
    """Write ``flows`` (file schema) as ``OUT/flows/date=D/KEY.parquet``, one file per date.

    Returns the written paths relative to ``out``. Files of ``key`` on dates no longer
    present (the capture changed since the last run) are removed afterwards.
    """
    written = []
    if flows.num_rows:
        dates = pc.strftime(flows["ts_start"], format="%Y-%m-%d")
        for date in sorted(pc.unique(dates).to_pylist()):
            rel = os.path.join(FLOWS_DIR, f"date={date}", f"{key}.parquet")
            write_parquet(os.path.join(out, rel), flows.filter(pc.equal(dates, date)), dictionary=[SOURCE.name])
            written.append(rel)
    remove_outputs(out, key, keep=written)
    return written


def remove_outputs(out: str, key: str, keep=()) -> None:
    keep = {os.path.normpath(os.path.join(out, k)) for k in keep}
    pattern = os.path.join(glob.escape(out), FLOWS_DIR, "date=*", glob.escape(key) + ".parquet")
    for path in glob.glob(pattern):
        if os.path.normpath(path) not in keep:
            os.unlink(path)


def _flows_dir(path) -> str:
    path = os.fspath(path)
    sub = os.path.join(path, FLOWS_DIR)
    if os.path.isdir(sub):
        return sub
    if os.path.isdir(path):
        return path
    raise FlowkitError(f"{path}: not a flowkit dataset directory (no {FLOWS_DIR}/ inside)")


def open_dataset(path) -> ds.Dataset:
    """The dataset as a ``pyarrow.dataset.Dataset`` (lazy; for scanners and other engines)."""
    return ds.dataset(_flows_dir(path), format="parquet", partitioning=PARTITIONING, schema=DATASET_SCHEMA)


def to_expression(filters):
    """Accept a pyarrow expression or pandas/pyarrow-style DNF tuples ``[("col", "op", value)]``."""
    if filters is None or isinstance(filters, ds.Expression):
        return filters
    return pq.filters_to_expression(filters)


def read_dataset(path, filters=None, columns=None) -> pa.Table:
    """Read a batch output (``OUT`` or ``OUT/flows``) into one Arrow table.

    ``filters`` is pushed down to the scan: partitions whose ``date`` cannot match are
    never opened, and row groups are skipped by their Parquet statistics. ``columns``
    selects columns (default: every flow column, ``source`` and ``date``).
    """
    dataset = open_dataset(path)
    if columns is not None:
        columns = list(columns)
        unknown = [c for c in columns if c not in DATASET_SCHEMA.names]
        if unknown:
            raise FlowkitError(f"{path}: no column {', '.join(unknown)} in the flow dataset")
    try:
        return dataset.to_table(columns=columns, filter=to_expression(filters))
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        raise FlowkitError(f"{path}: bad filter {filters!r}: {exc}") from exc
