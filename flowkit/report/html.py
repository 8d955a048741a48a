"""Small HTML building blocks: escaped tables, sections, number formatting."""
from __future__ import annotations

import math
from html import escape

import pandas as pd


def num(v) -> str:
    """Integers with thousands separators, floats to 4 significant digits, blanks for missing."""
    if v is None:
        return ""
    try:
        if pd.isna(v):
            return ""
    except (TypeError, ValueError):
        pass
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, pd.Timestamp):
        return v.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if isinstance(v, int) or (hasattr(v, "is_integer") and isinstance(v, float) and v.is_integer() and abs(v) < 1e15):
        return f"{int(v):,}"
    if isinstance(v, float):
        return f"{v:.4g}"
    try:
        iv = int(v)
        if iv == v:
            return f"{iv:,}"
    except (TypeError, ValueError, OverflowError):
        pass
    return str(v)


def human_bytes(n: float) -> str:
    n = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"


def ms(seconds) -> str:
    """Seconds to a millisecond string (RTTs read best in ms)."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return ""
    return f"{float(seconds) * 1000:.3g} ms"


ROW_CAP = 25  # rows every table shows before "show all": one cap for the whole page
MAX_EMBED = 10_000  # rows a table writes into the page (the rest: the CLI's --json)


def share(v) -> str:
    """A share as a percentage that never reads 0% for a non-zero count, nor 100% for less than all."""
    if v is None or pd.isna(v):
        return ""
    v = float(v)
    if v <= 0:
        return "0%"
    if v >= 1:
        return "100%"
    if v < 0.001:
        return "<0.1%"
    if v > 0.999:
        return ">99.9%"
    return f"{v:.1%}"


def table(df: pd.DataFrame, columns=None, *, formats=None, headers=None, cls: str = "", caption: str = "",
          name: str = "table") -> str:
    """A sortable table showing ROW_CAP rows, with every row (up to MAX_EMBED) in the page: the
    inline script expands it in place, sorts over all rows and saves them as ``name``.csv.

    ``formats``: column -> callable(value) -> str. Cells keep the raw number in ``data-v`` so
    sorting is numeric, not lexical, and the CSV holds numbers rather than their display.
    """
    columns = [c for c in (columns or list(df.columns)) if c in df.columns]
    # port numbers read as identifiers, not quantities: no thousands separator
    formats = {**{c: _plain for c in columns if "port" in c and not c.endswith("ports")}, **(formats or {})}
    headers = headers or {}
    total = len(df)
    df = df.head(MAX_EMBED)
    capped = " capped" if len(df) > ROW_CAP else ""
    out = [f'<div class="tw"><table class="sortable{capped} {cls}" data-cap="{ROW_CAP}" data-name="{escape(name)}">']
    if caption:
        out.append(f"<caption>{escape(caption)}</caption>")
    out.append("<thead><tr>")
    for c in columns:
        # long snake_case names may wrap at their underscores, so wide tables fit the page
        out.append(f'<th scope="col">{escape(headers.get(c, c)).replace("_", "_<wbr>")}</th>')
    out.append("</tr></thead><tbody>")
    cols = {c: df[c].tolist() for c in columns}
    for i in range(len(df)):
        out.append('<tr class="x">' if i >= ROW_CAP else "<tr>")
        for c in columns:
            v = cols[c][i]
            text = formats[c](v) if c in formats else num(v)
            raw = _sort_key(v)
            attr = ""
            if raw is not None:
                attr = f' data-v="{escape(raw)}" class="n"'
                plain = _csv_number(v)
                if plain is not None and plain != text:
                    attr += f' data-c="{escape(plain)}"'
            out.append(f"<td{attr}>{escape(str(text))}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    if total > ROW_CAP:
        held = "" if total <= MAX_EMBED else (f" (the page holds the first {MAX_EMBED:,}; the command's "
                                              "--json output lists every row)")
        out.append(f'<p class="more">showing <span class="shown">{ROW_CAP:,}</span> of {total:,} rows{held} '
                   f'<button type="button" class="expand">show all {min(total, MAX_EMBED):,}</button> '
                   f'<button type="button" class="csv">CSV</button></p>')
    elif total:
        out.append('<p class="more"><button type="button" class="csv">CSV</button></p>')
    return "".join(out)


def _csv_number(v) -> str | None:
    """The number as a CSV cell (no separators, no units); None for what is not a plain number."""
    if isinstance(v, pd.Timestamp) or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    if math.isnan(f):
        return None
    return str(int(f)) if f.is_integer() and abs(f) < 1e15 else repr(f)


def _plain(v) -> str:
    try:
        return "" if pd.isna(v) else str(int(v))
    except (TypeError, ValueError):
        return str(v)


def _sort_key(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
        return repr(float(v))
    try:
        import numpy as np

        if isinstance(v, np.number) and np.isfinite(v):
            return repr(float(v))
    except ImportError:  # pragma: no cover
        pass
    if isinstance(v, pd.Timestamp):
        return repr(v.value / 1e9)
    return None


def section(sid: str, title: str, body: str, intro: str = "") -> str:
    intro_html = f'<p class="intro">{intro}</p>' if intro else ""
    return f'<section id="{sid}"><h2>{escape(title)}</h2>{intro_html}{body}</section>'


def empty_note(text: str) -> str:
    return f'<p class="empty">{escape(text)}</p>'


def grid(*cells: str, pair: bool = False) -> str:
    """Side-by-side panels that wrap on narrow screens; ``pair``: a chart and a wider table beside it."""
    return (f'<div class="grid{" pair" if pair else ""}">' + "".join(f'<div class="cell">{c}</div>' for c in cells)
            + "</div>")
