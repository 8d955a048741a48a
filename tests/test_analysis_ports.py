"""IANA tiers (RFC 6335), service names and peer-to-peer style flows."""
from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

import flowkit.analysis as A
from flowkit.analysis import services_registry
from analysisgen import frame, tcp, udp


def test_tier_boundaries():
    ports = [0, 1, 1023, 1024, 49151, 49152, 65535]
    assert list(A.tier_of(ports)) == ["well-known"] * 3 + ["registered"] * 2 + ["dynamic"] * 2


def _mix():
    rows = []
    # 6 https flows to 2 servers, 2 flows to 8080, 3 udp dns, 1 udp to a dynamic port, 2 p2p tcp
    rows += [tcp(f"10.0.0.{i}:{50000 + i} > 10.1.0.{i % 2}:443", "complete", t=i) for i in range(6)]
    rows += [tcp(f"10.0.0.9:{50100 + i} > 10.1.0.5:8080", "complete", t=i) for i in range(2)]
    rows += [udp(f"10.0.0.9:{40000 + i} > 10.1.0.53:53", t=i) for i in range(3)]
    rows += [udp("10.0.0.9:40100 > 10.1.0.77:50000", t=9)]
    rows += [tcp("10.0.0.7:51413 > 10.2.0.1:60001", "complete"), tcp("10.0.0.7:51414 > 10.2.0.2:49152", "unanswered")]
    return rows


def test_port_tiers_counts_packets_bytes():
    rows = _mix()
    df = frame(rows)
    t = A.port_tiers(df).set_index(["tier", "proto"])
    assert len(t) == 6  # every tier for each protocol present
    assert t.loc[("well-known", "tcp"), "flows"] == 6
    assert t.loc[("registered", "tcp"), "flows"] == 2
    assert t.loc[("dynamic", "tcp"), "flows"] == 2
    assert t.loc[("well-known", "udp"), "flows"] == 3
    assert t.loc[("dynamic", "udp"), "flows"] == 1
    assert t.loc[("registered", "udp"), "flows"] == 0
    assert t.loc[("well-known", "tcp"), "distinct_server_ports"] == 1
    assert t.loc[("dynamic", "tcp"), "distinct_server_ports"] == 2
    https = [r for r in rows if r["dst_port"] == 443]
    assert t.loc[("well-known", "tcp"), "packets"] == sum(r["src_pkts"] + r["dst_pkts"] for r in https)
    assert t.loc[("well-known", "tcp"), "bytes"] == sum(r["src_ip_bytes"] + r["dst_ip_bytes"] for r in https)
    assert t["share"].sum() == pytest.approx(1.0)


def test_services_ranked_across_protocols_with_names():
    s = A.services(frame(_mix()), top=3)
    # 6 https flows, 3 udp dns, 2 to 8080: one ranking whatever the protocol
    assert list(zip(s["proto"], s["dst_port"], s["flows"])) == [("tcp", 443, 6), ("udp", 53, 3), ("tcp", 8080, 2)]
    assert list(s["service"]) == ["https", "domain", "http-alt"]
    assert s.iloc[0]["servers"] == 2 and s.iloc[0]["clients"] == 6


def test_a_busy_udp_service_ranks_above_tcp_ports_seen_once():
    # a scan of 16 TCP ports (one flow each) beside 13 DNS queries: DNS is the top service
    rows = [tcp(f"10.0.0.3:{40000 + p} > 10.1.0.1:{p}", "rejected", t=p) for p in range(1, 17)]
    rows += [udp(f"10.0.0.9:{41000 + i} > 10.1.0.53:53", t=i) for i in range(13)]
    s = A.services(frame(rows), top=5)
    assert list(zip(s["proto"], s["dst_port"], s["flows"])) == [
        ("udp", 53, 13), ("tcp", 1, 1), ("tcp", 2, 1), ("tcp", 3, 1), ("tcp", 4, 1)]


def test_service_name_facts():
    assert A.service_name(22, "tcp") == "ssh"
    assert A.service_name(53, "udp") == "domain"
    assert A.service_name(443, "tcp") == "https"
    assert A.service_name(3389, "tcp") == "ms-wbt-server"
    assert A.service_name(514, "udp") == "syslog" and A.service_name(514, "tcp") == "shell"
    assert A.service_name(123, "UDP") == "ntp"
    assert A.service_name(65000, "tcp") is None


def _builtin_rows():
    text = resources.files("flowkit.analysis").joinpath("services.csv").read_text()
    return list(csv.DictReader(ln for ln in text.splitlines() if ln and not ln.startswith("#")))


def test_builtin_registry_is_well_formed():
    rows = _builtin_rows()
    assert len(rows) >= 200
    keys = [(int(r["port"]), r["proto"]) for r in rows]
    assert len(set(keys)) == len(keys)
    assert all(0 <= p <= 65535 and pr in ("tcp", "udp") for p, pr in keys)
    assert all(r["name"] and " " not in r["name"] for r in rows)
    # the well-known tier is what the table mostly covers
    assert sum(p < 1024 for p, _ in keys) >= 150


def test_system_services_fill_gaps_and_builtin_wins(tmp_path: Path):
    fake = tmp_path / "services"
    fake.write_text("fsp 21/udp fspd\nmyproto 31337/tcp # a gap in flowkit's table\nbad line\n")
    reg = services_registry.registry(str(fake))
    assert reg[(31337, "tcp")] == "myproto"  # fills a gap
    assert reg[(21, "udp")] == "ftp"  # flowkit's IANA fact wins over the system's fsp
    assert (31337, "udp") not in reg
    no_system = services_registry.registry(None)
    assert (31337, "tcp") not in no_system
    frame_ = services_registry.registry_frame(str(fake)).set_index(["port", "proto"])
    assert frame_.loc[(31337, "tcp"), "source"] == "system"
    assert frame_.loc[(21, "udp"), "source"] == "flowkit"


def test_real_etc_services_used_when_present():
    path = Path("/etc/services")
    if not path.exists():
        pytest.skip("no /etc/services on this system")
    system = services_registry._read_system(path)
    builtin = {(int(r["port"]), r["proto"]) for r in _builtin_rows()}
    gaps = [k for k in system if k not in builtin]
    if not gaps:
        pytest.skip("/etc/services adds nothing to flowkit's table")
    port, proto = gaps[0]
    assert A.service_name(port, proto) == system[(port, proto)]


def test_p2p_flows_both_ports_dynamic():
    p2p = A.p2p_flows(frame(_mix()))
    assert set(zip(p2p["src_port"].astype(int), p2p["dst_port"].astype(int))) == {(51413, 60001), (51414, 49152)}
    assert (np.minimum(p2p["src_port"], p2p["dst_port"]) >= 49152).all()
