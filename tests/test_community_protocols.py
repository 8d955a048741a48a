"""Community ID for every protocol against the ``communityid`` package (the spec's reference).

ICMP/ICMPv6 request/reply pairs, one-way types (errors, redirects, MLDv2 reports), SCTP
and port-less protocols (OSPF, GRE, ESP), IPv4 and IPv6, both directions.
"""
from __future__ import annotations

import ipaddress
import itertools

import numpy as np
import pytest

communityid = pytest.importorskip("communityid")

from flowkit.flows.community import icmp_ports, oriented_community_ids  # noqa: E402

ADDRS4 = ["10.0.0.1", "192.168.1.7", "10.0.0.1", "8.8.8.8"]
ADDRS6 = ["2001:db8::1", "fe80::1", "ff02::1", "2001:db8::1"]
ICMP4 = [(8, 0), (0, 0), (13, 0), (14, 0), (15, 0), (16, 0), (10, 0), (9, 0), (17, 0), (18, 0),
         (3, 3), (3, 13), (11, 0), (5, 1), (12, 0), (4, 0), (42, 0), (255, 7)]
ICMP6 = [(128, 0), (129, 0), (133, 0), (134, 0), (135, 0), (136, 0), (130, 0), (131, 0), (139, 1), (140, 0),
         (144, 0), (145, 0), (1, 4), (2, 0), (3, 1), (4, 2), (137, 0), (143, 0), (132, 0), (200, 9)]


def _words(text):
    ip = ipaddress.ip_address(text)
    b = (b"\0" * 10 + b"\xff\xff" + ip.packed) if ip.version == 4 else ip.packed
    return int.from_bytes(b[:8], "big"), int.from_bytes(b[8:], "big"), ip.version


def _ours(rows):
    """rows: (proto, src, dst, sport, dport) with ICMP ports already mapped."""
    s = [_words(r[1]) for r in rows]
    d = [_words(r[2]) for r in rows]
    u = lambda xs: np.array(xs, np.uint64)  # noqa: E731
    ids = oriented_community_ids(u([x[0] for x in s]), u([x[1] for x in s]), u([x[0] for x in d]),
                                 u([x[1] for x in d]), [r[3] for r in rows], [r[4] for r in rows],
                                 [r[0] for r in rows], [x[2] for x in s])
    return ids.to_pylist()


def _theirs(proto, src, dst, sport=None, dport=None):
    tpl = communityid.FlowTuple(proto, src, dst, sport, dport)
    return communityid.CommunityID().calc(tpl)


@pytest.mark.parametrize("proto, addrs, types", [(1, ADDRS4, ICMP4), (58, ADDRS6, ICMP6)])
def test_icmp_both_directions(proto, addrs, types):
    rows, want = [], []
    for (a, b), (t, c) in itertools.product(itertools.permutations(addrs[:3], 2), types):
        sp, dp, _ = icmp_ports(np.array([proto]), np.array([t]), np.array([c]))
        rows.append((proto, a, b, int(sp[0]), int(dp[0])))
        want.append(_theirs(proto, a, b, t, c))
    assert _ours(rows) == want


def test_icmp_reply_shares_the_request_id_one_way_does_not():
    sp, dp, one_way = icmp_ports(np.array([1, 1, 1, 1]), np.array([8, 0, 3, 3]), np.array([0, 0, 3, 3]))
    assert list(one_way) == [False, False, True, True]
    ids = _ours([(1, "10.0.0.1", "8.8.8.8", sp[0], dp[0]), (1, "8.8.8.8", "10.0.0.1", sp[1], dp[1]),
                 (1, "10.0.0.1", "8.8.8.8", sp[2], dp[2]), (1, "8.8.8.8", "10.0.0.1", sp[3], dp[3])])
    assert ids[0] == ids[1] and ids[2] != ids[3]


@pytest.mark.parametrize("proto", [6, 17, 132])
def test_port_protocols_both_directions(proto):
    rows, want = [], []
    for a, b in itertools.permutations(ADDRS4[:2] + ADDRS6[:2], 2):
        if ipaddress.ip_address(a).version != ipaddress.ip_address(b).version:
            continue
        for sp, dp in [(40000, 80), (80, 40000), (5000, 5000), (0, 65535)]:
            rows.append((proto, a, b, sp, dp))
            want.append(_theirs(proto, a, b, sp, dp))
    rows.append((proto, "10.0.0.1", "10.0.0.1", 9, 7))  # same address: ports decide the order
    want.append(_theirs(proto, "10.0.0.1", "10.0.0.1", 9, 7))
    assert _ours(rows) == want


@pytest.mark.parametrize("proto", [89, 47, 50, 112, 2, 253])
def test_portless_protocols(proto):
    rows, want = [], []
    for a, b in [("10.0.0.1", "224.0.0.5"), ("224.0.0.5", "10.0.0.1"), ("2001:db8::1", "fe80::2"),
                 ("fe80::2", "2001:db8::1")]:
        rows.append((proto, a, b, 0, 0))
        want.append(_theirs(proto, a, b))
    assert _ours(rows) == want


@pytest.mark.parametrize("extensions", [False, True], ids=["portable", "sha-extensions"])
def test_both_sha1_implementations_agree_with_the_package(extensions):
    # many random endpoint pairs of every kind: each row is its own SHA-1 block
    from flowkit.flows import _sha1

    if _sha1.use_sha_extensions(extensions) != extensions:
        _sha1.use_sha_extensions(True)
        pytest.skip("this CPU has no SHA extensions: only the portable SHA-1 runs here")
    try:
        rng = np.random.default_rng(7)
        rows = []
        for i in range(400):
            proto = [6, 17, 132, 47, 50][i % 5]
            if i % 2:
                src, dst = (str(ipaddress.IPv6Address(int(x))) for x in rng.integers(0, 2**63, 2) << 64 | 1)
            else:
                src, dst = (str(ipaddress.IPv4Address(int(x))) for x in rng.integers(0, 2**32, 2))
            sport, dport = (int(x) for x in rng.integers(0, 65536, 2))
            rows.append((proto, src, dst, sport, dport))
        expected = [_theirs(p, s, d, sp, dp) if p in (6, 17, 132) else _theirs(p, s, d) for p, s, d, sp, dp in rows]
        assert _ours(rows) == expected
    finally:
        _sha1.use_sha_extensions(True)
