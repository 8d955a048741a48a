"""The bundled sample captures: flowkit against the facts of how they were made.

Truth comes from sample_pcaps/make_samples.sh and sample_clients.py (connection counts,
ports, which connections were refused or unanswered), documented in sample_pcaps/README.md.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import flowkit
from flowkit import analysis
from conftest import SAMPLES

SCENARIOS = ["http", "dns", "refused", "unanswered", "ephemeral", "scan", "ipv6"]
CLIENT, SCANNER, SERVER, BLACKHOLE = "10.99.0.2", "10.99.0.3", "10.99.0.1", "10.99.0.9"


def flows_of(name: str):
    return flowkit.flows(str(SAMPLES / name)).to_pandas()


def packets_of(name: str):
    return flowkit.packets(str(SAMPLES / name)).to_arrow()


@pytest.fixture(scope="module")
def mixed():
    table = flowkit.flows(str(SAMPLES / "mixed.pcap"))
    return table.to_pandas(), table.stats


@pytest.mark.slow
def test_make_samples_script(tmp_path):
    """The script itself makes captures with the same facts (needs root and network namespaces)."""
    import os
    import shutil
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("make_samples.sh needs root (network namespaces)")
    for tool in ("ip", "ss", "tcpdump"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        pytest.skip("network namespaces are not available here")
    proc = subprocess.run(["bash", str(SAMPLES / "make_samples.sh"), str(tmp_path)], capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dns = flowkit.flows(str(tmp_path / "dns.pcap"))
    assert dns.stats.packets == 32 and len(dns) == 13  # 12 UDP conversations, one ICMP unreachable
    refused = flowkit.flows(str(tmp_path / "refused.pcap")).to_pandas()
    assert refused["conn_state"].tolist() == ["REJ"]
    scan = flowkit.flows(str(tmp_path / "scan.pcap")).to_pandas()
    assert len(scan) == 100 and (scan["conn_state"] == "REJ").sum() == 99
    ephemeral = flowkit.flows(str(tmp_path / "ephemeral.pcap")).to_pandas()
    assert len(ephemeral) == 300 and ephemeral["src_port"].between(32768, 60999).all()
    mixed = flowkit.flows(str(tmp_path / "mixed.pcap"))
    parts = sum(flowkit.packets(str(tmp_path / f"{n}.pcap")).stats.packets for n in SCENARIOS)
    assert mixed.stats.packets == parts


def test_every_sample_exists_and_is_small():
    for name in [*SCENARIOS, "mixed", "http-snap96"]:
        path = SAMPLES / f"{name}.pcap"
        assert path.is_file(), f"{path} missing: run sample_pcaps/make_samples.sh"
        assert path.stat().st_size < 2_000_000


def test_http():
    df = flows_of("http.pcap")
    assert len(df) == 6
    assert set(df["proto"]) == {"tcp"}
    assert set(df["src_ip"]) == {CLIENT} and set(df["dst_ip"]) == {SERVER}
    assert Counter(df["dst_port"]) == {80: 4, 8080: 2}
    # HTTP/1.0: both sides close with FIN, except the 404, whose page urllib never reads:
    # closing a socket with unread data sends a RST
    assert Counter(df["conn_state"]) == {"SF": 5, "RSTO": 1}
    assert df.sort_values("ts_start")["conn_state"].iloc[-1] == "RSTO"  # the 404 came last
    assert (df["dst_payload_bytes"] > 0).all()
    hs = analysis.handshakes(df)
    assert set(hs["outcome"].astype(str)) == {"complete"}


def test_snaplen_96_keeps_counts_from_ip_lengths():
    full, cut = packets_of("http.pcap"), packets_of("http-snap96.pcap")
    assert cut.num_rows == full.num_rows  # the same packets, captured at the same time
    caplen = cut.column("caplen").to_numpy()
    wirelen = cut.column("wirelen").to_numpy()
    assert caplen.max() <= 96
    assert (wirelen > 96).any()
    assert np.array_equal(np.sort(wirelen), np.sort(full.column("wirelen").to_numpy()))
    a = flows_of("http.pcap").sort_values("ts_start")
    b = flows_of("http-snap96.pcap").sort_values("ts_start")
    assert len(b) == 6
    assert Counter(b["dst_port"]) == {80: 4, 8080: 2}
    for col in ("src_pkts", "dst_pkts", "src_ip_bytes", "dst_ip_bytes"):
        assert a[col].tolist() == b[col].tolist(), col


def test_dns_and_udp():
    table = flowkit.flows(str(SAMPLES / "dns.pcap"))
    df = table.to_pandas()
    ledger = table.stats.to_dict()
    assert ledger["packets"] == 32
    assert ledger["udp"] == 31 and ledger["icmp"] == 1
    assert len(df) == 13 and set(df["proto"]) == {"udp", "icmp"}  # the ICMP packet is a flow of its own
    dns = df[df["dst_port"] == 53]
    assert len(dns) == 10
    assert (dns["src_pkts"] == 1).all() and (dns["dst_pkts"] == 1).all()
    assert dns["src_port"].nunique() == 10  # a fresh socket per query
    echo = df[df["dst_port"] == 7]
    assert len(echo) == 1
    assert int(echo["src_pkts"].iloc[0]) == 5 and int(echo["dst_pkts"].iloc[0]) == 5
    nobody = df[df["dst_port"] == 5353]
    assert len(nobody) == 1
    assert int(nobody["src_pkts"].iloc[0]) == 1 and int(nobody["dst_pkts"].iloc[0]) == 0


def test_refused():
    df = flows_of("refused.pcap")
    assert len(df) == 1
    row = df.iloc[0]
    assert (row["dst_ip"], int(row["dst_port"]), row["conn_state"]) == (SERVER, 8081, "REJ")
    assert analysis.handshakes(df)["outcome"].astype(str).tolist() == ["rejected"]


def test_unanswered():
    df = flows_of("unanswered.pcap")
    assert len(df) == 1
    row = df.iloc[0]
    assert (row["dst_ip"], int(row["dst_port"]), row["conn_state"]) == (BLACKHOLE, 9999, "S0")
    assert int(row["dst_pkts"]) == 0
    # every packet is the same SYN, retransmitted by the kernel (3 or more within 3.5 s)
    assert int(row["syn_count"]) == int(row["src_pkts"]) >= 3
    hs = analysis.handshakes(df)
    assert hs["outcome"].astype(str).tolist() == ["unanswered"]
    assert int(hs["syn_retries"].iloc[0]) == int(row["syn_count"]) - 1
    exp = analysis.exposure(df)
    assert exp[["dst_ip", "dst_port"]].values.tolist() == [[BLACKHOLE, 9999]]
    assert str(exp["state"].iloc[0]) == "filtered"


def test_ephemeral_linux_allocation():
    df = flows_of("ephemeral.pcap")
    assert len(df) == 300
    assert set(df["src_ip"]) == {CLIENT}
    assert Counter(df["dst_port"]) == {80: 100, 8080: 100, 8000: 100}
    # Linux's default net.ipv4.ip_local_port_range in a fresh namespace
    assert df["src_port"].between(32768, 60999).all()
    # RFC 6056 per-destination counter: ports rise connection after connection (a wrap at the
    # top of the range, or a rare collision skip, may break a step)
    for _, group in df.sort_values("ts_start").groupby("dst_port"):
        steps = np.diff(group["src_port"].to_numpy().astype(np.int64))
        assert np.mean(steps > 0) >= 0.95
    eph = analysis.ephemeral(df)
    row = eph[eph["client_ip"] == CLIENT].iloc[0]
    assert int(row["connections"]) == 300
    assert row["range"] == "linux"


def test_scan():
    df = flows_of("scan.pcap")
    assert len(df) == 100
    assert set(df["src_ip"]) == {SCANNER}
    assert sorted(df["dst_port"]) == list(range(1, 101))
    assert (df["conn_state"] == "REJ").sum() == 99
    hs = analysis.handshakes(df).set_index("dst_port")
    assert hs.loc[80, "outcome"] == "complete"
    found = analysis.scans(df)
    assert len(found) == 1
    assert (found["src_ip"].iloc[0], found["kind"].iloc[0], found["target"].iloc[0]) == (
        SCANNER, "vertical", SERVER)
    exp = analysis.exposure(df)
    states = dict(zip(exp["dst_port"].astype(int), exp["state"].astype(str)))
    assert states.pop(80) == "open"
    assert len(states) == 99 and set(states.values()) == {"closed"}


def test_ipv6():
    packets = packets_of("ipv6.pcap")
    assert packets.num_rows >= 2 * 3 + 2 + 2 * 3  # 2 handshakes, 1 SYN + RST, 3 queries + answers
    assert set(packets.column("ip_version").to_pylist()) == {6}
    df = flows_of("ipv6.pcap")
    assert set(df["ip_version"]) == {6}
    tcp, udp = df[df["proto"] == "tcp"], df[df["proto"] == "udp"]
    assert len(tcp) == 3 and len(udp) == 3
    assert set(udp["dst_port"]) == {53}
    assert Counter(zip(tcp["dst_port"], tcp["conn_state"])) == {(80, "SF"): 2, (8081, "REJ"): 1}
    assert set(df["src_ip"]) == {"fd99::2"} and set(df["dst_ip"]) == {"fd99::1"}


def test_mixed_is_the_union(mixed):
    df, ledger = mixed
    # records: rows at depth 0 (an ICMP error adds the row of the header it quotes)
    total = sum(int((packets_of(f"{name}.pcap").column("tunnel_depth").to_numpy() == 0).sum()) for name in SCENARIOS)
    assert ledger.packets == total  # one tcpdump through the whole script, no drops
    ledger.check()
    assert (df["proto"] == "tcp").sum() == 6 + 1 + 1 + 300 + 100 + 3
    assert (df["proto"] == "udp").sum() == 12 + 3
    tcp = df[df["proto"] == "tcp"]
    assert (tcp["conn_state"] == "REJ").sum() == 1 + 99 + 1
    assert (tcp["conn_state"] == "S0").sum() == 1
    assert (tcp["conn_state"] == "RSTO").sum() == 1
    assert ledger.counts["icmp"] == 1


def test_pcapng_copy_has_the_same_flows(mixed):
    df, _ = mixed
    ng = flows_of("mixed.pcapng")
    key = ["proto", "src_ip", "src_port", "dst_ip", "dst_port", "conn_state", "src_pkts", "dst_pkts"]
    a = df[key].sort_values(key).reset_index(drop=True)
    b = ng[key].sort_values(key).reset_index(drop=True)
    assert a.equals(b)
