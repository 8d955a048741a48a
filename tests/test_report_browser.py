"""The report in a real browser: headless Chromium loads it offline, runs its script, draws it."""
from __future__ import annotations

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
    assert len(ports) == min(25, len(flows))
    assert ports == sorted(ports)
    assert ports != sorted(ports, key=str)  # the check would not notice a text sort otherwise
