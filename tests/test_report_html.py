"""Report sections and the page, parsed with html.parser; truth from the frames the tests build."""
from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from flowkit.report import sections as S
from flowkit.report import SECTIONS, render_html


# ------------------------------------------------------------------ a small DOM summary


class Doc(HTMLParser):
    """Elements with their classes, the section they sit in, and their <title> tooltip."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[dict] = []
        self._stack: list[dict] = []
        self._text: list[str] = []
        self.feed(text)
        self.close()
        self.text = " ".join(self._text)

    def _section(self):
        for e in reversed(self._stack):
            if e["tag"] == "section":
                return e["attrs"].get("id")
        return None

    def handle_starttag(self, tag, attrs):
        e = {"tag": tag, "attrs": {k: (v or "") for k, v in attrs}, "title": None}
        e["cls"] = set(e["attrs"].get("class", "").split())
        e["section"] = e["attrs"].get("id") if tag == "section" else self._section()
        e["parent"] = self._stack[-1] if self._stack else None
        self.elements.append(e)
        self._stack.append(e)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        self._stack.pop()

    def handle_endtag(self, tag):
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i]["tag"] == tag:
                del self._stack[i:]
                break

    def handle_data(self, data):
        if self._stack and self._stack[-1]["tag"] == "title" and self._stack[-1]["parent"] is not None:
            parent = self._stack[-1]["parent"]
            parent["title"] = (parent["title"] or "") + data
        if data.strip():
            self._text.append(data.strip())

    def find(self, tag, cls=None, section=None):
        return [e for e in self.elements if e["tag"] == tag and (cls is None or cls in e["cls"])
                and (section is None or e["section"] == section)]

    def count(self, tag, cls=None, section=None):
        return len(self.find(tag, cls, section))

    def attrs_of(self, tag, cls=None, section=None):
        return [e["attrs"] for e in self.find(tag, cls, section)]

    def titles_of(self, tag, cls=None, section=None):
        return [e["title"] for e in self.find(tag, cls, section)]


def parse(text: str) -> Doc:
    return Doc(text)


def section_text(html: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', html, re.S)
    assert m, f"section {sid} missing"
    return re.sub(r"<[^>]+>", " ", m.group(1))


def external_refs(html: str) -> list[str]:
    """src/href values (and CSS url()) that would fetch something from a network."""
    refs = re.findall(r'(?:src|href)\s*=\s*["\']?\s*((?:https?:)?//[^"\' >]*)', html, re.I)
    refs += re.findall(r"url\(\s*['\"]?((?:https?:)?//[^)'\"]*)", html, re.I)
    refs += re.findall(r"@import", html)
    return refs


# ------------------------------------------------------------------ frames built by hand


def flow_frame(rows) -> pd.DataFrame:
    """Flows from (t, proto, src, sport, dst, dport, conn_state, src_pkts, dst_pkts, src_bytes, dst_bytes)."""
    cols = ["t", "proto", "src_ip", "src_port", "dst_ip", "dst_port", "conn_state",
            "src_pkts", "dst_pkts", "src_ip_bytes", "dst_ip_bytes"]
    df = pd.DataFrame(rows, columns=cols)
    t0 = pd.Timestamp("2024-03-01 12:00:00", tz="UTC")
    df["ts_start"] = t0 + pd.to_timedelta(df.pop("t"), unit="s")
    df["ts_end"] = df["ts_start"] + pd.Timedelta(seconds=1)
    df["duration"] = 1.0
    return df


LEDGER = {"packets": 1234, "tcp": 1000, "udp": 150, "icmp": 20, "other_ip": 4, "fragment": 6,
          "non_ip": 40, "unsupported_link": 0, "truncated": 9, "malformed": 5, "bytes_read": 98765,
          "damage": ["cut.pcap: offset 4096: record length 70000 exceeds snaplen 65535"]}


def test_ledger_section_numbers_and_bars():
    html = S.ledger_section(LEDGER)
    doc = parse(html)
    # every category has its row and its bar, and the total row says 1,234
    assert doc.count("rect", "bar") == 9
    tips = dict(t.split(": ") for t in doc.titles_of("rect", "bar"))
    assert tips == {k: str(v) for k, v in LEDGER.items() if k not in ("packets", "bytes_read", "damage")}
    rows = [e for e in doc.find("tr")]
    assert len(rows) == 1 + 9 + 1
    assert "1,234" in doc.text and "offset 4096" in doc.text
    assert doc.count("p", "problem") == 0  # consistent ledger: no problem line


def test_ledger_section_flags_an_inconsistent_ledger():
    bad = dict(LEDGER, packets=1300)
    assert "categories sum to 1,234, not 1,300 packets" in parse(S.ledger_section(bad)).text


def test_tiers_section_stacks_by_protocol():
    tiers = pd.DataFrame({"tier": ["well-known", "registered", "well-known", "dynamic"],
                          "proto": ["tcp", "tcp", "udp", "udp"], "flows": [50, 5, 20, 3],
                          "packets": [500, 50, 40, 6], "bytes": [9e5, 1e4, 4e3, 600],
                          "distinct_server_ports": [3, 1, 1, 2]})
    doc = parse(S.tiers_section(tiers))
    # two charts (flows, bytes), 4 non-zero (tier, proto) cells each
    assert doc.count("svg", "chart") == 2
    assert doc.count("rect", "bar") == 8
    assert "well-known / tcp: 50" in doc.titles_of("rect", "bar")
    assert "dynamic / udp: 3" in doc.titles_of("rect", "bar")


def test_services_section_bar_per_service_sorted():
    srv = pd.DataFrame({"proto": ["udp", "tcp", "tcp"], "dst_port": [53, 443, 22],
                        "service": ["domain", "https", "ssh"], "flows": [40, 90, 3]})
    doc = parse(S.services_section(srv))
    assert [t.split(":")[0] for t in doc.titles_of("rect", "bar")] == ["443/tcp https", "53/udp domain", "22/tcp ssh"]


def test_handshakes_section_outcomes_and_rtt_histograms():
    n = 40
    hs = pd.DataFrame({"outcome": ["complete"] * 30 + ["rejected"] * 6 + ["unanswered"] * 4,
                       "syn_retries": [0] * 36 + [2] * 4})
    rtt = np.full(n, np.nan)
    rtt[:30] = np.linspace(0.001, 0.030, 30)
    hs["rtt_server"] = rtt
    hs["rtt_client"] = rtt / 10
    hs["rtt_total"] = rtt * 1.1
    doc = parse(S.handshakes_section(hs))
    charts = doc.find("svg", "chart")
    assert len(charts) == 3  # outcomes, server RTT, client RTT
    outcome_bars = [t for t in doc.titles_of("rect", "bar") if not t[0].isdigit()]
    assert outcome_bars == ["complete: 30", "rejected: 6", "unanswered: 4"]
    hist_counts = [int(t.rsplit(": ", 1)[1]) for t in doc.titles_of("rect", "bar") if t[0].isdigit()]
    assert sum(hist_counts) == 60  # 30 server + 30 client RTTs
    assert "4 of 40 TCP flows retried their SYN (8 retries in all)" in doc.text
    assert "15.5 ms" in doc.text  # server RTT median of 1..30 ms


def test_ephemeral_section_one_panel_per_busy_client_capped():
    clients = [f"10.0.0.{i}" for i in range(1, 9)]
    eph = pd.DataFrame({"client_ip": clients, "connections": [50, 40, 30, 25, 22, 21, 20, 1],
                        "range": "linux", "allocation": "per-destination"})
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    rows = []
    for c, n in zip(clients, eph["connections"]):
        for k in range(n):
            rows.append((c, t0 + pd.Timedelta(seconds=k), 40000 + 2 * k, f"192.0.2.{k % 3}:443"))
    pts = pd.DataFrame(rows, columns=["client_ip", "ts", "src_port", "dst"])
    doc = parse(S.ephemeral_section(eph, pts))
    panels = doc.find("svg", "scatter")
    assert len(panels) == S.MAX_PANELS == 6
    assert doc.count("circle", "pt") == 50 + 40 + 30 + 25 + 22 + 21
    assert "10.0.0.1: 50 connections — per-destination, range linux" in doc.text


def test_ephemeral_panel_thins_huge_clients():
    n = S.MAX_POINTS * 3
    eph = pd.DataFrame({"client_ip": ["10.0.0.1"], "connections": [n], "allocation": ["sequential"],
                        "range": ["linux"]})  # the columns the section reads, as analysis.ephemeral documents them
    pts = pd.DataFrame({"client_ip": "10.0.0.1",
                        "ts": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.arange(n), unit="s"),
                        "src_port": 32768 + np.arange(n) % 28000, "dst": "192.0.2.1:80"})
    doc = parse(S.ephemeral_section(eph, pts))
    assert doc.count("circle", "pt") == S.MAX_POINTS
    assert f"{n:,} connections, {S.MAX_POINTS:,} shown" in doc.text


def test_exposure_section_states_per_host():
    exp = pd.DataFrame({"dst_ip": ["192.0.2.1"] * 4 + ["192.0.2.2"],
                        "dst_port": [22, 80, 443, 8080, 22], "proto": "tcp",
                        "state": ["open", "open", "closed", "filtered", "open"],
                        "tier": ["well-known"] * 4 + ["well-known"], "service": ["ssh", "http", "https", "http-alt", "ssh"],
                        "attempts": [3, 4, 1, 2, 1], "clients": [1, 2, 1, 1, 1]})
    doc = parse(S.exposure_section(exp))
    assert sorted(doc.titles_of("rect", "bar")) == sorted(
        ["192.0.2.1 / open: 2", "192.0.2.1 / closed: 1", "192.0.2.1 / filtered: 1", "192.0.2.2 / open: 1"])
    assert "http-alt" in doc.text


@pytest.mark.parametrize("fn,args,message", [
    (S.tiers_section, (pd.DataFrame(),), "no TCP or UDP flows"),
    (S.services_section, (pd.DataFrame(),), "no TCP or UDP flows"),
    (S.handshakes_section, (pd.DataFrame(),), "no TCP handshakes in this capture"),
    (S.ephemeral_section, (pd.DataFrame(), None), "no client connections"),
    (S.exposure_section, (pd.DataFrame(),), "no connection attempts"),
    (S.scans_section, (pd.DataFrame(),), "no scans detected"),
    (S.ledger_section, (None,), "no packet ledger"),
])
def test_every_section_says_when_it_is_empty(fn, args, message):
    doc = parse(fn(*args))
    assert message in doc.text
    assert doc.count("rect", "bar") == 0


def test_top_flows_are_the_largest_by_bytes():
    rows = [(i, "tcp", "10.0.0.1", 40000 + i, "192.0.2.1", 443, "SF", 10, 10, 100 * i, 1000 * i)
            for i in range(40)]
    doc = parse(S.top_flows_section(flow_frame(rows), n=5))
    body_rows = [e for e in doc.find("tr") if e["section"] == "topflows"][1:]
    assert len(body_rows) == 5
    ports = [int(v) for v in re.findall(r"\b400(\d\d)\b", doc.text)]
    assert sorted(ports, reverse=True)[:5] == [39, 38, 37, 36, 35]


# ------------------------------------------------------------------ the page


def test_empty_flow_table_renders_every_section_with_a_note():
    empty = flow_frame([])
    html = render_html(empty, ledger={**dict.fromkeys(LEDGER, 0), "packets": 0, "damage": []}, title="empty")
    doc = parse(html)
    ids = [e["attrs"]["id"] for e in doc.find("section")]
    assert ids == [sid for sid, _ in SECTIONS]
    for sid, msg in [("handshakes", "no TCP handshakes in this capture"), ("topflows", "no flows"),
                     ("scans", "no scans"), ("ephemeral", "no client connections")]:
        assert msg in section_text(html, sid)
    assert external_refs(html) == []
    assert doc.count("script") == 1 and doc.count("style") == 1
