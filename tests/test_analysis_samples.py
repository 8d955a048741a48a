"""Analyses on the bundled sample captures: real Linux-kernel traffic between two namespaces.

Truth is how sample_pcaps/make_samples.sh made the traffic (sample_pcaps/README.md).
"""
from __future__ import annotations

import pytest

import flowkit
import flowkit.analysis as A
from conftest import SAMPLES


def _table(name):
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"{path} missing")
    return flowkit.flows(str(path))


def test_linux_kernel_ports_are_per_destination_in_the_linux_range():
    # 300 connect() calls round-robin to 3 ports, source ports chosen by a 6.x Linux kernel
    e = A.ephemeral(_table("ephemeral.pcap"))
    assert len(e) == 1
    row = e.iloc[0]
    assert row["client_ip"] == "10.99.0.2" and row["connections"] == 300 and row["destinations"] == 3
    assert (row["range"], row["allocation"]) == ("linux", "per-destination")
    assert not row["nat_hint"]
    assert 32768 <= row["port_min"] and row["port_max"] <= 60999


def test_refused_and_unanswered_connects():
    hs = A.handshakes(_table("refused.pcap"))
    assert list(hs["outcome"].astype(str)) == ["rejected"]
    hs = A.handshakes(_table("unanswered.pcap"))
    assert list(hs["outcome"].astype(str)) == ["unanswered"]
    assert hs.iloc[0]["syn_retries"] >= 2  # the kernel retransmitted the SYN during 3.5 s
    ex = A.exposure(_table("unanswered.pcap"))
    assert list(zip(ex["dst_ip"], ex["dst_port"], ex["state"].astype(str))) == [("10.99.0.9", 9999, "filtered")]


def test_connect_scan_of_ports_1_to_100():
    table = _table("scan.pcap")
    sc = A.scans(table)
    assert list(zip(sc["src_ip"], sc["kind"], sc["target"])) == [("10.99.0.3", "vertical", "10.99.0.1")]
    assert sc.iloc[0]["distinct_ports"] == 100 and sc.iloc[0]["answered"] == 1
    assert sc.iloc[0]["share_rejected"] == pytest.approx(0.99)
    ex = A.exposure(table)
    state = dict(zip(ex["dst_port"].astype(int), ex["state"].astype(str)))
    assert state == {p: ("open" if p == 80 else "closed") for p in range(1, 101)}


def test_mixed_capture_summary():
    table = _table("mixed.pcap")
    s = A.handshake_summary(table).set_index("outcome")["flows"]
    assert s.sum() == 411
    assert s["rejected"] == 101 and s["unanswered"] == 1
    tiers = A.port_tiers(table).set_index(["tier", "proto"])["flows"]
    assert tiers.sum() == 426
    assert A.service_name(53, "udp") in set(A.services(table)["service"])
