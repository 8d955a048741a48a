"""Ephemeral port range and allocation scheme on synthetic clients following known schemes."""
from __future__ import annotations

import numpy as np
import pytest

import flowkit.analysis as A
from analysisgen import client_flows, frame, global_counter, linux_per_destination, tcp, uniform_random

SERVERS = ["192.0.2.1:80", "192.0.2.2:443", "192.0.2.3:22", "192.0.2.4:8080"]


def _population(seed: int, n: int = 300):
    """Clients with known truth: ip -> (range, allocation, nat_hint)."""
    rng = np.random.default_rng(seed)
    times = np.sort(rng.random(n)) * 600
    rr = [SERVERS[i % 3] for i in range(n)]
    rows, truth = [], {}

    def add(ip, ports, dsts, expect):
        rows.extend(client_flows(ip, ports, dsts, times[: len(ports)]))
        truth[ip] = expect

    # BSD / Windows XP: one +1 counter, legacy range, random destinations
    add("10.0.0.1", global_counter(n, 4900, 1025, 5000), [SERVERS[j] for j in rng.integers(0, 4, n)],
        ("legacy", "sequential", False))  # fmt: skip
    ports, di = linux_per_destination(rng, n, 4)
    add("10.0.0.2", ports, [SERVERS[i] for i in di], ("linux", "per-destination", False))
    add("10.0.0.3", uniform_random(rng, n, 49152, 65535), rr, ("iana", "random", False))
    add("10.0.0.4", uniform_random(rng, n, 10000, 65535), rr, ("freebsd", "random", False))
    add("10.0.0.5", uniform_random(rng, 12, 49152, 65535), rr[:12], ("unknown", "unknown", False))
    add("10.0.0.6", global_counter(n, 65000, 49152, 65535, step=2), rr, ("iana", "sequential", False))
    # NAT: three hosts with their own +1 counters interleaved behind one address, 40 destinations
    host = rng.integers(0, 3, n)
    own = np.array([np.sum(host[:i] == host[i]) for i in range(n)])
    ports = np.array([49200, 53000, 60000])[host] + own
    add("10.0.0.7", ports, [f"198.51.100.{j}:443" for j in rng.integers(1, 41, n)], ("iana", "unknown", True))
    return frame(rows), truth


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_schemes_and_ranges(seed):
    df, truth = _population(seed)
    e = A.ephemeral(df).set_index("client_ip")
    assert set(e.index) == set(truth)
    for ip, (rng_name, alloc, nat) in truth.items():
        assert (e.loc[ip, "range"], e.loc[ip, "allocation"], bool(e.loc[ip, "nat_hint"])) == (rng_name, alloc, nat), ip


def test_evidence_columns():
    df, _ = _population(4)
    e = A.ephemeral(df).set_index("client_ip")
    seq, lin, rnd = e.loc["10.0.0.1"], e.loc["10.0.0.2"], e.loc["10.0.0.3"]
    assert seq["connections"] == 300 and seq["median_step"] == 1.0 and seq["share_small_steps"] > 0.95
    assert seq["port_min"] == 1025 and seq["port_max"] == 5000  # the counter wrapped
    assert lin["share_small_steps"] < 0.2 and lin["share_small_steps_per_dst"] == 1.0
    assert lin["destinations"] == 4
    assert rnd["uniformity_p"] > 0.001 and rnd["share_small_steps"] < 0.05
    assert seq["uniformity_p"] < 1e-6
    assert e.loc["10.0.0.7", "nat_reason"] == "sequences"
    assert np.isnan(e.loc["10.0.0.5", "uniformity_p"]) and np.isnan(e.loc["10.0.0.5", "headroom"])


def test_two_ranges_behind_one_address():
    rng = np.random.default_rng(9)
    n = 200
    legacy = global_counter(n, 1100, 1025, 5000)
    modern = uniform_random(rng, n, 49152, 65535)
    ports = np.where(rng.random(n) < 0.5, legacy, modern)
    df = frame(client_flows("10.0.0.9", ports, [SERVERS[i % 3] for i in range(n)], np.arange(n) * 1.0))
    e = A.ephemeral(df).iloc[0]
    assert e["nat_hint"] and "ranges" in e["nat_reason"]
    assert e["range"] == "wide"


