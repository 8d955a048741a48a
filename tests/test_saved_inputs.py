"""Saved flows as input: Zeek conn.logs (TSV, JSON, gzip), flow Parquet files, batch datasets.

Zeek's own baselines (../shared/corpus/zeek/baselines) are the conn.logs; their timestamps are
masked by Zeek's test tooling, so the tests fill in made-up times (one second apart) in a copy.
Where flowkit's flow table matches Zeek's row for row (docs/conformance.md: ssh and ftp traces),
every analysis on the conn.log must equal the same analysis on the trace.
"""
from __future__ import annotations

import csv
import gzip
import json
import re

import numpy as np
import pandas as pd
import pytest

import flowkit
from flowkit.flows.schema import zeek_proto
import flowkit.analysis as A
from conftest import CORPUS, SAMPLES

ZEEK = CORPUS / "zeek"
MASK = re.compile(r"XXXXXXXXXX\.XXXXXX")
T0 = 1_600_000_000
# traces whose conn.log flowkit reproduces on every compared row (docs/conformance.md)
MATCHING = ["scripts.base.protocols.ssh.basic", "scripts.base.protocols.ssh.half-duplex-client",
            "scripts.base.protocols.ftp.ftp-ipv4", "scripts.base.protocols.ftp.ftp-ipv6"]  # fmt: skip


def _conformance() -> dict:
    return json.loads((ZEEK / "conformance.json").read_text())


def unmasked(test: str, tmp_path):
    """A copy of the test's baseline with each masked ts replaced by T0 + row number (seconds)."""
    text = (ZEEK / "baselines" / test / "conn.log").read_text()
    counter = iter(range(10**6))
    text = MASK.sub(lambda m: f"{T0 + next(counter)}.000000", text)
    out = tmp_path / f"{test}.log"
    out.write_text(text)
    return out


def zeek_rows(path) -> list[dict]:
    """The data rows of a Zeek TSV log as dicts, read with the csv module (field names from #fields)."""
    fields, rows = None, []
    with open(path, newline="") as f:
        for line in f:
            if line.startswith("#fields"):
                fields = line.rstrip("\n").split("\t")[1:]
            elif not line.startswith("#") and fields:
                rows.append(dict(zip(fields, next(csv.reader([line.rstrip("\n")], delimiter="\t")))))
    return rows


def full_baselines() -> list[str]:
    if not ZEEK.is_dir():
        return []
    return sorted(p.parent.name for p in (ZEEK / "baselines").glob("*/conn.log")
                  if "#fields\tts\tuid\tid.orig_h" in p.read_text() or "\tts\tuid\tid.orig_h" in p.read_text())


def zeek_frame(path) -> pd.DataFrame:
    from flowkit.saved import read_saved

    return read_saved([str(path)]).table.to_pandas()


# ---------------------------------------------------------------- every baseline reads and analyses run


@pytest.mark.corpus
@pytest.mark.parametrize("test", full_baselines())
def test_baseline_reads_and_every_analysis_runs(test, tmp_path, corpus):
    path = unmasked(test, tmp_path)
    rows = zeek_rows(path)
    df = zeek_frame(path)
    assert len(df) == len(rows)  # every protocol, as flowkit's own tables
    for r, (_, f) in zip(rows, df.iterrows()):
        assert (f["src_ip"], f["src_port"], f["dst_ip"], f["dst_port"], zeek_proto(f["proto"])) == (
            r["id.orig_h"], int(r["id.orig_p"]), r["id.resp_h"], int(r["id.resp_p"]), r["proto"])
        if "ip_proto" in r:
            assert f["ip_proto"] == int(r["ip_proto"])
        assert (f["src_pkts"], f["dst_pkts"], f["src_ip_bytes"], f["dst_ip_bytes"]) == (
            int(r["orig_pkts"]), int(r["resp_pkts"]), int(r["orig_ip_bytes"]), int(r["resp_ip_bytes"]))
        assert f["conn_state"] == r["conn_state"]
        assert f["history"] == ("" if r["history"] == "-" else r["history"])
        assert f["src_payload_bytes"] == (0 if r["orig_bytes"] == "-" else int(r["orig_bytes"]))
        dur = 0.0 if r["duration"] == "-" else float(r["duration"])
        assert f["duration"] == dur
        assert (f["ts_end"] - f["ts_start"]).value == round(dur * 1e6) * 1000
    for fn in (A.port_tiers, A.services, A.ephemeral, A.exposure, A.scans, A.handshakes):
        fn(df)


