"""Exposure states per host/port and scan detection on flow frames built with known truth."""
from __future__ import annotations

import numpy as np
import pytest

import flowkit.analysis as A
from analysisgen import frame, icmp_error, tcp, udp


def _exposure_rows():
    rows = []
    # 10.1.0.1:22 open (answered once, one retry unanswered); :23 closed; :25 filtered
    rows += [tcp("10.0.0.1:40000 > 10.1.0.1:22", "complete", t=1), tcp("10.0.0.2:40001 > 10.1.0.1:22", "unanswered", t=2)]
    rows += [tcp(f"10.0.0.{i}:4100{i} > 10.1.0.1:23", "rejected", t=3 + i) for i in range(3)]
    rows += [tcp("10.0.0.1:42000 > 10.1.0.1:25", "unanswered", t=9)]
    rows += [tcp("10.0.0.1:42001 > 10.1.0.1:8443", "incomplete", t=10)]  # SYN-ACK: open
    rows += [tcp("10.0.0.1:42002 > 10.1.0.1:9999", "midstream", t=11)]  # no SYN: not judged
    rows += [udp("10.0.0.1:5000 > 10.1.0.1:53", True, t=12), udp("10.0.0.1:5001 > 10.1.0.1:161", False, t=13)]
    return rows


def test_exposure_states():
    ex = A.exposure(frame(_exposure_rows())).set_index(["dst_ip", "dst_port", "proto"])
    state = ex["state"].astype(str).to_dict()
    assert state == {
        ("10.1.0.1", 22, "tcp"): "open",
        ("10.1.0.1", 23, "tcp"): "closed",
        ("10.1.0.1", 25, "tcp"): "filtered",
        ("10.1.0.1", 8443, "tcp"): "open",
        ("10.1.0.1", 53, "udp"): "open",
        ("10.1.0.1", 161, "udp"): "filtered",
    }
    ssh = ex.loc[("10.1.0.1", 22, "tcp")]
    assert (ssh["attempts"], ssh["answered"], ssh["unanswered"], ssh["clients"]) == (2, 1, 1, 2)
    assert ssh["service"] == "ssh" and ssh["tier"] == "well-known"
    telnet = ex.loc[("10.1.0.1", 23, "tcp")]
    assert telnet["rejected"] == 3 and telnet["clients"] == 3
    assert ex.loc[("10.1.0.1", 8443, "tcp"), "tier"] == "registered"
    assert ex.loc[("10.1.0.1", 161, "udp"), "service"] == "snmp"


def test_icmp_errors_close_or_filter_with_their_reason():
    """nmap's reading: UDP port unreachable = closed; other unreachable codes = filtered, with the
    reason; a TCP SYN drawing an ICMP error is filtered (never closed); a reply outweighs errors."""
    rows = [icmp_error(udp("10.0.0.1:5000 > 10.1.0.1:161", False, t=1), 3, 3, "10.1.0.1"),
            icmp_error(udp("10.0.0.1:5001 > 10.1.0.1:162", False, t=2), 3, 13, "10.9.9.9"),
            udp("10.0.0.1:5002 > 10.1.0.1:162", False, t=3),  # a later silent attempt keeps the ICMP reason
            icmp_error(udp("10.0.0.1:5003 > 10.1.0.1:53", False, t=4), 3, 3, "10.1.0.1"),
            udp("10.0.0.1:5004 > 10.1.0.1:53", True, t=5),
            icmp_error(tcp("10.0.0.1:40000 > 10.1.0.1:22", "unanswered", t=6), 3, 3, "10.1.0.1"),
            icmp_error({**udp("2001:db8::1:5005 > 2001:db8::2:500", False, t=7), "ip_version": 6}, 1, 4,
                       "2001:db8::2"),
            udp("10.0.0.1:5006 > 10.1.0.1:514", False, t=8)]
    ex = A.exposure(frame(rows)).set_index(["dst_port", "proto"])
    got = {k: (str(v.state), v.reason, v.icmp_errors) for k, v in ex.iterrows()}
    assert got == {(161, "udp"): ("closed", "port-unreach", 1), (162, "udp"): ("filtered", "admin-prohibited", 1),
                   (53, "udp"): ("open", "udp-response", 1), (22, "tcp"): ("filtered", "port-unreach", 1),
                   (500, "udp"): ("closed", "port-unreach", 1), (514, "udp"): ("filtered", "no-response", 0)}