def test_reuse_peak_concurrent_and_headroom():
    # to 192.0.2.1:80: port 50000 used three times, gaps 10 s and 100 s after the previous ended
    rows = [
        tcp("10.0.0.1:50000 > 192.0.2.1:80", "complete", t=0.0, duration=5.0),
        tcp("10.0.0.1:50000 > 192.0.2.1:80", "complete", t=15.0, duration=5.0),
        tcp("10.0.0.1:50000 > 192.0.2.1:80", "complete", t=120.0, duration=5.0),
        tcp("10.0.0.1:50000 > 192.0.2.2:80", "complete", t=16.0, duration=5.0),  # other destination
    ]
    # five overlapping connections to 192.0.2.3:443 within [200, 210); one starting as another ends
    rows += [tcp(f"10.0.0.1:{51000 + i} > 192.0.2.3:443", "complete", t=200.0 + i, duration=10.0) for i in range(5)]
    rows += [tcp("10.0.0.1:51010 > 192.0.2.3:443", "complete", t=210.0, duration=1.0)]
    rows += [tcp(f"10.0.0.1:{52000 + i} > 192.0.2.9:22", "complete", t=300.0 + i) for i in range(20)]
    e = A.ephemeral(frame(rows), reuse_window=60.0).iloc[0]
    assert e["reuse_count"] == 1
    assert A.ephemeral(frame(rows), reuse_window=200.0).iloc[0]["reuse_count"] == 2
    assert e["peak_concurrent"] == 5
    assert e["allocation"] == "sequential"  # mostly +1 steps
    assert e["range"] == "iana" and e["headroom"] == 16384 - 5


def test_midstream_and_udp_not_counted_unless_asked():
    rows = [tcp(f"10.0.0.1:{50000 + i} > 192.0.2.1:80", "complete", t=i) for i in range(25)]
    rows += [tcp(f"10.0.0.1:{60000 + i} > 192.0.2.1:80", "midstream", t=i) for i in range(5)]
    from analysisgen import udp

    rows += [udp(f"10.0.0.1:{33000 + i} > 192.0.2.53:53", t=i) for i in range(5)]
    df = frame(rows)
    assert A.ephemeral(df).iloc[0]["connections"] == 25
    assert A.ephemeral(df, protos=("tcp", "udp")).iloc[0]["connections"] == 30


def test_points_for_the_scatter():
    rows = [tcp(f"10.0.0.1:{50000 + 2 * i} > 192.0.2.1:80", "complete", t=10.0 - i) for i in range(5)]
    pts = A.ephemeral_points(frame(rows))
    assert list(pts.columns[:4]) == ["client_ip", "ts", "src_port", "dst"]
    assert list(pts["src_port"]) == [50008, 50006, 50004, 50002, 50000]  # time order
    assert pts["ts"].is_monotonic_increasing and str(pts["ts"].dt.tz) == "UTC"
    assert set(pts["dst"]) == {"192.0.2.1:80"}


def test_empty():
    df = frame([tcp("10.0.0.1:1 > 10.0.0.2:2", "complete")]).iloc[0:0]
    assert len(A.ephemeral(df)) == 0 and "allocation" in A.ephemeral(df).columns


def test_ks_pvalue_matches_the_exact_distribution():
    stats = pytest.importorskip("scipy.stats", reason="scipy gives the exact KS distribution to compare with")
    from flowkit.analysis.ephemeral import _ks_pvalue

    for n in (20, 100, 300, 5000):
        d = np.linspace(0.2 / np.sqrt(n), 2.5 / np.sqrt(n), 25)
        np.testing.assert_allclose(_ks_pvalue(d, np.full(len(d), float(n))), stats.kstwo.sf(d, n), rtol=0.05, atol=2e-3)


def test_fixed_source_ports_are_flagged_not_classified():
    """nmap's SYN scan sends its probes from a handful of source ports it picks itself (e.g.
    36050-36061 over ~2,000 probes): no operating-system allocator is at work."""
    rng = np.random.default_rng(7)
    n = 2000
    ports = 36050 + rng.integers(0, 12, n)
    dsts = [f"192.0.2.9:{1 + i % 1000}" for i in range(n)]
    times = np.arange(n) * 0.001
    rows = client_flows("10.9.9.9", ports, dsts, times, kind="rejected")
    # a Linux client beside it keeps its classification
    lports, di = linux_per_destination(rng, 300, 4)
    rows += client_flows("10.0.0.2", lports, [SERVERS[i] for i in di], np.sort(rng.random(300)) * 600)
    e = A.ephemeral(frame(rows)).set_index("client_ip")
    scanner = e.loc["10.9.9.9"]
    assert (scanner["allocation"], scanner["range"], bool(scanner["nat_hint"])) == ("fixed", "unknown", False)
    assert scanner["distinct_ports"] == 12 and scanner["connections"] == n
    assert np.isnan(scanner["headroom"]) and np.isnan(scanner["uniformity_p"])
    assert (e.loc["10.0.0.2", "allocation"], e.loc["10.0.0.2", "range"]) == ("per-destination", "linux")


@pytest.mark.parametrize("distinct, fixed", [(3, True), (4, False)])
def test_fixed_means_ten_connections_per_port(distinct, fixed):
    # 30 connections to 30 destinations: 3 ports reused 10 times each are fixed; 4 ports are not
    ports = 49152 + 4000 * (np.arange(30) % distinct)
    rows = client_flows("10.0.0.8", ports, [f"192.0.2.{1 + i}:443" for i in range(30)], np.arange(30.0))
    assert (A.ephemeral(frame(rows)).iloc[0]["allocation"] == "fixed") is fixed
