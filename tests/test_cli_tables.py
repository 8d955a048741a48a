"""Terminal tables: nothing cut, columns give way in the documented order, one format per column."""
from __future__ import annotations

import io
import json
import re

import pandas as pd
import pytest

from conftest import SAMPLES
from flowkit import render, views

HTTP = SAMPLES / "http.pcap"
MIXED = SAMPLES / "mixed.pcap"

# docs/cli.md, "Terminal tables": the order in which flows columns give way
FLOWS_DROP_ORDER = ["history", "duration", "src_pkts", "dst_pkts", "src_payload_bytes", "dst_payload_bytes",
                    "ts_start", "conn_state"]


def flows_frame(src_ip="192.168.100.200", dst_ip="172.16.254.254", rows=3) -> pd.DataFrame:
    ts = pd.to_datetime([1795554501_774267000 + i * 1_000_000 for i in range(rows)], utc=True)
    return pd.DataFrame({
        "ts_start": ts, "proto": ["tcp"] * rows, "src_ip": [src_ip] * rows,
        "src_port": pd.array([50000 + i for i in range(rows)], dtype="uint16"), "dst_ip": [dst_ip] * rows,
        "dst_port": pd.array([8080] * rows, dtype="uint16"), "conn_state": ["SF"] * rows,
        "history": ["ShADadFf"] * rows, "src_pkts": pd.array([1234567] * rows, dtype="uint64"),
        "dst_pkts": pd.array([5] * rows, dtype="uint64"),
        "src_payload_bytes": pd.array([116] * rows, dtype="uint64"),
        "dst_payload_bytes": pd.array([231] * rows, dtype="uint64"), "duration": [0.5, 0.000001, 1.25][:rows],
    })


def table_text(df, view=views.FLOWS, **kwargs) -> str:
    out = io.StringIO()
    render.print_table(df, view, stream=out, **kwargs)
    return out.getvalue()


def header_and_rows(text: str) -> tuple[list[str], list[list[str]]]:
    """The header's words and each row's words, up to the footer ``N of M rows``."""
    lines = text.splitlines()
    end = next(i for i, line in enumerate(lines) if re.match(r"[\d,]+ of [\d,]+ ", line))
    return lines[0].split(), [line.split() for line in lines[1:end]]


def hidden(text: str) -> list[str]:
    """The columns the note under the footer names (it may wrap)."""
    if "not shown at " not in text:
        return []
    note = " ".join(text.split("not shown at ")[1].split())
    return [n.strip() for n in note.split(": ", 1)[1].split(" (--wide")[0].split(",")]


@pytest.mark.parametrize("width", [60, 80, 100, 120, 160])
def test_addresses_and_ports_are_never_cut(width):
    df = flows_frame()
    text = table_text(df, width=width)
    _, rows = header_and_rows(text)
    for row, (_, flow) in zip(rows, df.iterrows()):
        for value in (flow.src_ip, str(flow.src_port), flow.dst_ip, str(flow.dst_port)):
            assert value in row, (value, row)
    assert all("…" not in line for line in text.splitlines())


def test_columns_give_way_in_the_documented_order():
    df = flows_frame()
    seen = []
    for width in range(200, 40, -1):
        gone = hidden(table_text(df, width=width))
        assert gone == FLOWS_DROP_ORDER[:len(gone)], (width, gone)  # always a prefix of the order
        seen.append(len(gone))
        header, _ = header_and_rows(table_text(df, width=width))
        table_lines = table_text(df, width=width).splitlines()[:1 + len(df)]
        if len(header) > 5:  # while more than the keys remain, the table fits
            assert max(map(len, table_lines)) <= width, width
    assert seen == sorted(seen) and seen[-1] == len(FLOWS_DROP_ORDER)


def test_the_keys_stay_when_nothing_else_fits():
    v6a, v6b = "2001:db8:85a3:1234:5678:8a2e:370:7334", "2001:db8:ffff:ffff:ffff:ffff:ffff:fffe"
    text = table_text(flows_frame(v6a, v6b), width=40)
    header, rows = header_and_rows(text)
    assert header == ["proto", "src_ip", "sport", "dst_ip", "dport"]  # the five keys, short names
    assert rows[0] == ["tcp", v6a, "50000", v6b, "8080"]  # wider than 40 columns, whole


