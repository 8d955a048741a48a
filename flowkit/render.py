"""Terminal output of the ``flowkit`` command: aligned tables that fit the width, the ledger.

Nothing here computes anything about packets or flows; it only formats DataFrames and
ledgers the library returns. Tables never cut a value: when the terminal is too narrow,
whole columns give way in the order of their ``views.View`` (docs/cli.md, "Terminal tables").
"""
from __future__ import annotations

import math
import os
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from flowkit import views

GAP = "  "


# ----------------------------------------------------------------------------- width
def terminal_width(stream=None) -> int | None:
    """Columns to fit on a terminal (``COLUMNS`` when set, as for ls); None for a pipe or a file,
    which get every column whatever their width."""
    stream = stream or sys.stdout
    try:
        if not stream.isatty():
            return None
        env = os.environ.get("COLUMNS", "")
        return int(env) if env.isdigit() and int(env) > 0 else os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return None


def _styled(stream) -> bool:
    try:
        return stream.isatty() and "NO_COLOR" not in os.environ
    except (AttributeError, ValueError):
        return False


# ----------------------------------------------------------------------------- cells
@dataclass
class Column:
    name: str
    cells: list[str]
    right: bool  # numbers are right-aligned
    short: list[str] | None = None  # the abbreviated cells (timestamps without their date)
    note: str | None = None  # what the abbreviation left out, for the footer

    def width(self, header: str, short: bool) -> int:
        cells = self.short if short and self.short is not None else self.cells
        return max([len(header), *map(len, cells)])


def _missing(values) -> np.ndarray:
    import pandas as pd

    return np.asarray(pd.isna(values), dtype=bool)


def _decimals(values: np.ndarray, base: int, cap: int) -> int | None:
    """The fewest decimals from ``base`` that show every non-zero value as non-zero (None: over ``cap``)."""
    nonzero = np.abs(values[np.isfinite(values) & (values != 0)])
    if len(nonzero) == 0:
        return base
    smallest = float(nonzero.min())
    for d in range(base, cap + 1):
        if round(smallest, d) != 0:
            return d
    return None


def _float_cells(name: str, values: np.ndarray) -> list[str]:
    """One precision for the whole column: seconds from microseconds, shares as percentages."""
    finite = values[np.isfinite(values)]
    if not views.is_seconds(name) and not views.is_share(name) and np.all(finite == np.round(finite)) \
            and np.all(np.abs(finite) < 1e15):
        return [f"{int(v):,}" if math.isfinite(v) else "-" for v in values]
    suffix = ""
    if views.is_share(name):
        values, base, cap, suffix = values * 100, 1, 4, "%"
    elif views.is_seconds(name):
        base, cap = 6, 9
    else:
        base, cap = 2, 6
    d = _decimals(values, base, cap)
    if d is None:
        return [f"{v:.2e}{suffix}" if math.isfinite(v) else "-" for v in values]
    return [f"{v:,.{d}f}{suffix}" if math.isfinite(v) else "-" for v in values]


def _time_cells(values) -> tuple[list[str], list[str] | None, str | None]:
    """``YYYY-MM-DD HH:MM:SS.ffffff`` (nine digits when any value has nanoseconds), UTC; the short
    form drops the date when every value is on the same day."""
    import pandas as pd

    series = pd.Series(values)
    if getattr(series.dt, "tz", None) is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    ns = series.to_numpy(dtype="datetime64[ns]")
    missing = np.isnat(ns)
    unit = "ns" if np.any(ns[~missing].astype(np.int64) % 1000) else "us"
    text = np.datetime_as_string(ns, unit=unit)
    cells = ["-" if m else t.replace("T", " ") for t, m in zip(text, missing)]
    days = {c[:10] for c, m in zip(cells, missing) if not m}
    if len(days) != 1:
        return cells, None, None
    return cells, [c if c == "-" else c[11:] for c in cells], f"times UTC on {days.pop()}"


def _text(value) -> str:
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, (list, tuple, np.ndarray)):
        return ",".join(_text(v) for v in value)
    return str(value)


def column(name: str, values) -> Column:
    """The cells of one DataFrame column as the terminal shows them; missing values are ``-``."""
    import pandas as pd

    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or dtype.kind == "M":
        cells, short, note = _time_cells(values)
        return Column(name, cells, False, short, note)
    if dtype.kind in "iu":
        if name in views.IDENTIFIERS:
            return Column(name, [str(v) for v in values.tolist()], True)
        return Column(name, [f"{v:,}" for v in values.tolist()], True)
    if dtype.kind == "f":
        return Column(name, _float_cells(name, values.to_numpy(dtype=float)), True)
    if dtype.kind == "b":
        return Column(name, [str(v) for v in values.tolist()], False)
    missing = _missing(values)
    plain = values.astype(object).tolist()
    numeric = pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype)
    if numeric:  # nullable integers (Int64, UInt16...): counts with separators, identifiers without
        fmt = "{}" if name in views.IDENTIFIERS else "{:,}"
        return Column(name, ["-" if m else fmt.format(v) for v, m in zip(plain, missing)], True)
    return Column(name, ["-" if m else _text(v) for v, m in zip(plain, missing)], False)


# ----------------------------------------------------------------------------- layout
@dataclass
class Layout:
    columns: list[Column]
    headers: list[str]
    short: bool  # abbreviated timestamps
    hidden: list[str]

    def width(self) -> int:
        return sum(c.width(h, self.short) for c, h in zip(self.columns, self.headers)) + len(GAP) * (
            len(self.columns) - 1)


