"""Filter primitives for every IP protocol: sctp, proto N, ip proto N, ip6 proto N, icmp/icmp6 on flows.

Truth: the protocol each built packet or flow row was given.
"""
from __future__ import annotations

import pandas as pd
import pytest

from flowgen import batch, pkt
from flowkit.filter import compile_filter, compile_flow_filter

PACKETS = [
    ("10.0.0.1", "10.0.0.2", 6), ("10.0.0.1", "10.0.0.2", 17), ("10.0.0.1", "10.0.0.2", 1),
    ("10.0.0.1", "224.0.0.5", 89), ("10.0.0.1", "10.0.0.2", 132), ("10.0.0.1", "10.0.0.2", 47),
    ("fe80::1", "ff02::2", 58), ("2001:db8::1", "2001:db8::2", 132), ("2001:db8::1", "2001:db8::2", 6),
    ("2001:db8::1", "2001:db8::2", 89),
]


@pytest.fixture(scope="module")
def packets():
    return batch([pkt(1.0 + i, s, 1000, d, 2000, "S" if p == 6 else "", ip_proto=p)
                  for i, (s, d, p) in enumerate(PACKETS)])


def _want(pred):
    return [pred(s, d, p) for s, d, p in PACKETS]


@pytest.mark.parametrize("expr, pred", [
    ("sctp", lambda s, d, p: p == 132),
    ("proto 89", lambda s, d, p: p == 89),
    ("proto \\ospf", lambda s, d, p: p == 89),
    ("ip proto 89", lambda s, d, p: p == 89 and ":" not in s),
    ("ip6 proto 89", lambda s, d, p: p == 89 and ":" in s),
    ("ip6 proto sctp", lambda s, d, p: p == 132 and ":" in s),
    ("proto gre or icmp6", lambda s, d, p: p in (47, 58)),
    ("not (tcp or udp or icmp or icmp6)", lambda s, d, p: p not in (6, 17, 1, 58)),
])
def test_packet_protocols(packets, expr, pred):
    assert list(compile_filter(expr)(packets)) == _want(pred)


FLOWS = pd.DataFrame({
    "proto": ["tcp", "udp", "icmp", "icmp", "unknown_transport", "sctp"],
    "ip_version": [4, 6, 4, 6, 4, 4],
    "ip_proto": [6, 17, 1, 58, 89, 132],
    "src_ip": ["10.0.0.1", "fe80::1", "10.0.0.1", "fe80::1", "10.0.0.1", "10.0.0.1"],
    "dst_ip": ["10.0.0.2", "ff02::2", "10.0.0.2", "ff02::2", "224.0.0.5", "10.0.0.2"],
    "src_port": [1, 2, 8, 135, 0, 5], "dst_port": [80, 53, 0, 136, 0, 6], "vlan": [0] * 6,
})


@pytest.mark.parametrize("expr, want", [
    ("icmp", [False, False, True, False, False, False]),
    ("icmp6", [False, False, False, True, False, False]),
    ("proto 89", [False, False, False, False, True, False]),
    ("ip proto 58", [False] * 6),
    ("sctp", [False, False, False, False, False, True]),
    ("tcp or udp", [True, True, False, False, False, False]),
])
def test_flow_protocols(expr, want):
    assert list(compile_flow_filter(expr)(FLOWS)) == want
    # a saved table without ip_proto: names (and the IP version for "icmp") decide; an
    # unknown_transport row then has no protocol number
    old = FLOWS.drop(columns="ip_proto")
    assert list(compile_flow_filter(expr)(old)) == [w and p != "unknown_transport" for w, p in zip(want, old.proto)]


@pytest.mark.parametrize("expr", ["proto", "proto 256", "ip proto nope", "ip6 proto"])
def test_bad_proto(expr):
    from flowkit.errors import FilterError

    with pytest.raises(FilterError):
        compile_filter(expr)