def test_wide_and_pipes_keep_every_column():
    df = flows_frame()
    for text in (table_text(df, width=80, wide=True), table_text(df)):  # a StringIO is no terminal
        header, _ = header_and_rows(text)
        assert header == list(views.FLOWS.columns)
        assert "not shown" not in text


def test_counts_have_thousands_separators_identifiers_do_not():
    _, rows = header_and_rows(table_text(flows_frame(), wide=True))
    cells = dict(zip(views.FLOWS.columns[1:], rows[0][2:]))  # the date and time are two words
    assert cells["src_pkts"] == "1,234,567" and cells["dst_pkts"] == "5"
    assert cells["src_port"] == "50000" and cells["dst_port"] == "8080"


def test_one_precision_per_column():
    _, rows = header_and_rows(table_text(flows_frame(), wide=True))
    # 0.5 s, 1 microsecond and 1.25 s: all with the microseconds of the capture
    assert [r[-1] for r in rows] == ["0.500000", "0.000001", "1.250000"]
    shares = pd.DataFrame({"outcome": ["a", "b", "c"], "share": [0.5, 0.00002, 0.0]})
    _, rows = header_and_rows(table_text(shares, None))
    # percentages; 2 in 100,000 is not rounded to 0 and sets the precision of the whole column
    assert [r[1] for r in rows] == ["50.000%", "0.002%", "0.000%"]


def test_timestamps_lose_their_date_only_within_one_day():
    df = flows_frame()
    text = table_text(df, width=120)
    _, rows = header_and_rows(text)
    assert rows[0][0] == "21:08:21.774267"  # 1795554501.774267 s is 2026-11-24 21:08:21.774267 UTC
    assert "times UTC on 2026-11-24" in text.splitlines()[len(df) + 1]
    two_days = df.assign(ts_start=pd.to_datetime([1795554501_774267000, 1795640901_774267000,
                                                  1795640901_774267123], utc=True))
    _, rows = header_and_rows(table_text(two_days, width=120))
    assert rows[1][:2] == ["2026-11-25", "21:08:21.774267000"]  # one value has nanoseconds: all get 9 digits


# ----------------------------------------------------------------------------- options of the commands
def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_sort_descending_and_ascending(run):
    rc, out, _ = run("flows", HTTP, "--json")
    flows = json_lines(out)
    rc, out, _ = run("flows", HTTP, "--json", "--sort", "-dst_payload_bytes,src_port")
    ordered = json_lines(out)
    assert rc == 0 and sorted(map(json.dumps, ordered)) == sorted(map(json.dumps, flows))  # the same rows
    keys = [(-r["dst_payload_bytes"], r["src_port"]) for r in ordered]
    assert keys == sorted(keys)
    rc, out, _ = run("flows", HTTP, "--sort", "src_port", "-n", "2")
    _, rows = header_and_rows(out)
    ports = sorted(r["src_port"] for r in flows)[:2]
    assert [int(r[4]) for r in rows] == ports  # date, time, proto, src_ip, src_port


def test_fields_choose_and_order_columns(run):
    rc, out, _ = run("flows", HTTP, "--json", "--fields", "dst_port,src_ip,community_id")
    rows = json_lines(out)
    assert rc == 0 and [list(r) for r in rows] == [["dst_port", "src_ip", "community_id"]] * 6
    rc, out, _ = run("flows", HTTP, "--fields", "community_id,dst_port")
    header, _ = header_and_rows(out)
    assert header == ["community_id", "dst_port"]


@pytest.mark.parametrize("option", ["--fields", "--sort"])
def test_unknown_column_is_a_usage_error(run, option):
    rc, _, err = run("flows", HTTP, option, "nope")
    assert rc == 2 and "no column 'nope'" in err and "src_ip" in err


def test_ports_fields_apply_to_the_tables_that_have_them(run):
    rc, out, _ = run("ports", MIXED, "--json", "--fields", "service,flows")
    rows = json_lines(out)
    tiers = [r for r in rows if r["table"] == "tiers"]
    services = [r for r in rows if r["table"] == "services"]
    assert {tuple(r) for r in tiers} == {("flows", "table")}
    assert {tuple(r) for r in services} == {("service", "flows", "table")}
