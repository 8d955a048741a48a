"""The report puts findings first: summary box, one row cap with every row in the page, rankings
that put answered/open items first, shares that never read 0% for a non-zero count, services
ranked across protocols, ``--top`` as in the CLI, the time span and the list of captures.

Expected values come from how the inputs were built (frames by hand, dpkt captures) and from
sample_pcaps/README.md (scan.pcap: 99 closed ports and port 80 open on 10.99.0.1, scanned by 10.99.0.3).
"""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

import flowkit.analysis as A
from analysisgen import frame, tcp, udp
from conftest import SAMPLES
from flowkit.report import html as H
from flowkit.report import render_html, sections as S
from test_report_html import flow_frame, parse, section_text


@pytest.mark.parametrize("value, text", [(0, "0%"), (5 / 1000, "0.5%"), (1 / 10_000, "<0.1%"), (0.25, "25.0%"),
                                         (9_999 / 10_000, ">99.9%"), (1.0, "100%"), (float("nan"), "")])
def test_share_never_rounds_a_nonzero_count_to_zero(value, text):
    assert H.share(value) == text


def test_scans_table_shows_five_rejected_of_a_thousand():
    scans = pd.DataFrame({"src_ip": ["10.0.0.3"], "kind": ["horizontal"], "target": ["22/tcp"], "attempts": [1000],
                          "failed": [1000], "answered": [0], "share_unanswered": [995 / 1000],
                          "share_rejected": [5 / 1000], "span": [12.0]})
    text = section_text(S.scans_section(scans), "scans")
    assert "0.5%" in text and "99.5%" in text
    assert not re.search(r"(?<![.\d])0%", text)


# ---------------------------------------------------------------- one row cap, every row in the page


def _rows(html: str) -> tuple[list[dict], list[dict]]:
    doc = parse(html)
    rows = [e for e in doc.find("tr") if e["parent"] and e["parent"]["tag"] == "tbody"]
    return [r for r in rows if "x" not in r["cls"]], [r for r in rows if "x" in r["cls"]]


def test_every_table_caps_at_one_count_and_holds_every_row():
    df = pd.DataFrame({"n": np.arange(100), "name": [f"r{i}" for i in range(100)]})
    html = H.table(df, name="t")
    shown, hidden = _rows(html)
    assert len(shown) == H.ROW_CAP == 25 and len(hidden) == 75
    assert "showing 25 of 100 rows" in re.sub(r"<[^>]+>", "", html)
    assert 'class="expand">show all 100</button>' in html and 'class="csv">CSV</button>' in html
    assert 'data-name="t"' in html
    small = H.table(df.head(10))
    assert _rows(small) == (_rows(small)[0], []) and len(_rows(small)[0]) == 10 and "show all" not in small


def test_huge_tables_hold_a_bounded_number_of_rows_and_say_so():
    df = pd.DataFrame({"n": np.arange(H.MAX_EMBED + 500)})
    html = H.table(df)
    shown, hidden = _rows(html)
    assert len(shown) + len(hidden) == H.MAX_EMBED
    assert f"of {H.MAX_EMBED + 500:,} rows" in html and "--json" in html


def test_csv_cells_hold_raw_numbers():
    df = pd.DataFrame({"bytes": [1_234_567], "share": [0.005]})
    html = H.table(df, formats={"bytes": H.human_bytes, "share": H.share})
    assert 'data-c="1234567">1.2 MB</td>' in html and 'data-c="0.005">0.5%</td>' in html


# ---------------------------------------------------------------- answered and open first


def _scan_with_three_open(n_closed: int = 1000) -> pd.DataFrame:
    """One scanner over ``n_closed`` closed ports (2 SYNs each) of a host, 3 of its ports open (1 connection)."""
    rows = []
    for p in range(1, n_closed + 1):
        rows += [tcp(f"10.0.0.3:{30000 + k} > 10.1.0.1:{p}", "rejected", t=p + k * 0.1) for k in range(2)]
    for i, p in enumerate((22, 80, 443)):
        rows.append(tcp(f"10.0.0.9:{50000 + i} > 10.1.0.1:{20000 + p}", "complete", t=2000 + i))
    return frame(rows)


def test_handshake_servers_put_the_open_ports_first():
    df = _scan_with_three_open()
    html = S.handshakes_section(A.handshakes(df), A.handshake_summary(df), A.handshake_servers(df))
    text = section_text(html, "handshakes")
    first_rows = re.findall(r"10\.1\.0\.1\s+(\d+)\s+(\d+)\s+(\d+)", text)[:4]
    assert [int(p) for p, _, _ in first_rows[:3]] == [20022, 20080, 20443]
    assert int(first_rows[3][0]) < 20000  # then the scanned ports


def test_exposure_lists_open_then_closed_then_filtered():
    df = _scan_with_three_open(200)
    df = pd.concat([df, frame([tcp("10.0.0.4:40000 > 10.1.0.2:9999", "unanswered", t=5, retries=3)])])
    exp = A.exposure(df)
    html = S.exposure_section(exp)
    cells = re.findall(r"<tr[^>]*><td>(10\.1\.0\.\d)</td><td[^>]*>(\d+)</td><td>tcp</td><td>(\w+)</td>", html)
    per_port = [s for _, _, s in cells][-len(exp):]
    assert per_port[:3] == ["open"] * 3
    assert per_port[3:-1] == ["closed"] * 200 and per_port[-1] == "filtered"