# ---------------------------------------------------------------- the same answers as on the trace

EXPOSURE_COLS = ["dst_ip", "dst_port", "proto", "state", "attempts", "answered", "rejected", "unanswered", "clients"]


@pytest.mark.corpus
@pytest.mark.parametrize("test", MATCHING)
def test_analyses_on_the_conn_log_equal_those_on_the_trace(test, tmp_path, corpus):
    trace = ZEEK / "traces" / _conformance()[test]["trace"]
    ours = flowkit.flows(str(trace)).to_pandas()
    theirs = zeek_frame(unmasked(test, tmp_path))
    assert len(ours) == len(theirs)

    def key(df):
        return df.sort_values(list(df.columns)).reset_index(drop=True)

    pd.testing.assert_frame_equal(A.port_tiers(ours), A.port_tiers(theirs))
    pd.testing.assert_frame_equal(key(A.services(ours)), key(A.services(theirs)))
    exp_ours, exp_theirs = A.exposure(ours)[EXPOSURE_COLS], A.exposure(theirs)[EXPOSURE_COLS]
    pd.testing.assert_frame_equal(key(exp_ours.astype({"state": str})), key(exp_theirs.astype({"state": str})))
    five = ["src_ip", "src_port", "dst_ip", "dst_port"]
    hs = lambda df: key(A.handshakes(df)[[*five, "outcome"]].astype({"outcome": str}))  # noqa: E731
    pd.testing.assert_frame_equal(hs(ours), hs(theirs))
    if "half-duplex" not in test:  # both directions seen: the history letters were read
        assert (A.handshakes(theirs)["outcome"] == "complete").sum() > 0
    # what a conn.log cannot tell stays unknown rather than made up
    assert A.handshakes(theirs)["rtt_server"].isna().all()
    # Community ID from the five-tuple, as for the capture
    cid = lambda df: sorted(df["community_id"])  # noqa: E731
    assert cid(ours) == cid(theirs)


@pytest.mark.corpus
def test_community_id_matches_the_reference_package(tmp_path, corpus):
    communityid = pytest.importorskip("communityid")
    cid = communityid.CommunityID()
    df = zeek_frame(unmasked("scripts.base.protocols.ftp.ftp-ipv6", tmp_path))
    df = pd.concat([df, zeek_frame(unmasked("scripts.base.protocols.ssh.basic", tmp_path))])
    for _, r in df.iterrows():
        proto = communityid.PROTO_TCP if r["proto"] == "tcp" else communityid.PROTO_UDP
        tpl = communityid.FlowTuple(proto, r["src_ip"], r["dst_ip"], int(r["src_port"]), int(r["dst_port"]))
        assert r["community_id"] == cid.calc(tpl)


# ---------------------------------------------------------------- encodings Zeek writes


