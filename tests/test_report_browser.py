"""The report in a real browser: headless Chromium loads it offline, runs its script, draws it."""
from __future__ import annotations

import csv
import html as html_lib
import io
import re
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

import flowkit
from conftest import require_tool
from flowkit.report import render_html, write_report
from test_report_html import parse
from test_report_page import build_capture


def chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("browser")
    pcap = d / "built.pcap"
    build_capture(pcap)
    return write_report(pcap, d / "report.html")


def test_charts_in_the_dom_after_the_script_ran(page, tmp_path):
    binary = require_tool("chromium")
    source = page.read_text(encoding="utf-8")
    n_charts = parse(source).count("svg", "chart")
    run = chromium(binary, tmp_path / "profile", "--dump-dom", page.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    dom = parse(run.stdout)
    # the inline script sets data-report-ready to the number of charts it found: it ran to the end
    (html,) = dom.find("html")
    assert html["attrs"].get("data-report-ready") == str(n_charts)
    assert dom.count("svg", "chart") == n_charts > 0
    assert dom.count("rect", "bar") == parse(source).count("rect", "bar")
    console_errors = [ln for ln in run.stderr.splitlines() if "CONSOLE" in ln and ("Uncaught" in ln or "Error" in ln)]
    assert console_errors == []
    assert "Uncaught" not in run.stdout


def test_screenshot_is_drawn(page, tmp_path):
    binary = require_tool("chromium")
    png = tmp_path / "report.png"
    run = chromium(binary, tmp_path / "profile", f"--screenshot={png}", "--window-size=1280,4000", page.as_uri())
    assert png.is_file(), run.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 4000)
    # a page with charts and tables compresses far worse than a blank one (a few kB)
    assert len(data) > 100_000


def test_clicking_a_header_sorts_the_table_numerically(page, tmp_path):
    binary = require_tool("chromium")
    flows = flowkit.flows(page.parent / "built.pcap").to_pandas()
    # source ports of 1 to 5 digits, so text order (10000 < 9) and numeric order differ
    flows["src_port"] = (np.arange(len(flows)) * 7919 % 65000 + 1).astype("uint16")
    html = render_html(flows, title="sort")
    # after the report's own script: click the "src_port" header twice (descending, then ascending)
    click = ("<script>var th=[...document.querySelectorAll('#topflows th')].find(h=>h.textContent==='src_port');"
             "th.click();th.click();</script></body>")
    copy = tmp_path / "sorted.html"
    copy.write_text(html.replace("</body>", click), encoding="utf-8")
    run = chromium(binary, tmp_path / "profile", "--dump-dom", copy.as_uri())
    dom = parse(run.stdout)
    heads = dom.find("th", section="topflows")
    col = [i for i, e in enumerate(heads) if "asc" in e["cls"]]
    assert len(col) == 1 and heads[col[0]]["title"] is None
    cells = dom.find("td", section="topflows")
    ports = [int(float(c["attrs"]["data-v"])) for c in cells[col[0]::len(heads)]]
    assert len(ports) == min(20, len(flows))  # the report's default --top
    assert ports == sorted(ports)
    assert ports != sorted(ports, key=str)  # the check would not notice a text sort otherwise


# ---------------------------------------------------------------- row cap, sorting and CSV in the browser


def _scan_page(tmp_path) -> str:
    """Exposure of 60 closed ports with port numbers in a shuffled order, and one open port."""
    from analysisgen import frame, tcp

    rng = np.random.default_rng(5)
    ports = rng.permutation(np.arange(1000, 1060))
    rows = [tcp(f"10.0.0.3:{30000 + i} > 10.1.0.1:{int(p)}", "rejected", t=i) for i, p in enumerate(ports)]
    rows.append(tcp("10.0.0.9:50000 > 10.1.0.1:5", "complete", t=100))
    return render_html(frame(rows), title="cap")


