"""Atomic file writes: a reader (or a re-run after a crash) sees the old file or the new one.

Everything is written to a hidden temporary name in the destination directory and
moved into place with ``os.replace`` (atomic within one file system). Hidden names
start with "." so ``pyarrow.dataset`` never picks up a half-written Parquet file.
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager

import pyarrow as pa
import pyarrow.parquet as pq

TMP_PREFIX = ".tmp-"


@contextmanager
def atomic_path(dest: str):
    """Yield a temporary path beside ``dest``; on success move it onto ``dest``."""
    directory = os.path.dirname(os.path.abspath(dest))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix="-" + os.path.basename(dest), dir=directory)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as f:  # data on disk before the rename makes it visible
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(dest: str, obj) -> None:
    with atomic_path(dest) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, sort_keys=False)
            f.write("\n")


def write_parquet(dest: str, table: pa.Table, dictionary=()) -> None:
    """``table`` written as a flow table is (flows/table.py's options); ``dictionary``: more
    columns with repeating values."""
    from flowkit.flows.table import parquet_options

    with atomic_path(dest) as tmp:
        pq.write_table(table, tmp, **parquet_options(table.schema, dictionary))


def remove_stale_temps(root: str) -> int:
    """Delete temporary files an interrupted run left under ``root``; returns how many."""
    removed = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.startswith(TMP_PREFIX):
                os.unlink(os.path.join(dirpath, name))
                removed += 1
    return removed
