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


def table(df: pd.DataFrame, columns=None, *, formats=None, headers=None, max_rows: int = 50,
          cls: str = "", caption: str = "") -> str:
    """A sortable table (the inline script sorts on header click).

    ``formats``: column -> callable(value) -> str. Cells keep the raw number in
    ``data-v`` so sorting is numeric, not lexical.
    """
    columns = [c for c in (columns or list(df.columns)) if c in df.columns]
    # port numbers read as identifiers, not quantities: no thousands separator
    formats = {**{c: _plain for c in columns if "port" in c and not c.endswith("ports")}, **(formats or {})}
    headers = headers or {}
    total = len(df)
    df = df.head(max_rows)
    out = [f'<div class="tw"><table class="sortable {cls}">']
    if caption:
        out.append(f"<caption>{escape(caption)}</caption>")
    out.append("<thead><tr>")
    for c in columns:
        out.append(f'<th scope="col">{escape(headers.get(c, c))}</th>')
    out.append("</tr></thead><tbody>")
    cols = {c: df[c].tolist() for c in columns}
    for i in range(len(df)):
        out.append("<tr>")
        for c in columns:
            v = cols[c][i]
            text = formats[c](v) if c in formats else num(v)
            raw = _sort_key(v)
            attr = f' data-v="{escape(raw)}"' if raw is not None else ""
            cls_num = ' class="n"' if raw is not None else ""
            out.append(f"<td{attr}{cls_num}>{escape(str(text))}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    if total > max_rows:
        out.append(f'<p class="more">showing {max_rows:,} of {total:,} rows</p>')
    return "".join(out)


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


def grid(*cells: str) -> str:
    """Side-by-side panels that wrap on narrow screens."""
    return '<div class="grid">' + "".join(f'<div class="cell">{c}</div>' for c in cells) + "</div>"
