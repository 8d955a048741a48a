"""Terminal output for the ``flowkit`` command: rich tables, JSON Lines, the ledger.

Nothing here computes anything about packets or flows; it only formats DataFrames and
ledgers the library returns.
"""
from __future__ import annotations

import math
import sys
from collections.abc import Sequence

import numpy as np
from rich.console import Console
from rich.table import Table

NUMERIC_KINDS = "iufb"


class _PipeConsole(Console):
    """A Console that lets a closed pipe (``| head``) reach the CLI's handler (exit 0).

    rich's default exits with status 1 itself, so ``flowkit flows x.pcap | head`` failed.
    """

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def stdout_console() -> Console:
    # soft_wrap off and a wide default: piping a table to a file keeps every column
    return _PipeConsole(file=sys.stdout, width=None if sys.stdout.isatty() else 200, highlight=False)


def stderr_console() -> Console:
    return Console(file=sys.stderr, highlight=False)


def format_value(value) -> str:
    import pandas as pd  # tables only: `flows -o` never loads pandas

    if value is None or value is pd.NaT:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if value == int(value) and abs(value) < 1e15:
            return str(int(value))
        if abs(value) < 1e6:  # seconds and shares: fixed point, no exponent
            return f"{value:.6f}".rstrip("0").rstrip(".")
        return f"{value:.6g}"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, (list, tuple, np.ndarray)):
        return ",".join(format_value(v) for v in value)
    try:
        if pd.isna(value):
            return "-"
    except (TypeError, ValueError):
        pass
    return str(value)


def print_table(
    df: pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    limit: int | None = 20,
    title: str | None = None,
    noun: str = "rows",
    total: int | None = None,
    console: Console | None = None,
) -> None:
    """An aligned table of the first ``limit`` rows and a footer "N of M <noun>".

    ``total`` is M when ``df`` holds only the first rows of something larger.
    """
    console = console or stdout_console()
    if columns is not None:
        df = df[[c for c in columns if c in df.columns]]
    total = len(df) if total is None else total
    shown = df if limit is None or limit < 0 else df.head(limit)
    table = Table(title=title, title_justify="left", header_style="bold", box=None, pad_edge=False)
    for name in shown.columns:
        numeric = shown[name].dtype.kind in NUMERIC_KINDS
        table.add_column(name, justify="right" if numeric else "left", no_wrap=True)
    for row in shown.itertuples(index=False, name=None):  # display only: at most `limit` rows
        table.add_row(*(format_value(v) for v in row))
    console.print(table)
    console.print(f"{len(shown)} of {total} {noun}")


def write_json_lines(df: pd.DataFrame, stream=None, *, limit: int | None = None) -> None:
    """One JSON object per row; timestamps as ISO 8601 UTC strings, missing values as null."""
    import pandas as pd

    stream = stream or sys.stdout
    if limit is not None and limit >= 0:
        df = df.head(limit)
    if len(df) == 0:
        return
    df = df.copy()
    for name in df.columns:
        if isinstance(df[name].dtype, pd.CategoricalDtype):
            df[name] = df[name].astype(object)
    text = df.to_json(orient="records", lines=True, date_format="iso", date_unit="ns")
    stream.write(text if text.endswith("\n") else text + "\n")


def ledger_dict(ledger) -> dict:
    if ledger is None:
        return {}
    return ledger.to_dict() if hasattr(ledger, "to_dict") else dict(ledger)


def print_ledger(ledger, console: Console | None = None) -> None:
    """The packet ledger: one line per category (they sum to the packets), then damage lines."""
    console = console or stdout_console()
    data = ledger_dict(ledger)
    if not data:
        console.print("packet ledger: not available")
        return
    table = Table(title="packet ledger", title_justify="left", box=None, header_style="bold", pad_edge=False)
    table.add_column("category")
    table.add_column("packets", justify="right")
    table.add_column("share", justify="right")
    packets = int(data.get("packets", 0))
    skip = {"packets", "bytes_read", "damage"}
    for name, count in data.items():
        if name in skip or not isinstance(count, (int, np.integer)):
            continue
        share = f"{100 * count / packets:.1f}%" if packets else "-"
        table.add_row(name, f"{count:,}", share)
    table.add_row("total", f"{packets:,}", "100.0%" if packets else "-", style="bold")
    console.print(table)
    if "bytes_read" in data:
        console.print(f"bytes read: {int(data['bytes_read']):,}")
    for line in data.get("damage", []) or []:
        console.print(f"damage: {line}", markup=False)



