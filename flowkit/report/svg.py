"""A tiny inline-SVG chart kit: bar, stacked bar, histogram, scatter.

Why not matplotlib/plotly: the report must be one self-contained HTML file that
opens offline, and flowkit should not depend on a plotting stack. Every chart is
an ``<svg>`` with a ``viewBox`` and ``width="100%"`` (responsive), axes with
ticks, a title, and a ``<title>`` tooltip on every mark. Marks carry classes the
tests count: ``bar`` (one rect per bar or stack segment), ``pt`` (one circle per
point).
"""
from __future__ import annotations

import math
from html import escape
from typing import Sequence

import numpy as np

# Okabe-Ito (colour-blind safe) first, then a few Tableau tones for more series.
PALETTE = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9",
    "#F0E442", "#000000", "#8C564B", "#7F7F7F", "#BCBD22", "#17BECF",
)
OTHER_COLOR = "#B0B0B0"

_W, _H = 640, 320  # viewBox size; the browser scales it to the container width
_M = {"l": 64, "r": 16, "t": 34, "b": 52}


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _fmt(v: float) -> str:
    """Short human number for tick labels: 1.2k, 3.4M, 0.25."""
    v = v + 0.0  # -0.0 (a tick summed up from below zero) is written 0, not -0
    a = abs(v)
    if a >= 1e9:
        return f"{v / 1e9:.3g}G"
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e4:
        return f"{v / 1e3:.3g}k"
    if a == 0 or a >= 1:
        return f"{v:.4g}"
    return f"{v:.2g}"


def nice_ticks(lo: float, hi: float, n: int = 5, integer: bool = False) -> list[float]:
    """Round tick values covering [lo, hi] (the classic 1-2-5 steps); ``integer``: steps of
    at least 1 (port numbers)."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    if integer:
        step = max(1.0, float(math.ceil(step)))
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12) + 0.0)
        t += step
    if ticks[-1] < hi:
        ticks.append(round(t, 12))
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten covering [lo, hi] (lo > 0)."""
    a = math.floor(math.log10(lo))
    b = math.ceil(math.log10(hi))
    if b == a:
        b += 1
    return [10.0 ** e for e in range(a, b + 1)]


def _open(title: str, cls: str, height: int = _H) -> list[str]:
    return [
        f'<svg class="chart {cls}" viewBox="0 0 {_W} {height}" width="100%" '
        f'preserveAspectRatio="xMidYMid meet" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text class="ctitle" x="{_W / 2}" y="20" text-anchor="middle">{escape(title)}</text>',
    ]


def _y_axis(parts, ticks, scale, x0, x1, label, fmt=_fmt):
    for t in ticks:
        y = scale(t)
        parts.append(f'<line class="grid" x1="{x0}" x2="{x1}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(fmt(t))}</text>')
    if label:
        cy = (_M["t"] + _H - _M["b"]) / 2
        parts.append(
            f'<text class="alabel" transform="translate(14,{cy:.0f}) rotate(-90)" '
            f'text-anchor="middle">{escape(label)}</text>'
        )


def _x_label(parts, label, height=_H):
    if label:
        parts.append(
            f'<text class="alabel" x="{(_M["l"] + _W - _M["r"]) / 2:.0f}" y="{height - 8}" '
            f'text-anchor="middle">{escape(label)}</text>'
        )


