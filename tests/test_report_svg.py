"""The inline-SVG chart kit: marks counted against the data that made them."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

from flowkit.report import svg
from test_report_html import parse


def test_bar_chart_one_rect_per_label_with_tooltips():
    labels = ["complete", "rejected", "unanswered", "incomplete", "midstream"]
    values = [120, 7, 0, 3, 15]
    doc = parse(svg.bar_chart(labels, values, title="Outcomes", y_label="flows"))
    # a zero bar is not drawn: 4 rects for the 4 non-zero values
    assert doc.count("rect", "bar") == 4
    tips = doc.titles_of("rect", "bar")
    assert tips == ["complete: 120", "rejected: 7", "incomplete: 3", "midstream: 15"]
    assert "Outcomes" in doc.text
    # taller bar for the larger value
    heights = [float(a["height"]) for a in doc.attrs_of("rect", "bar")]
    assert heights[0] > heights[3] > heights[1] > heights[2]


def test_horizontal_bars_keep_every_label_and_scale_widths():
    labels = [f"{p}/tcp" for p in (443, 80, 22)]
    doc = parse(svg.bar_chart(labels, [300, 150, 30], title="Services", horizontal=True))
    widths = [float(a["width"]) for a in doc.attrs_of("rect", "bar")]
    assert len(widths) == 3
    assert widths[0] == pytest.approx(2 * widths[1], rel=0.02)
    assert widths[1] == pytest.approx(5 * widths[2], rel=0.02)
    for lab in labels:
        assert lab in doc.text


def test_stacked_bars_segments_and_legend():
    cats = ["well-known", "registered", "dynamic"]
    series = {"tcp": [10, 0, 4], "udp": [5, 2, 0]}
    doc = parse(svg.stacked_bars(cats, series, title="Flows by tier"))
    assert doc.count("rect", "bar") == 4  # non-zero cells only
    assert doc.count("rect", "swatch") == 2  # legend: tcp, udp
    assert set(doc.titles_of("rect", "bar")) == {
        "well-known / tcp: 10", "dynamic / tcp: 4", "well-known / udp: 5", "registered / udp: 2"}
    # segment heights are proportional to their values
    rects = doc.attrs_of("rect", "bar")
    h = {t: float(a["height"]) for t, a in zip(doc.titles_of("rect", "bar"), rects)}
    assert h["well-known / tcp: 10"] == pytest.approx(2 * h["well-known / udp: 5"], rel=0.01)


def test_histogram_counts_add_up_and_log_axis_for_wide_ranges():
    rng = np.random.default_rng(7)
    v = 10 ** rng.uniform(-1, 3, 500)  # 0.1 ms .. 1 s: four decades
    doc = parse(svg.histogram(v, title="RTT", x_label="milliseconds", bins=20))
    total = sum(int(t.rsplit(": ", 1)[1]) for t in doc.titles_of("rect", "bar"))
    assert total == 500
    assert "(log scale)" in doc.text
    assert doc.count("rect", "bar") <= 20
    narrow = parse(svg.histogram(rng.uniform(10, 20, 100), title="RTT", bins=10))
    assert "(log scale)" not in narrow.text
    assert sum(int(t.rsplit(": ", 1)[1]) for t in narrow.titles_of("rect", "bar")) == 100


def test_histogram_ignores_nan_and_says_when_empty():
    doc = parse(svg.histogram([np.nan, 1.0, 2.0, np.nan], title="x", bins=2))
    assert sum(int(t.rsplit(": ", 1)[1]) for t in doc.titles_of("rect", "bar")) == 2
    empty = parse(svg.histogram([np.nan], title="RTT", empty="no complete handshake"))
    assert empty.count("rect", "bar") == 0
    assert "no complete handshake" in empty.text


def test_scatter_one_circle_per_finite_point_coloured_by_group():
    x = np.arange(10.0)
    y = np.array([100, 102, 104, 5000, 5002, np.nan, 106, 5004, 108, 110.0])
    groups = ["a"] * 3 + ["b"] * 2 + ["a", "a", "b", "a", "a"]
    doc = parse(svg.scatter(x, y, groups=groups, title="ports"))
    circles = doc.attrs_of("circle", "pt")
    assert len(circles) == 9
    fills = {a["fill"] for a in circles}
    assert fills == {svg.color(0), svg.color(1)}
    # higher port is drawn higher (smaller cy)
    cy = [float(a["cy"]) for a in circles]
    assert cy[3] < cy[0]


def test_scatter_groups_beyond_the_palette_share_the_other_colour():
    n = 12
    doc = parse(svg.scatter(np.arange(n), np.arange(n), groups=[f"g{i}" for i in range(n)],
                            title="many", max_groups=3))
    fills = [a["fill"] for a in doc.attrs_of("circle", "pt")]
    assert sum(f == svg.OTHER_COLOR for f in fills) == n - 3


def test_charts_are_responsive_and_reference_nothing_external():
    out = svg.bar_chart(["a"], [1], title="t")
    doc = parse(out)
    (root,) = doc.attrs_of("svg", "chart")
    assert root["width"] == "100%" and root["viewbox"].startswith("0 0 ")
    assert not re.search(r'(?:href|src)\s*=\s*"https?:', out)


def test_special_characters_are_escaped():
    doc = parse(svg.bar_chart(["<script>&"], [1], title="a<b"))
    assert doc.count("script") == 0
    assert "<script>&" in doc.text


@pytest.mark.parametrize("lo,hi", [(0, 1), (0, 7), (3, 997), (0.0013, 0.0021), (32768, 60999), (5, 5)])
def test_nice_ticks_cover_the_range_with_round_steps(lo, hi):
    t = svg.nice_ticks(lo, hi)
    assert t[0] <= lo and t[-1] >= hi
    steps = np.diff(t)
    assert np.allclose(steps, steps[0])
    mant = steps[0] / 10 ** math.floor(math.log10(steps[0]))
    assert any(math.isclose(mant, m, rel_tol=1e-6) for m in (1, 2, 2.5, 5, 10))
    assert len(t) <= 12


@pytest.mark.parametrize("lo,hi", [(-0.3, 0.2), (-0.03, 0.02), (-0.7, 0.4)])
def test_a_tick_summed_up_to_zero_reads_0_not_minus_0(lo, hi):
    # -0.3 + 0.1 + 0.1 + 0.1 is -5.6e-17 in floating point: the tick must still be labelled 0
    labels = [svg._fmt(t) for t in svg.nice_ticks(lo, hi)]
    assert "0" in labels and "-0" not in labels