def _scan_rows(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    # vertical: 203.0.113.5 probes 100 ports of 10.1.0.1; 3 open, 60 closed, rest filtered
    ports = rng.choice(np.arange(1, 1024), size=100, replace=False)
    for i, p in enumerate(ports):
        kind = "complete" if i < 3 else "rejected" if i < 63 else "unanswered"
        rows.append(tcp(f"203.0.113.5:{40000 + i} > 10.1.0.1:{p}", kind, t=100 + i * 0.01))
    # horizontal: 203.0.113.9 probes port 445 on 50 hosts, 2 answer
    for i in range(50):
        kind = "complete" if i < 2 else "unanswered"
        rows.append(tcp(f"203.0.113.9:{50000 + i} > 10.2.{i // 250}.{i % 250 + 1}:445", kind, t=200 + i * 0.1))
    # busy legitimate client: 300 connections to 30 ports of one server, all answered
    for i in range(300):
        rows.append(tcp(f"10.0.0.50:{30000 + i} > 10.1.0.2:{8000 + i % 30}", "complete", t=300 + i))
    # a client with 15 failed ports: below the default threshold
    rows += [tcp(f"10.0.0.60:{31000 + i} > 10.1.0.3:{2000 + i}", "unanswered", t=400 + i) for i in range(15)]
    # udp horizontal: 25 hosts on 161/udp, no answers
    rows += [udp(f"203.0.113.7:{33000 + i} > 10.3.0.{i + 1}:161", False, t=500 + i) for i in range(25)]
    return rows, ports


def test_scans_vertical_and_horizontal():
    rows, ports = _scan_rows()
    sc = A.scans(frame(rows))
    got = {(r.src_ip, r.kind, r.target) for r in sc.itertuples()}
    assert got == {
        ("203.0.113.5", "vertical", "10.1.0.1"),
        ("203.0.113.9", "horizontal", "445/tcp"),
        ("203.0.113.7", "horizontal", "161/udp"),
    }
    v = sc[sc["kind"] == "vertical"].iloc[0]
    assert (v["distinct_ports"], v["attempts"], v["failed"], v["answered"]) == (100, 100, 97, 3)
    assert v["share_rejected"] == pytest.approx(0.60) and v["share_unanswered"] == pytest.approx(0.37)
    assert v["span"] == pytest.approx(0.99)
    assert v["proto"] == "tcp" and v["target_ip"] == "10.1.0.1"
    h = sc[sc["target"] == "445/tcp"].iloc[0]
    assert (h["distinct_hosts"], h["attempts"], h["answered"], h["target_port"]) == (50, 50, 2, 445)
    assert h["share_unanswered"] == pytest.approx(48 / 50)


def test_scan_thresholds_are_keywords():
    rows, _ = _scan_rows()
    sc = A.scans(frame(rows), vertical_ports=10, horizontal_hosts=60)
    got = {(r.src_ip, r.kind) for r in sc.itertuples()}
    assert got == {("203.0.113.5", "vertical"), ("10.0.0.60", "vertical")}
    strict = A.scans(frame(rows), min_failed_share=0.99)
    assert "203.0.113.5" not in set(strict["src_ip"])  # 97% failed
    assert "203.0.113.7" in set(strict["src_ip"])  # 100% unanswered


def test_no_scans_in_quiet_traffic():
    rows = [tcp(f"10.0.0.1:{40000 + i} > 10.1.0.1:443", "complete", t=i) for i in range(50)]
    assert len(A.scans(frame(rows))) == 0
    assert len(A.exposure(frame(rows))) == 1