def _empty(title: str, message: str) -> str:
    parts = _open(title, "empty", 120)
    parts.append(f'<text class="note" x="{_W / 2}" y="70" text-anchor="middle">{escape(message)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _legend(parts, names: Sequence[str], colors: Sequence[str], y: float = 40) -> None:
    """One row of swatches under the title, from the plot's left edge; entries that do not
    fit are summarised as "…" (the tooltips still name every mark)."""
    x, limit = _M["l"], _W - _M["r"]
    for i, (name, c) in enumerate(zip(names, colors)):
        w = 6.2 * len(name) + 24
        if x + w > limit - (18 if i < len(names) - 1 else 0):
            parts.append(f'<text class="legend" x="{x}" y="{y}">…</text>')
            return
        parts.append(f'<rect class="swatch" x="{x}" y="{y - 9}" width="10" height="10" fill="{c}"/>')
        parts.append(f'<text class="legend" x="{x + 14}" y="{y}">{escape(name)}</text>')
        x += w


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    y_label: str = "",
    x_label: str = "",
    colors: Sequence[str] | None = None,
    horizontal: bool = False,
    value_fmt=_fmt,
    empty: str = "nothing to show",
) -> str:
    """One bar per label. Horizontal bars suit long labels (services, hosts)."""
    values = [float(v) for v in values]
    if not values:
        return _empty(title, empty)
    colors = list(colors) if colors else [color(0)] * len(values)
    if horizontal:
        return _hbar(labels, values, title=title, x_label=x_label, colors=colors, value_fmt=value_fmt)
    return stacked_bars(
        labels, {"": values}, title=title, y_label=y_label, x_label=x_label,
        colors=None, bar_colors=colors, value_fmt=value_fmt, empty=empty,
    )


def _hbar(labels, values, *, title, x_label, colors, value_fmt) -> str:
    n = len(values)
    row = 22
    left = 170
    height = _M["t"] + 10 + n * row + 44
    parts = _open(title, "hbar", height)
    x0, x1 = left, _W - _M["r"] - 40
    ticks = nice_ticks(0, max(values) or 1.0)
    top = ticks[-1]
    sx = lambda v: x0 + (x1 - x0) * v / top  # noqa: E731
    y_base = _M["t"] + 10
    for t in ticks:
        x = sx(t)
        parts.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{y_base}" y2="{y_base + n * row}"/>')
        parts.append(f'<text class="tick" x="{x:.1f}" y="{y_base + n * row + 14}" text-anchor="middle">{_fmt(t)}</text>')
    for i, (lab, v) in enumerate(zip(labels, values)):
        y = y_base + i * row
        w = max(sx(v) - x0, 0.0)
        lab = str(lab)
        short = lab if len(lab) <= 24 else lab[:23] + "…"
        parts.append(f'<text class="tick" x="{x0 - 6}" y="{y + row / 2 + 4:.1f}" text-anchor="end">{escape(short)}</text>')
        parts.append(
            f'<rect class="bar" x="{x0}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" fill="{colors[i]}">'
            f"<title>{escape(lab)}: {escape(value_fmt(v))}</title></rect>"
        )
        parts.append(f'<text class="val" x="{x0 + w + 4:.1f}" y="{y + row / 2 + 4:.1f}">{escape(value_fmt(v))}</text>')
    parts.append(f'<line class="axis" x1="{x0}" x2="{x0}" y1="{y_base}" y2="{y_base + n * row}"/>')
    _x_label(parts, x_label, height)
    parts.append("</svg>")
    return "".join(parts)


