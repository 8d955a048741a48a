"""The report in a real browser: headless Chromium loads it offline, runs its script, draws it."""
from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from conftest import require_tool
from flowkit.report import write_report
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
