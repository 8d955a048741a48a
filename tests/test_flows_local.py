"""local_orig / local_resp against Zeek's own conn.logs (the default local networks).

Truth: every row of the Zeek baselines in ../shared/corpus/zeek, written by Zeek with its
default ``Site::local_nets`` (private address space counted as local).
"""
from __future__ import annotations

import ipaddress

import numpy as np
import pytest

from flowkit.flows.local import DEFAULT, LocalNets


def _matrix(texts):
    out = []
    for t in texts:
        ip = ipaddress.ip_address(t)
        out.append((b"\0" * 10 + b"\xff\xff" + ip.packed) if ip.version == 4 else ip.packed)
    return np.frombuffer(b"".join(out), np.uint8).reshape(-1, 16)


def _baseline_rows(corpus):
    rows = []
    for log in sorted((corpus / "zeek" / "baselines").glob("*/conn.log")):
        fields = None
        for line in log.read_text().splitlines():
            if line.startswith("#fields"):
                fields = line.split("\t")[1:]
            elif line and not line.startswith("#") and fields:
                r = dict(zip(fields, line.split("\t")))
                for side in ("orig", "resp"):
                    if r.get(f"local_{side}") in ("T", "F"):
                        rows.append((log.parent.name, r[f"id.{side}_h"], r[f"local_{side}"] == "T"))
    return rows


@pytest.mark.corpus
def test_default_matches_zeek_baselines(corpus):
    rows = _baseline_rows(corpus)
    assert len(rows) > 200
    got = DEFAULT.contains(_matrix([a for _, a, _ in rows]))
    wrong = [(t, a, want) for (t, a, want), g in zip(rows, got) if g != want]
    assert wrong == []


def test_boundaries():
    addrs = ["10.0.0.0", "10.255.255.255", "11.0.0.0", "9.255.255.255", "172.15.255.255", "172.16.0.1",
             "172.31.255.255", "172.32.0.0", "fe80::1", "febf::1", "fec0::1", "::", "::2", "2001:1ff::1",
             "2001:200::1", "255.255.255.255", "255.255.255.254"]
    want = [True, True, False, False, False, True, True, False, True, True, False, True, False, True, False,
            True, True]  # 255.255.255.254 is in 240.0.0.0/4
    assert list(DEFAULT.contains(_matrix(addrs))) == want


def test_user_networks():
    nets = LocalNets(["8.8.8.0/24", "2001:4860::/32"])
    got = nets.contains(_matrix(["8.8.8.8", "8.8.9.8", "2001:4860::8888", "10.0.0.1"]))
    assert list(got) == [True, False, True, False]


def _zeek_local(path):
    lines = path.read_text().splitlines()
    fields = next(x for x in lines if x.startswith("#fields")).split("\t")[1:]
    rows = [dict(zip(fields, x.split("\t"))) for x in lines if not x.startswith("#")]
    return {(r["id.orig_h"], r["id.resp_h"], r["local_orig"], r["local_resp"]) for r in rows}


def test_zeek_output_with_user_networks(tmp_path, run):
    import flowkit
    from flowgen import batch, pkt

    packets = [pkt(1.0, "10.0.0.1", 4000, "8.8.8.8", 53, proto="udp", payload=10),
               pkt(2.0, "8.8.4.4", 4001, "192.0.2.7", 80, "S")]
    ft = flowkit.flows([batch(packets)])
    default, mine = tmp_path / "a.log", tmp_path / "b.log"
    ft.write(str(default))
    ft.write(str(mine), local_nets=["8.8.0.0/16"])
    # default: Zeek's private space (10/8 and the 192.0.2/24 documentation block are local)
    assert _zeek_local(default) == {("10.0.0.1", "8.8.8.8", "T", "F"), ("8.8.4.4", "192.0.2.7", "F", "T")}
    assert _zeek_local(mine) == {("10.0.0.1", "8.8.8.8", "F", "T"), ("8.8.4.4", "192.0.2.7", "T", "F")}


def test_cli_local_nets(tmp_path, run):
    from conftest import SAMPLES

    out = tmp_path / "conn.log"
    rc, _, _ = run("flows", SAMPLES / "dns.pcap", "-o", out, "--local-nets", "10.99.0.2/32")
    assert rc == 0
    assert {(o, r, lo, lr) for o, r, lo, lr in _zeek_local(out) if o == "10.99.0.2"} == {
        ("10.99.0.2", "10.99.0.1", "T", "F")}
    rc, _, err = run("flows", SAMPLES / "dns.pcap", "-o", out, "--local-nets", "10.99.0.0/33")
    assert rc == 2 and "--local-nets" in err


