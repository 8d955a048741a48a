"""Property test: random filter expressions, vectorized result == a per-row reference evaluator."""
from __future__ import annotations

import ipaddress

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from flowkit.decode.schema import Status
from flowkit.filter import And, Net, Not, Or, Port, Proto, Vlan, compile_filter, parse
from test_filter import ROWS, packet_batch

BATCH = packet_batch()
ADDRS = ["10.0.0.1", "10.0.0.2", "192.168.1.53", "172.16.5.4", "fd00::1", "fd00::2", "2001:db8::7"]
NETS = ["10.0.0.0/24", "10.0.0.0/31", "192.168.0.0/16", "172.16.0.0/12", "fd00::/16", "2001:db8::/32", "0.0.0.0/0"]
PROTO_NUM = {"tcp": 6, "udp": 17, "icmp": 1, "icmp6": 58}


# --------------------------------------------------------------------- reference, one row at a time
def row_matches(node, row) -> bool:
    version, src, dst, proto, sport, dport, vlan, status = row
    if isinstance(node, Or):
        return row_matches(node.left, row) or row_matches(node.right, row)
    if isinstance(node, And):
        return row_matches(node.left, row) and row_matches(node.right, row)
    if isinstance(node, Not):
        return not row_matches(node.arg, row)
    if isinstance(node, Proto):
        if node.name == "ip":
            return version == 4
        if node.name == "ip6":
            return version == 6
        if node.name == "icmp":
            return version == 4 and proto == 1
        if node.name == "icmp6":
            return version == 6 and proto == 58
        return version != 0 and proto == PROTO_NUM[node.name]
    if isinstance(node, Vlan):
        return vlan != 0 if node.vid is None else vlan == node.vid
    if isinstance(node, Net):
        def side(addr):
            return addr is not None and ipaddress.ip_address(addr) in node.network
        return _sides(node.dir, side(src), side(dst))
    if isinstance(node, Port):
        if version == 0 or status == Status.FRAGMENT:
            return False
        if node.proto is None and proto not in (6, 17):
            return False
        if node.proto is not None and proto != PROTO_NUM[node.proto]:
            return False
        return _sides(node.dir, node.lo <= sport <= node.hi, node.lo <= dport <= node.hi)
    raise TypeError(node)


def _sides(direction, s, d):
    return {"src": s, "dst": d, "or": s or d, "and": s and d}[direction]


# --------------------------------------------------------------------- random expressions as text
DIRS = st.sampled_from(["", "src ", "dst ", "src or dst ", "src and dst "])
primitives = st.one_of(
    st.sampled_from(["tcp", "udp", "icmp", "icmp6", "ip", "ip6", "vlan", "vlan 100", "vlan 7"]),
    st.builds(lambda d, a: f"{d}host {a}", DIRS, st.sampled_from(ADDRS)),
    st.builds(lambda d, n: f"{d}net {n}", DIRS, st.sampled_from(NETS)),
    st.builds(lambda p, d, n: f"{p}{d}port {n}", st.sampled_from(["", "tcp ", "udp "]), DIRS,
              st.sampled_from([53, 80, 123, 443, 5353, 8080, 40000])),
    st.builds(lambda d, a, b: f"{d}portrange {a}-{b}", DIRS, st.integers(0, 65535), st.integers(0, 65535)),
)


def combine(children):
    return st.one_of(
        st.builds(lambda e: f"not {e}", children),
        st.builds(lambda e: f"!({e})", children),
        st.builds(lambda a, op, b: f"({a}) {op} ({b})", children, st.sampled_from(["and", "or", "&&", "||"]), children),
        st.builds(lambda a, op, b: f"{a} {op} {b}", children, st.sampled_from(["and", "or"]), children),
    )


expressions = st.recursive(primitives, combine, max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(expressions)
def test_vectorized_equals_row_by_row(expr):
    tree = parse(expr)
    mask = compile_filter(expr)(BATCH)
    expected = np.array([row_matches(tree, row) for row in ROWS])
    assert np.array_equal(mask, expected), expr


@settings(max_examples=200, deadline=None)
@given(expressions, expressions, expressions)
def test_and_or_are_left_associative_with_equal_precedence(a, b, c):
    # "A and B or C" is "(A and B) or C"; "A or B and C" is "(A or B) and C" (pcap-filter(7))
    for op1, op2 in (("and", "or"), ("or", "and")):
        flat = compile_filter(f"({a}) {op1} ({b}) {op2} ({c})")(BATCH)
        grouped = compile_filter(f"(({a}) {op1} ({b})) {op2} ({c})")(BATCH)
        assert np.array_equal(flat, grouped)