def stacked_bars(
    categories: Sequence[str],
    series: dict[str, Sequence[float]],
    *,
    title: str,
    y_label: str = "",
    x_label: str = "",
    colors: Sequence[str] | None = None,
    bar_colors: Sequence[str] | None = None,
    value_fmt=_fmt,
    empty: str = "nothing to show",
) -> str:
    """Vertical bars, one per category, each split into the named series.

    A segment of height 0 is not drawn, so the number of ``bar`` rects is the
    number of non-zero (category, series) cells.
    """
    names = list(series)
    mat = np.array([[float(v) for v in series[s]] for s in names], dtype=float).reshape(len(names), len(categories))
    if mat.size == 0 or not np.isfinite(mat).any():
        return _empty(title, empty)
    mat = np.nan_to_num(mat)
    totals = mat.sum(axis=0)
    colors = list(colors) if colors else [color(i) for i in range(len(names))]
    parts = _open(title, "bars")
    has_legend = len(names) > 1 or bool(names and names[0])
    x0, x1 = _M["l"], _W - _M["r"]
    y0, y1 = _H - _M["b"], _M["t"] + (28 if has_legend else 14)
    ticks = nice_ticks(0, float(totals.max()) or 1.0)
    top = ticks[-1]
    sy = lambda v: y0 - (y0 - y1) * v / top  # noqa: E731
    _y_axis(parts, ticks, sy, x0, x1, y_label)
    n = len(categories)
    slot = (x1 - x0) / n
    bw = min(slot * 0.7, 90)
    for i, cat in enumerate(categories):
        cx = x0 + slot * (i + 0.5)
        base = 0.0
        for k, name in enumerate(names):
            v = mat[k, i]
            if v <= 0:
                continue
            ya, yb = sy(base + v), sy(base)
            fill = bar_colors[i] if bar_colors else colors[k]
            tip = f"{cat}{' / ' + name if name else ''}: {value_fmt(v)}"
            parts.append(
                f'<rect class="bar" x="{cx - bw / 2:.1f}" y="{ya:.1f}" width="{bw:.1f}" '
                f'height="{max(yb - ya, 0.5):.1f}" fill="{fill}"><title>{escape(tip)}</title></rect>'
            )
            base += v
        parts.append(f'<text class="val" x="{cx:.1f}" y="{sy(totals[i]) - 4:.1f}" text-anchor="middle">{escape(value_fmt(totals[i]))}</text>')
        cat_s = str(cat)
        parts.append(f'<text class="tick" x="{cx:.1f}" y="{y0 + 16}" text-anchor="middle">{escape(cat_s[:18])}</text>')
    parts.append(f'<line class="axis" x1="{x0}" x2="{x1}" y1="{y0}" y2="{y0}"/>')
    if has_legend:
        _legend(parts, names, colors, y=_M["t"] + 6)
    _x_label(parts, x_label)
    parts.append("</svg>")
    return "".join(parts)


