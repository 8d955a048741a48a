"""Analyses on real third-party captures: a real nmap SYN scan, and Zeek-state consistency.

Truth for the scan comes from reading the capture independently with dpkt (which ports got a SYN,
which answered with SYN-ACK or RST), never from flowkit's output.
"""
from __future__ import annotations

import socket

import dpkt
import pytest

import flowkit
import flowkit.analysis as A
from conftest import CORPUS, corpus_files

pytestmark = pytest.mark.corpus

SYNSCAN = CORPUS / "nfstream" / "synscan.pcap"  # nmap -sS of one host, 2010


def _scan_truth(path):
    """(scanner, target, ports probed, ports answering SYN-ACK, ports answering RST) read with dpkt."""
    probes, synack, rst = {}, set(), set()
    with open(path, "rb") as f:
        for _, buf in dpkt.pcap.Reader(f):
            ip = dpkt.ethernet.Ethernet(buf).data
            if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.tcp.TCP):
                continue
            tcp, flags = ip.data, ip.data.flags
            src, dst = socket.inet_ntoa(ip.src), socket.inet_ntoa(ip.dst)
            if flags & dpkt.tcp.TH_SYN and not flags & dpkt.tcp.TH_ACK:
                probes.setdefault((src, dst), set()).add(tcp.dport)
            elif flags & dpkt.tcp.TH_SYN and flags & dpkt.tcp.TH_ACK:
                synack.add((src, tcp.sport))
            elif flags & dpkt.tcp.TH_RST:
                rst.add((src, tcp.sport))
    (scanner, target), ports = max(probes.items(), key=lambda kv: len(kv[1]))
    opened = {p for h, p in synack if h == target}
    closed = {p for h, p in rst if h == target} - opened
    return scanner, target, ports, opened, closed


def test_real_nmap_syn_scan(corpus):
    if not SYNSCAN.exists():
        pytest.skip(f"{SYNSCAN} not in the corpus")
    scanner, target, ports, opened, closed = _scan_truth(SYNSCAN)
    assert len(ports) >= 100  # the capture is what it claims to be
    table = flowkit.flows(str(SYNSCAN))

    sc = A.scans(table)
    vertical = sc[(sc["kind"] == "vertical") & (sc["src_ip"] == scanner)]
    assert list(vertical["target"]) == [target]
    assert vertical.iloc[0]["distinct_ports"] == len(ports)
    assert vertical.iloc[0]["answered"] >= len(opened)

    ex = A.exposure(table)
    host = ex[(ex["dst_ip"] == target) & (ex["proto"] == "tcp")]
    state = dict(zip(host["dst_port"].astype(int), host["state"].astype(str)))
    assert set(state) == ports
    assert {p for p, s in state.items() if s == "open"} == opened
    assert {p for p, s in state.items() if s == "closed"} == closed
    assert {p for p, s in state.items() if s == "filtered"} == ports - opened - closed


def _sample(n=15):
    files = corpus_files("zeek/traces")
    return files[:: max(1, len(files) // n)] if files else []


@pytest.mark.parametrize("path", _sample(), ids=lambda p: p.name)
def test_outcomes_agree_with_zeek_states(path):
    """Where Zeek's state pins the handshake down, the outcome must say the same."""
    df = flowkit.flows(str(path)).to_pandas()  # a corpus trace that cannot be read is a failure
    tcp = df[df["proto"] == "tcp"].reset_index(drop=True)
    hs = A.handshakes(df)
    assert len(hs) == len(tcp)
    assert A.handshake_summary(df)["flows"].sum() == len(tcp)
    outcome = hs["outcome"].astype(str)
    history = tcp["history"].fillna("")
    assert ((outcome == "midstream") == (tcp["syn_count"].fillna(0) == 0)).all()
    assert (outcome[tcp["conn_state"] == "S0"] == "unanswered").all()
    rej = (tcp["conn_state"] == "REJ") & ~history.str.contains("h")
    assert (outcome[rej] == "rejected").all()
    ex = A.exposure(df)
    attempts = (outcome != "midstream").sum() + (df["proto"] == "udp").sum()
    assert ex["attempts"].sum() == attempts
    e = A.ephemeral(df)
    assert e["connections"].sum() == (outcome != "midstream").sum()