# ----------------------------------------------------------------- the flow-table columns
def _local_packets():
    from flowgen import pkt

    # orientation is what makes local_orig the originator's: the DNS answer comes first,
    # so its sender (8.8.8.8:53, a likely server port) is the responder after the flip
    return [pkt(1.0, "8.8.8.8", 53, "10.0.0.1", 4000, proto="udp", payload=30),
            pkt(1.1, "10.0.0.1", 4000, "8.8.8.8", 53, proto="udp", payload=10),
            pkt(2.0, "8.8.4.4", 4001, "192.0.2.7", 80, "S"),
            pkt(3.0, "2001:4860::1", 5000, "fe80::2", 443, "S")]


def _local_columns(table):
    df = table.to_pandas()
    return {(r.src_ip, r.dst_ip): (r.local_orig, r.local_resp) for r in df.itertuples()}


@pytest.mark.parametrize("memory", [None, 1])
def test_flow_columns_default_and_given(memory):
    import flowkit
    from flowgen import batch

    packets = _local_packets()
    got = _local_columns(flowkit.flows([batch(packets)], memory=memory))
    assert got == {("10.0.0.1", "8.8.8.8"): (True, False), ("8.8.4.4", "192.0.2.7"): (False, True),
                   ("2001:4860::1", "fe80::2"): (False, True)}
    got = _local_columns(flowkit.flows([batch(packets)], memory=memory, local_nets=["8.8.0.0/16", "2001:4860::/32"]))
    assert got == {("10.0.0.1", "8.8.8.8"): (False, True), ("8.8.4.4", "192.0.2.7"): (True, False),
                   ("2001:4860::1", "fe80::2"): (True, False)}


def test_flow_columns_mergeable_path():
    from flowgen import batch

    from flowkit.flows import FlowOptions, accumulate

    packets = _local_packets()
    options = FlowOptions(local_nets=("10.0.0.0/8",))
    state = accumulate([batch(packets[:1])], options).merge(accumulate([batch(packets[1:], first_index=1)], options))
    assert _local_columns(state.finalize()) == {("10.0.0.1", "8.8.8.8"): (True, False),
                                                ("8.8.4.4", "192.0.2.7"): (False, False),
                                                ("2001:4860::1", "fe80::2"): (False, False)}


def test_bad_local_nets_named():
    import flowkit
    from flowgen import batch

    with pytest.raises(ValueError, match="'10.0.0.0/33'"):
        flowkit.flows([batch(_local_packets())], local_nets=["10.0.0.0/33"])


def test_zeek_output_follows_the_columns_and_reads_back(tmp_path):
    import flowkit
    from flowgen import batch

    from flowkit.zeeklog import read_conn_log

    ft = flowkit.flows([batch(_local_packets())], local_nets=["8.8.8.0/24"])
    out = tmp_path / "conn.log"
    ft.write(str(out))  # no local_nets here: the table's columns are written
    assert _zeek_local(out) == {("10.0.0.1", "8.8.8.8", "F", "T"), ("8.8.4.4", "192.0.2.7", "F", "F"),
                                ("2001:4860::1", "fe80::2", "F", "F")}
    back, _ = read_conn_log(str(out))
    assert _local_columns(back) == _local_columns(ft)


def test_cli_local_nets_columns(tmp_path, run):
    import pyarrow.parquet as pq
    from flowgen import write_pcap

    cap = tmp_path / "c.pcap"
    write_pcap(cap, _local_packets()[:3])
    out = tmp_path / "f.parquet"
    rc, _, _ = run("flows", cap, "-o", out, "--local-nets", "192.0.2.0/25")
    assert rc == 0
    assert _local_columns(pq.read_table(out)) == {("10.0.0.1", "8.8.8.8"): (False, False),
                                                  ("8.8.4.4", "192.0.2.7"): (False, True)}


@pytest.mark.corpus
def test_flow_columns_match_zeek_rows(corpus):
    """On Zeek's traces, each flow's columns equal the baseline row of its address pair."""
    import json

    import flowkit

    checked = 0
    for name, test in sorted(json.loads((corpus / "zeek" / "conformance.json").read_text()).items()):
        log = corpus / "zeek" / "baselines" / test["baseline"]
        head = [x for x in log.read_text().splitlines() if x.startswith("#fields")]
        if not head or "local_orig" not in head[0] or "id.orig_h" not in head[0]:
            continue
        want = {(o, r): (lo == "T", lr == "T") for o, r, lo, lr in _zeek_local(log)}
        got = _local_columns(flowkit.flows(str(corpus / "zeek" / "traces" / test["trace"])))
        for pair, flags in got.items():
            if pair in want:
                assert flags == want[pair], (name, pair)
                checked += 1
    assert checked > 60  # 83 flows of 20-odd traces