def _run_in_page(binary, tmp_path, html: str, script: str, *args: str):
    page = tmp_path / "page.html"
    page.write_text(html.replace("</body>", f"<script>{script}</script></body>"), encoding="utf-8")
    run = chromium(binary, tmp_path / "profile", *args, "--dump-dom", page.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    return parse(run.stdout), run.stdout


EXPOSURE_SHOWN = ("dst_ip", "dst_port", "proto", "state", "reason", "tier", "service", "attempts", "answered",
                  "rejected", "unanswered", "icmp_errors", "clients")  # docs/analyses.md, exposure()


def _exposure_rows(dom):
    rows = [e for e in dom.find("tr", section="exposure") if e["parent"] and e["parent"]["tag"] == "tbody"]
    return rows[-61:]  # the per-port table comes after the per-host one


def test_sorting_covers_every_row_and_keeps_the_cap(tmp_path):
    binary = require_tool("chromium")
    click = ("var th=[...document.querySelectorAll('#exposure table')].pop().querySelectorAll('th');"
             "[...th].find(h=>h.textContent==='dst_port').click();")  # descending first
    dom, _ = _run_in_page(binary, tmp_path, _scan_page(tmp_path), click)
    rows = _exposure_rows(dom)
    width = len(EXPOSURE_SHOWN)  # the exposure columns the page shows (all but first_ts, last_ts)
    cells = [e for e in dom.find("td", section="exposure")][-61 * width:]
    ports = [int(float(c["attrs"]["data-v"])) for c in cells[1::width]]
    assert ports == sorted(ports, reverse=True) and ports[0] == 1059  # the largest port was past the cap
    assert [("x" in r["cls"]) for r in rows] == [False] * 25 + [True] * 36


def test_show_all_expands_in_place(tmp_path):
    binary = require_tool("chromium")
    click = "[...document.querySelectorAll('#exposure button.expand')].pop().click();"
    dom, out = _run_in_page(binary, tmp_path, _scan_page(tmp_path), click)
    tables = dom.find("table", section="exposure")
    assert "expanded" in tables[-1]["cls"]
    assert "show the first 25" in out and re.search(r'class="shown">61<', out)


def test_csv_holds_every_row_with_raw_numbers(tmp_path):
    binary = require_tool("chromium")
    grab = ("var t=[...document.querySelectorAll('#exposure table')].pop();"
            "var pre=document.createElement('pre');pre.id='csv';pre.textContent=window.flowkitReport.csvText(t);"
            "document.body.appendChild(pre);")
    _, out = _run_in_page(binary, tmp_path, _scan_page(tmp_path), grab)
    text = html_lib.unescape(re.search(r'<pre id="csv">(.*?)</pre>', out, re.S).group(1))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 61
    assert rows[0]["dst_port"] == "5" and rows[0]["state"] == "open"
    assert sorted(int(r["dst_port"]) for r in rows[1:]) == list(range(1000, 1060))
    assert {r["attempts"] for r in rows} == {"1"}


def test_dataset_page_fits_1400_pixels(tmp_path):
    """Long capture paths and wide tables: nothing sticks out of the page at 1400 px."""
    binary = require_tool("chromium")
    from analysisgen import frame, tcp

    rows = [tcp(f"10.0.0.{1 + i % 7}:{40000 + i} > 10.1.0.{i % 5}:{80 + i % 3}", "complete", t=i) for i in range(200)]
    flows = frame(rows)
    flows["source"] = [f"/srv/captures/a-very-long-directory-name-for-the-sensor/eth{i % 4}/rotated-capture-{i % 9:04d}.pcap"
                       for i in range(200)]
    html = render_html(flows, title="dataset")
    measure = ("var w=document.documentElement.clientWidth, bad=[];"
               "document.querySelectorAll('main *').forEach(function(e){var r=e.getBoundingClientRect();"
               "if(r.right>w+1&&!e.closest('.tw,.cell'))bad.push(e.tagName+'.'+e.className);});"
               "document.querySelectorAll('.tw').forEach(function(e){if(e.scrollWidth>e.clientWidth+1)"
               "bad.push('scroll:'+e.querySelector('table').getAttribute('data-name'));});"
               "document.documentElement.setAttribute('data-overflow',bad.join(' '));")
    dom, _ = _run_in_page(binary, tmp_path, html, measure, "--window-size=1400,2000")
    (root,) = dom.find("html")
    assert root["attrs"].get("data-overflow") == ""