def fit(columns: list[Column], view: views.View, width: int | None) -> Layout:
    """Fit ``width`` in this order, stopping as soon as the table fits: short header names,
    timestamps without their date, then whole columns in ``view.drop`` order. Key columns
    and values are never cut; a table still too wide is printed wider than the terminal."""
    layout = Layout(list(columns), [c.name for c in columns], False, [])
    if width is None or layout.width() <= width:
        return layout
    layout.headers = [_short_header(c) for c in columns]
    if layout.width() <= width:
        return layout
    layout.short = True
    keys = view.keys_in(c.name for c in columns)
    for group in view.drop:
        if layout.width() <= width:
            break
        gone = [n for n in group if n not in keys and n in {c.name for c in layout.columns}]
        if not gone:
            continue
        kept = [(c, h) for c, h in zip(layout.columns, layout.headers) if c.name not in gone]
        layout.columns, layout.headers = [c for c, _ in kept], [h for _, h in kept]
        layout.hidden.extend(gone)
    return layout


def _short_header(col: Column) -> str:
    short = views.SHORT_HEADERS.get(col.name)
    if short is None:
        return col.name
    widest = max(map(len, col.cells), default=0)
    return short if len(col.name) > widest else col.name


def _lines(layout: Layout, bold: bool) -> list[str]:
    widths = [c.width(h, layout.short) for c, h in zip(layout.columns, layout.headers)]

    def row(cells, rights):
        parts = [cell.rjust(w) if right else cell.ljust(w) for cell, w, right in zip(cells, widths, rights)]
        return GAP.join(parts).rstrip()

    rights = [c.right for c in layout.columns]
    header = row(layout.headers, rights)
    lines = [f"\x1b[1m{header}\x1b[0m" if bold else header]
    columns = [c.short if layout.short and c.short is not None else c.cells for c in layout.columns]
    lines.extend(row(cells, rights) for cells in zip(*columns))
    return lines


def sort_frame(df, keys: Sequence[str]):
    """Rows ordered by ``keys`` (``-name`` descending), stable, missing values last."""
    names = [k.lstrip("-") for k in keys]
    ascending = [not k.startswith("-") for k in keys]
    return df.sort_values(names, ascending=ascending, kind="mergesort", na_position="last").reset_index(drop=True)


def print_table(
    df,
    view: views.View | Sequence[str] | None = None,
    *,
    limit: int | None = 20,
    title: str | None = None,
    noun: str = "rows",
    total: int | None = None,
    wide: bool = False,
    footer: bool = True,
    width: int | None = None,
    stream=None,
) -> None:
    """An aligned table of the first ``limit`` rows, then a footer "N of M <noun>".

    ``total`` is M when ``df`` holds only the first rows of something larger. The table
    fits ``width`` (default: the terminal's, ``terminal_width``) unless ``wide``; a line
    under the footer names the columns that gave way.
    """
    stream = stream or sys.stdout
    if view is None:
        view = views.default_view(df.columns)
    elif not isinstance(view, views.View):  # a list of columns: all of them keys
        view = views.View(tuple(view), frozenset(view))
    df = df[[c for c in view.columns if c in df.columns]]
    total = len(df) if total is None else total
    shown = df if limit is None or limit < 0 else df.head(limit)
    columns = [column(name, shown[name]) for name in shown.columns]
    width = None if wide else width or terminal_width(stream)
    layout = fit(columns, view, width)
    out = []
    if title:
        out.append(title)
    out.extend(_lines(layout, _styled(stream)))
    line = f"{len(shown):,} of {total:,} {noun}"
    notes = [c.note for c in layout.columns if layout.short and c.note]
    if notes:
        line += ", " + ", ".join(notes)
    if footer or notes:
        out.append(line)
    if layout.hidden:
        note = f"not shown at {width} columns: {', '.join(layout.hidden)} (--wide or --fields shows them)"
        out.extend(textwrap.wrap(note, width=max(width or 0, 40), break_on_hyphens=False, break_long_words=False))
    stream.write("\n".join(out) + "\n")


# ----------------------------------------------------------------------------- ledger
def ledger_dict(ledger) -> dict:
    if ledger is None:
        return {}
    return ledger.to_dict() if hasattr(ledger, "to_dict") else dict(ledger)


def print_ledger(ledger, stream=None) -> None:
    """The packet ledger: one line per category (they sum to the packets), then damage lines."""
    import pandas as pd

    stream = stream or sys.stdout
    data = ledger_dict(ledger)
    if not data:
        stream.write("packet ledger: not available\n")
        return
    packets = int(data.get("packets", 0))
    verified = "checksum_errors" in data  # bad_checksum exists only when checksums were verified
    rows = [(name, int(count)) for name, count in data.items()
            if name not in ("packets", "bytes_read", "damage") and isinstance(count, (int, np.integer))
            and (verified or name != "bad_checksum")]
    rows.append(("total", packets))
    share = [count / packets if packets else float("nan") for _, count in rows]
    df = pd.DataFrame({"category": [r[0] for r in rows], "packets": [r[1] for r in rows], "share": share})
    print_table(df, ["category", "packets", "share"], limit=None, title="packet ledger", footer=False,
                stream=stream)
    if "bytes_read" in data:
        stream.write(f"bytes read: {int(data['bytes_read']):,}\n")
    if verified:
        errors = ", ".join(f"{name} {int(n):,}" for name, n in data["checksum_errors"].items())
        stream.write(f"bad transport checksums (in flows, not counted): {errors}\n")
    for line in data.get("damage", []) or []:
        stream.write(f"damage: {line}\n")