def _as_zeek_json(rows: list[dict], ts_format: str = "epoch") -> str:
    """Zeek's JSON writer: one object per line, numbers as numbers, unset fields left out, sets as lists."""
    counts = {"id.orig_p", "id.resp_p", "orig_bytes", "resp_bytes", "missed_bytes", "orig_pkts", "orig_ip_bytes",
              "resp_pkts", "resp_ip_bytes", "ip_proto"}  # fmt: skip
    lines = []
    for r in rows:
        obj = {}
        for k, v in r.items():
            if v == "-":
                continue
            if k == "ts":
                t = float(v)
                obj[k] = (t if ts_format == "epoch" else int(round(t * 1000)) if ts_format == "millis"
                          else pd.Timestamp(t, unit="s", tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
            elif k == "duration":
                obj[k] = float(v)
            elif k in counts:
                obj[k] = int(v)
            elif k in ("local_orig", "local_resp"):
                obj[k] = v == "T"
            elif k == "tunnel_parents":
                obj[k] = [] if v == "(empty)" else v.split(",")
            else:
                obj[k] = v
        lines.append(json.dumps(obj))
    return "\n".join(lines) + "\n"


@pytest.mark.corpus
@pytest.mark.parametrize("ts_format", ["epoch", "millis", "iso8601"])
def test_json_log_reads_as_the_tsv_log(ts_format, tmp_path, corpus):
    tsv = unmasked("scripts.base.protocols.ssh.basic", tmp_path)
    # sub-second times, as real logs have: the JSON forms must keep the microseconds
    text = re.sub(r"^(\d{10})\.000000", lambda m: f"{m.group(1)}.123456", tsv.read_text(), flags=re.M)
    tsv.write_text(text)
    js = tmp_path / "conn.json"
    js.write_text(_as_zeek_json(zeek_rows(tsv), ts_format))
    a, b = zeek_frame(tsv), zeek_frame(js)
    if ts_format == "millis":  # JSON::TS_MILLIS keeps milliseconds only
        a["ts_start"] = a["ts_start"].dt.floor("ms")
        a["ts_end"] = a["ts_start"] + pd.to_timedelta(a["duration"], unit="s").dt.round("us")
        a["syn_ts"] = a["syn_ts"].dt.floor("ms")
    pd.testing.assert_frame_equal(a, b)
    assert a["ts_start"].iloc[0].microsecond % 1000 == (456 if ts_format != "millis" else 0)


@pytest.mark.corpus
def test_gzip_and_concatenated_logs(tmp_path, corpus):
    a = unmasked("scripts.base.protocols.ftp.ftp-ipv4", tmp_path)
    b = unmasked("scripts.base.protocols.ssh.basic", tmp_path)
    both = tmp_path / "both.log.gz"  # rotated logs joined: each keeps its own header block
    both.write_bytes(gzip.compress(a.read_bytes() + b.read_bytes()))
    df = zeek_frame(both)
    assert len(df) == len(zeek_rows(a)) + len(zeek_rows(b)) == 5 + 25


def test_masked_or_bad_values_name_the_line(tmp_path, run):
    log = tmp_path / "conn.log"
    header = ("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n"
              "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tduration\n"
              "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tinterval\n")
    log.write_text(header + "1.5\tC1\t10.0.0.1\t1234\t10.0.0.2\t80\ttcp\t-\n"
                   "XXXXXXXXXX.XXXXXX\tC2\t10.0.0.1\t1235\t10.0.0.2\t80\ttcp\t-\n")
    rc, out, err = run("ports", log)
    assert rc == 1 and out == ""
    assert err.strip() == f"flowkit: {log}: line 9: ts 'XXXXXXXXXX.XXXXXX' is not a Zeek time"
    log.write_text(header + "1.5\tC1\t10.0.0.1\thttp\t10.0.0.2\t80\ttcp\t-\n")
    rc, _, err = run("exposure", log)
    assert rc == 1 and err.strip() == f"flowkit: {log}: line 8: id.orig_p 'http' is not a number"


def test_zeek_cut_extract_without_headers_is_refused(tmp_path, run):
    log = tmp_path / "conn.log"
    log.write_text("#separator \\x09\n#fields\tuid\thistory\nC1\tShAD\n")
    rc, _, err = run("ports", log)
    assert rc == 1 and "no ts, id.orig_h, id.orig_p, id.resp_h, id.resp_p, proto field" in err
    assert len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- the CLI on saved flows


def test_cli_reads_each_kind_of_saved_flows(run, tmp_path):
    capture = SAMPLES / "scan.pcap"
    # what the capture gives (scan.pcap: 99 REJ ports and 80 open on 10.99.0.1; README of sample_pcaps)
    rc, expected, _ = run("exposure", capture, "--json")
    assert rc == 0
    parquet, log, jsonl = tmp_path / "f.parquet", tmp_path / "f.log", tmp_path / "f.jsonl"
    for out in (parquet, log):
        assert run("flows", capture, "-o", out, "-q")[0] == 0
    assert run("batch", capture, "-o", tmp_path / "ds", "-q")[0] == 0
    for saved in (parquet, log, tmp_path / "ds"):
        rc, got, err = run("exposure", saved, "--json")
        assert rc == 0, err
        assert [json.loads(x)["state"] for x in got.splitlines()] == [json.loads(x)["state"] for x in expected.splitlines()]
        assert sum(json.loads(x)["state"] == "closed" for x in got.splitlines()) == 99
    # flows re-reads and converts saved flows: conn.log -> Parquet keeps the counts and flow ids
    rc, _, err = run("flows", log, "-o", jsonl, "-q")
    assert rc == 0, err
    back = pd.read_json(jsonl, lines=True)
    orig = pd.read_parquet(parquet)
    assert len(back) == len(orig) == 100
    assert (back["flow_id"].astype("uint64").to_numpy() == orig["flow_id"].to_numpy()).all()
    assert (back["src_pkts"].to_numpy() == orig["src_pkts"].to_numpy()).all()
    rc, out, _ = run("flows", tmp_path / "ds", "-n", "3")
    assert rc == 0 and "of 100 flows" in out


def test_saved_and_captures_cannot_be_mixed(run, tmp_path):
    parquet = tmp_path / "f.parquet"
    assert run("flows", SAMPLES / "dns.pcap", "-o", parquet, "-q")[0] == 0
    rc, _, err = run("ports", parquet, SAMPLES / "dns.pcap")
    assert rc == 2 and "not both" in err


def test_fixed_source_ports_in_a_conn_log(tmp_path, run):
    """A scanner's probes from a handful of source ports, as a Zeek conn.log lists them."""
    rng = np.random.default_rng(3)
    lines = ["#separator \\x09", "#unset_field\t-",
             "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tduration\tconn_state\thistory"
             "\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes"]  # fmt: skip
    for i in range(600):
        port = 36050 + int(rng.integers(0, 6))
        lines.append(f"{T0 + i * 0.01:.6f}\tC{i}\t10.9.9.9\t{port}\t192.0.2.1\t{1 + i}\ttcp\t0.000100\tREJ\tSr"
                     "\t1\t44\t1\t40")
    log = tmp_path / "scan.log"
    log.write_text("\n".join(lines) + "\n")
    rc, out, err = run("ephemeral", log, "--json")
    assert rc == 0, err
    row = json.loads(out.splitlines()[0])
    assert (row["allocation"], row["connections"], row["distinct_ports"]) == ("fixed", 600, 6)
    rc, out, _ = run("scans", log, "--json")
    row = json.loads(out.splitlines()[0])
    assert (row["kind"], row["target"], row["failed"]) == ("vertical", "192.0.2.1", 600)


@pytest.mark.corpus
def test_conn_log_written_back_as_a_zeek_log_reads_the_same(run, tmp_path, corpus):
    log = unmasked("scripts.base.protocols.ftp.ftp-ipv6", tmp_path)
    out = tmp_path / "again.log"
    rc, _, err = run("flows", log, "-o", out, "-q")
    assert rc == 0, err
    rows = zeek_rows(out)
    assert {r["uid"] for r in rows} == {"-"}  # Zeek's random uids are not kept, and none is made up
    pd.testing.assert_frame_equal(zeek_frame(out), zeek_frame(log))