# ---------------------------------------------------------------- services and --top


def test_report_services_ranked_across_protocols_as_the_cli(run, tmp_path):
    rows = [tcp(f"10.0.0.3:{40000 + p} > 10.1.0.1:{p}", "rejected", t=p) for p in range(1, 17)]
    rows += [udp(f"10.0.0.9:{41000 + i} > 10.1.0.53:53", t=i) for i in range(13)]
    parquet = tmp_path / "flows.parquet"
    frame(rows).to_parquet(parquet)
    rc, out, err = run("ports", parquet, "--top", "4", "--json")
    assert rc == 0, err
    cli = [(r["proto"], r["dst_port"]) for r in map(json.loads, out.splitlines()) if r["table"] == "services"]
    assert cli == [("udp", 53), ("tcp", 1), ("tcp", 2), ("tcp", 3)]
    page = tmp_path / "r.html"
    assert run("report", parquet, "-o", page, "--top", "4", "-q")[0] == 0
    html = page.read_text()
    services = re.search(r'<section id="services">(.*?)</section>', html, re.S).group(1)
    listed = re.findall(r"<tr><td>(tcp|udp)</td><td[^>]*>(\d+)</td>", services)
    assert [(p, int(n)) for p, n in listed] == cli


# ---------------------------------------------------------------- findings first


def test_findings_come_first_with_the_scan_and_port_states(run, tmp_path):
    page = tmp_path / "scan.html"
    assert run("report", SAMPLES / "scan.pcap", "-o", page, "-q")[0] == 0
    html = page.read_text()
    main = html[html.index("<main>"):]
    assert main.index('<section id="findings"') < main.index('<section id="overview"') < main.index('id="scans"')
    text = section_text(html.replace('<section id="findings" class="findings">', '<section id="findings">'), "findings")
    text = re.sub(r"\s+", " ", text)
    assert "10.99.0.3 → 10.99.0.1 (vertical, 100 attempts, 99 failed)" in text
    assert "1 open, 99 closed, 0 filtered" in text and "10.99.0.1:80/tcp http" in text
    assert "0 of 100 connection attempts got no answer (0%)" in text and "99 rejected" in text
    assert "none: every record was read" in text
    assert "by IP bytes sent and received: 10.99.0.1" in text and "10.99.0.3" in text.split("received:")[1]
    assert "(100 flows)" in text.split("received:")[1]


def test_findings_name_damage_and_crafted_ports():
    df = _scan_with_three_open(30)
    ledger = {"packets": 10, "tcp": 10, "udp": 0, "damage": ["cut.pcap: offset 4096: record length 70000"]}
    eph = pd.DataFrame({"client_ip": ["10.9.9.9"], "allocation": ["fixed"], "distinct_ports": [12],
                        "connections": [1994]})
    text = re.sub(r"<[^>]+>", " ", S.findings(df, ledger, A.exposure(df), A.scans(df), eph))
    assert "1 damaged record: cut.pcap: offset 4096" in text
    assert "10.9.9.9 (12 ports for 1,994 connections)" in text
    assert "3 open, 30 closed, 0 filtered" in text


# ---------------------------------------------------------------- overview: span and captures


def test_time_span_leaves_out_unset_clocks():
    rows = [(t, "tcp", "10.0.0.1", 40000, "192.0.2.1", 80, "SF", 1, 1, 40, 40) for t in (0, 1, 2)]
    df = flow_frame(rows)
    odd = df.iloc[:2].copy()
    odd["ts_start"] = [pd.Timestamp(0, tz="UTC"), pd.Timestamp("2031-10-17", tz="UTC")]
    odd["ts_end"] = odd["ts_start"] + pd.Timedelta(seconds=1)
    text = re.sub(r"<[^>]+>", " ", S.time_span(pd.concat([df, odd], ignore_index=True)))
    assert text.startswith("2024-03-01 12:00:00.000 → 12:00:03.000 UTC (3.000 s)")
    assert "2 flows with implausible timestamps" in text and "1970-01-01 … 2031-10-17" in text


def test_capture_names_are_whole_with_their_directory_once():
    sources = [f"/data/sensors/site-a/eth0/capture-{i:03d}-with-a-long-name.pcap" for i in range(3)]
    html = S.overview(flow_frame([]), None, sources)
    assert html.count("/data/sensors/site-a/eth0") == 1 + 3  # shown once, and in each name's title
    spans = re.findall(r'<span class="path" title="([^"]+)">([^<]+)</span>', html)
    assert spans == [(s, s.rsplit("/", 1)[1]) for s in sources]
    assert "3 captures" in html.upper() or "3 CAPTURES" in html.upper()


def test_exposure_chart_keeps_the_hosts_with_open_ports():
    # 13 hosts probed on 5 closed ports each, and one host with a single open port: 14 hosts, 12 bars
    rows = [tcp(f"10.0.0.3:{30000 + 10 * h + p} > 10.2.0.{h}:{p}", "rejected", t=h + p / 10)
            for h in range(1, 14) for p in range(1, 6)]
    rows.append(tcp("10.0.0.9:50000 > 10.2.0.99:443", "complete", t=50))
    doc = parse(S.exposure_section(A.exposure(frame(rows))))
    bars = doc.titles_of("rect", "bar")
    assert "10.2.0.99 / open: 1" in bars
    assert len({t.split(" / ")[0] for t in bars}) == 12