def histogram(
    values,
    *,
    title: str,
    x_label: str = "",
    y_label: str = "count",
    bins: int = 30,
    log: bool | None = None,
    fill: str | None = None,
    empty: str = "no values",
) -> str:
    """Histogram of finite values; ``log=None`` picks a log x axis when the
    positive values span more than two decades (RTTs from LAN to intercontinental)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return _empty(title, empty)
    pos = v[v > 0]
    if log is None:
        log = pos.size == v.size and pos.size > 1 and pos.max() / pos.min() > 100
    if log:
        lo, hi = math.log10(pos.min()), math.log10(pos.max())
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.logspace(lo, hi, bins + 1)
        counts, _ = np.histogram(pos, bins=edges)
        tx = log_ticks(edges[0], edges[-1])
        ax_lo, ax_hi = math.log10(tx[0]), math.log10(tx[-1])
        sxv = lambda x: (math.log10(x) - ax_lo) / (ax_hi - ax_lo)  # noqa: E731
    else:
        lo, hi = float(v.min()), float(v.max())
        if hi - lo < 1e-12:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, bins + 1)
        counts, _ = np.histogram(v, bins=edges)
        tx = nice_ticks(lo, hi)
        ax_lo, ax_hi = tx[0], tx[-1]
        sxv = lambda x: (x - ax_lo) / (ax_hi - ax_lo)  # noqa: E731
    parts = _open(title, "hist")
    x0, x1 = _M["l"], _W - _M["r"]
    y0, y1 = _H - _M["b"], _M["t"] + 14
    sx = lambda x: x0 + (x1 - x0) * sxv(x)  # noqa: E731
    ty = nice_ticks(0, float(counts.max()) or 1.0)
    sy = lambda c: y0 - (y0 - y1) * c / ty[-1]  # noqa: E731
    _y_axis(parts, ty, sy, x0, x1, y_label)
    fill = fill or color(0)
    for c, a, b in zip(counts, edges[:-1], edges[1:]):
        if c == 0:
            continue
        xa, xb = sx(a), sx(b)
        parts.append(
            f'<rect class="bar" x="{xa:.1f}" y="{sy(c):.1f}" width="{max(xb - xa - 0.5, 0.5):.1f}" '
            f'height="{max(y0 - sy(c), 0.5):.1f}" fill="{fill}"><title>{_fmt(a)} – {_fmt(b)}: {int(c)}</title></rect>'
        )
    for t in tx:
        x = sx(t)
        parts.append(f'<line class="tickmark" x1="{x:.1f}" x2="{x:.1f}" y1="{y0}" y2="{y0 + 5}"/>')
        parts.append(f'<text class="tick" x="{x:.1f}" y="{y0 + 17}" text-anchor="middle">{_fmt(t)}</text>')
    parts.append(f'<line class="axis" x1="{x0}" x2="{x1}" y1="{y0}" y2="{y0}"/>')
    _x_label(parts, x_label + (" (log scale)" if log else ""))
    parts.append("</svg>")
    return "".join(parts)


def scatter(
    x,
    y,
    *,
    title: str,
    groups=None,
    x_label: str = "",
    y_label: str = "",
    max_groups: int = 8,
    y_range: tuple[float, float] | None = None,
    y_integer: bool = False,
    tips=None,
    radius: float = 2.2,
    empty: str = "no points",
) -> str:
    """Points coloured by group (the ``max_groups`` largest get colours, the rest grey
    as "other"). ``tips``: optional per-point tooltip text."""
    xv = np.asarray(x, dtype=float)
    yv = np.asarray(y, dtype=float)
    ok = np.isfinite(xv) & np.isfinite(yv)
    if not ok.any():
        return _empty(title, empty)
    g = np.asarray(groups if groups is not None else [""] * len(xv), dtype=object)
    xv, yv, g = xv[ok], yv[ok], g[ok]
    tip_arr = np.asarray(tips, dtype=object)[ok] if tips is not None else None
    names, counts = np.unique(g.astype(str), return_counts=True)
    order = names[np.argsort(-counts, kind="stable")]
    coloured = list(order[:max_groups])
    cmap = {name: color(i) for i, name in enumerate(coloured)}
    parts = _open(title, "scatter")
    x0, x1 = _M["l"], _W - _M["r"]
    y0, y1 = _H - _M["b"], _M["t"] + (24 if len(order) > 1 else 14)
    tx = nice_ticks(float(xv.min()), float(xv.max()))
    lo, hi = y_range if y_range else (float(yv.min()), float(yv.max()))
    ty = nice_ticks(lo, hi, integer=y_integer)
    sx = lambda v: x0 + (x1 - x0) * (v - tx[0]) / (tx[-1] - tx[0])  # noqa: E731
    sy = lambda v: y0 - (y0 - y1) * (v - ty[0]) / (ty[-1] - ty[0])  # noqa: E731
    _y_axis(parts, ty, sy, x0, x1, y_label, fmt=lambda t: f"{t:.6g}")
    for t in tx:
        xx = sx(t)
        parts.append(f'<line class="tickmark" x1="{xx:.1f}" x2="{xx:.1f}" y1="{y0}" y2="{y0 + 5}"/>')
        parts.append(f'<text class="tick" x="{xx:.1f}" y="{y0 + 17}" text-anchor="middle">{_fmt(t)}</text>')
    gs = g.astype(str)
    for i in range(len(xv)):
        c = cmap.get(gs[i], OTHER_COLOR)
        tip = tip_arr[i] if tip_arr is not None else f"{gs[i]} ({_fmt(xv[i])}, {yv[i]:.6g})"
        parts.append(
            f'<circle class="pt" cx="{sx(xv[i]):.1f}" cy="{sy(yv[i]):.1f}" r="{radius}" fill="{c}">'
            f"<title>{escape(str(tip))}</title></circle>"
        )
    parts.append(f'<line class="axis" x1="{x0}" x2="{x1}" y1="{y0}" y2="{y0}"/>')
    legend_names = [n for n in coloured if n]
    if len(order) > max_groups:
        legend_names.append("other")
    if legend_names and len(order) > 1:
        _legend(parts, [n[:24] for n in legend_names], [cmap.get(n, OTHER_COLOR) for n in legend_names])
    _x_label(parts, x_label)
    parts.append("</svg>")
    return "".join(parts)
