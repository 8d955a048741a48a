"""flowkit.filter: parsing, precedence, each primitive on hand-built batches, error messages."""
from __future__ import annotations

import ipaddress

import numpy as np
import pyarrow as pa
import pytest

from flowkit.decode.schema import PACKET_SCHEMA, Status
from flowkit.errors import FilterError, FlowkitError
from flowkit.filter import And, Net, Not, Or, Port, Proto, Vlan, compile_filter, compile_flow_filter, parse
from flowkit.flows.schema import FLOW_SCHEMA

# (ip_version, src, dst, ip_proto, sport, dport, vlan, status) -- one packet per row
ROWS = [
    (4, "10.0.0.1", "10.0.0.2", 6, 40000, 80, 0, Status.OK),          # 0 tcp http
    (4, "10.0.0.2", "10.0.0.1", 6, 80, 40000, 0, Status.OK),          # 1 tcp reply
    (4, "10.0.0.1", "192.168.1.53", 17, 5353, 53, 0, Status.OK),      # 2 udp dns
    (4, "192.168.1.53", "10.0.0.1", 17, 53, 5353, 0, Status.OK),      # 3 udp reply
    (4, "10.0.0.9", "10.0.0.1", 1, 0, 0, 0, Status.OK),               # 4 icmp
    (6, "fd00::1", "fd00::2", 6, 50000, 443, 0, Status.OK),           # 5 tcp v6
    (6, "fd00::2", "2001:db8::7", 17, 123, 123, 0, Status.OK),        # 6 udp v6 ntp
    (6, "fd00::1", "ff02::1", 58, 0, 0, 0, Status.OK),                # 7 icmp6
    (4, "172.16.5.4", "10.0.0.2", 6, 1234, 8080, 100, Status.OK),     # 8 tcp on vlan 100
    (4, "172.16.5.4", "10.0.0.2", 6, 0, 0, 0, Status.FRAGMENT),       # 9 later fragment: no ports
    (0, None, None, 0, 0, 0, 0, Status.NON_IP),                       # 10 ARP
    (4, "10.0.0.1", "10.0.0.2", 17, 80, 9999, 200, Status.OK),        # 11 udp from port 80, vlan 200
]


def addr16(text):
    if text is None:
        return bytes(16)
    a = ipaddress.ip_address(text)
    return a.packed if a.version == 6 else ipaddress.IPv6Address("::ffff:" + text).packed


def packet_batch(rows=ROWS) -> pa.RecordBatch:
    n = len(rows)
    cols = {}
    for field in PACKET_SCHEMA:
        if field.name in ("src_ip", "dst_ip"):
            continue
        if pa.types.is_timestamp(field.type):
            cols[field.name] = pa.array(np.arange(n, dtype=np.int64), type=field.type)
        elif pa.types.is_fixed_size_binary(field.type):  # the tunnel addresses
            cols[field.name] = pa.array([bytes(field.type.byte_width)] * n, type=field.type)
        else:
            cols[field.name] = pa.array(np.zeros(n, dtype=field.type.to_pandas_dtype()), type=field.type)
    cols["index"] = pa.array(np.arange(n), type=pa.int64())
    # a later fragment (offset > 0) has no ports; first fragments (offset 0) have theirs
    cols["frag_offset"] = pa.array([185 if r[7] == Status.FRAGMENT else 0 for r in rows], type=pa.uint16())
    cols["ip_version"] = pa.array([r[0] for r in rows], type=pa.uint8())
    cols["src_ip"] = pa.array([addr16(r[1]) for r in rows], type=pa.binary(16))
    cols["dst_ip"] = pa.array([addr16(r[2]) for r in rows], type=pa.binary(16))
    cols["ip_proto"] = pa.array([r[3] for r in rows], type=pa.uint8())
    cols["src_port"] = pa.array([r[4] for r in rows], type=pa.uint16())
    cols["dst_port"] = pa.array([r[5] for r in rows], type=pa.uint16())
    cols["vlan"] = pa.array([r[6] for r in rows], type=pa.uint16())
    cols["status"] = pa.array([int(r[7]) for r in rows], type=pa.uint8())
    return pa.RecordBatch.from_arrays([cols[f.name] for f in PACKET_SCHEMA], schema=PACKET_SCHEMA)


def kept(expr, batch=None):
    mask = compile_filter(expr)(packet_batch() if batch is None else batch)
    assert mask.dtype == bool
    return set(np.flatnonzero(mask).tolist())


ALL = set(range(len(ROWS)))


@pytest.mark.parametrize(
    "expr, rows",
    [
        ("tcp", {0, 1, 5, 8, 9}),
        ("udp", {2, 3, 6, 11}),
        ("icmp", {4}),
        ("icmp6", {7}),
        ("ip", {0, 1, 2, 3, 4, 8, 9, 11}),
        ("ip6", {5, 6, 7}),
        ("host 10.0.0.1", {0, 1, 2, 3, 4, 11}),
        ("src host 10.0.0.1", {0, 2, 11}),
        ("dst host 10.0.0.1", {1, 3, 4}),
        ("host fd00::2", {5, 6}),
        ("src host fd00::2", {6}),
        ("net 10.0.0.0/24", {0, 1, 2, 3, 4, 8, 9, 11}),
        ("src net 172.16.0.0/12", {8, 9}),
        ("net 192.168.0.0 mask 255.255.0.0", {2, 3}),
        ("net 192.168", {2, 3}),
        ("net fd00::/16", {5, 6, 7}),
        ("dst net 2001:db8::/32", {6}),
        ("port 80", {0, 1, 11}),
        ("dst port 80", {0}),
        ("src port 80", {1, 11}),
        ("tcp port 80", {0, 1}),
        ("udp src port 80", {11}),
        ("port 0", set()),  # fragments and ICMP have no ports, as in tcpdump
        ("portrange 50-130", {0, 1, 2, 3, 6, 11}),
        ("dst portrange 8000-9999", {8, 11}),
        ("src and dst port 123", {6}),
        ("src or dst port 53", {2, 3}),
        ("vlan 100", {8}),
        ("vlan", {8, 11}),
        ("not ip and not ip6", {10}),
        ("ip host 10.0.0.9", {4}),
        ("ip6 net fd00::/64", {5, 6, 7}),
    ],
)
def test_each_primitive(expr, rows):
    assert kept(expr) == rows


def test_ipv4_host_does_not_match_ipv6_packets_with_mapped_bits():
    # an IPv6 packet whose address happens to be ::ffff:10.0.0.1 is not IPv4 10.0.0.1
    rows = [(6, "::ffff:10.0.0.1", "fd00::1", 6, 1, 2, 0, Status.OK), ROWS[0]]
    assert kept("host 10.0.0.1", packet_batch(rows)) == {1}


def test_precedence_is_tcpdumps():
    # pcap-filter(7): not binds tightest; and/or have equal precedence, left-associative
    assert parse("not tcp and udp or icmp") == Or(And(Not(Proto("tcp")), Proto("udp")), Proto("icmp"))
    assert parse("tcp or udp and icmp") == And(Or(Proto("tcp"), Proto("udp")), Proto("icmp"))
    assert parse("tcp and udp or icmp") == Or(And(Proto("tcp"), Proto("udp")), Proto("icmp"))
    assert parse("!(tcp || udp) && ip6") == And(Not(Or(Proto("tcp"), Proto("udp"))), Proto("ip6"))
    assert parse("tcp or (udp and icmp)") == Or(Proto("tcp"), And(Proto("udp"), Proto("icmp")))
    assert parse("tcp or udp or icmp") == Or(Or(Proto("tcp"), Proto("udp")), Proto("icmp"))
    assert parse("not not tcp") == Not(Not(Proto("tcp")))
    assert parse("not tcp or udp") == Or(Not(Proto("tcp")), Proto("udp"))


def test_qualifier_forms():
    assert parse("src or dst port 53") == Port("or", 53, 53)
    assert parse("src and dst port 53") == Port("and", 53, 53)
    # "src or dst" without a kind word after it is two expressions, as in tcpdump
    with pytest.raises(FilterError):
        parse("src or dst")
    assert parse("portrange 90-80") == Port("or", 80, 90)
    assert parse("vlan 7") == Vlan(7)
    assert parse("dst net 10.0.0.0/8") == Net("dst", ipaddress.ip_network("10.0.0.0/8"))


def test_bare_value_repeats_previous_qualifiers():
    assert parse("port 80 or 443") == Or(Port("or", 80, 80), Port("or", 443, 443))
    assert parse("port 80 or 443 and host 1.1.1.1") == And(
        Or(Port("or", 80, 80), Port("or", 443, 443)), Net("or", ipaddress.ip_network("1.1.1.1/32"))
    )
    assert parse("dst host 10.0.0.1 or 10.0.0.2") == Or(
        Net("dst", ipaddress.ip_network("10.0.0.1/32")), Net("dst", ipaddress.ip_network("10.0.0.2/32"))
    )
    assert kept("port 53 or 443") == {2, 3, 5}


def test_precedence_changes_results():
    # (tcp and port 80) or udp  vs  tcp and (port 80 or udp)
    assert kept("tcp and port 80 or udp") == {0, 1, 2, 3, 6, 11}
    assert kept("tcp and (port 80 or udp)") == {0, 1}
    # (udp or tcp) and port 80: equal precedence, left to right
    assert kept("udp or tcp and port 80") == {0, 1, 11}
    assert kept("udp or (tcp and port 80)") == {0, 1, 2, 3, 6, 11}
    assert kept("not tcp and not udp") == {4, 7, 10}
    assert kept("not (tcp or udp)") == {4, 7, 10}
    assert kept("! tcp && ! udp || vlan 100") == {4, 7, 8, 10}


def test_complement_partitions_the_batch():
    for expr in ("tcp", "host 10.0.0.1", "portrange 1-1000", "net fd00::/8"):
        assert kept(expr) | kept(f"not ({expr})") == ALL
        assert not kept(expr) & kept(f"not ({expr})")


def test_keywords_are_case_insensitive():
    assert kept("TCP AND DST PORT 80") == {0}


def test_table_and_sliced_batches():
    batch = packet_batch()
    table = pa.Table.from_batches([batch.slice(0, 5), batch.slice(5)])
    assert set(np.flatnonzero(compile_filter("host 10.0.0.1")(table))) == kept("host 10.0.0.1")
    # a sliced batch has a non-zero offset into the address buffers
    sliced = batch.slice(2, 4)
    got = np.flatnonzero(compile_filter("src host 192.168.1.53")(sliced)).tolist()
    assert got == [1]


def test_empty_batch():
    empty = packet_batch()[:0]
    assert compile_filter("tcp and host 10.0.0.1")(empty).shape == (0,)


@pytest.mark.parametrize(
    "expr, pos, words",
    [
        ("tcp and", 7, "ends too early"),
        ("port 80 &", 8, "unexpected character '&'"),
        ("host 10.0.0", 5, "not an IPv4 or IPv6 address"),
        ("(tcp or udp", 0, "never closed"),
        ("tcp)", 3, "unmatched ')'"),
        ("port 70000", 5, "not a port number"),
        ("portrange 5-x", 12, "'x' is not a port number"),
        ("portrange 80", 10, "portrange needs A-B"),
        ("frobnicate", 0, "unknown primitive 'frobnicate'"),
        ("src foo 1", 4, "expected host, net, port or portrange"),
        ("net 10.0.0.1/24", 4, "not a network"),
        ("tcp host 10.0.0.1", 9, "not a valid qualifier pair"),
        ("vlan 5000", 5, "not in 0-4095"),
        ("", 0, "empty expression"),
        ("tcp or or udp", 7, "expected a primitive before 'or'"),
        ("ip host fd00::1", 8, "not an IPv4 address"),
    ],
)
def test_error_points_at_bad_token(expr, pos, words):
    with pytest.raises(FilterError) as info:
        compile_filter(expr)
    message = str(info.value)
    assert isinstance(info.value, FlowkitError)
    assert words in message
    assert f"at position {pos}" in message
    lines = message.splitlines()
    assert lines[1] == "  " + expr
    assert lines[2] == "  " + " " * pos + "^"


# ----------------------------------------------------------------------------- flow tables
FLOWS = [
    # proto, ip_version, src_ip, src_port, dst_ip, dst_port, vlan
    ("tcp", 4, "10.99.0.2", 40000, "10.99.0.1", 80, 0),
    ("udp", 4, "10.99.0.2", 50000, "10.99.0.1", 53, 0),
    ("tcp", 6, "fd99::2", 41000, "fd99::1", 8081, 0),
    ("tcp", 4, "10.99.0.3", 39000, "10.99.0.1", 22, 10),
    ("udp", 6, "fd99::2", 123, "2001:db8::1", 123, 0),
]


def flow_table() -> pa.Table:
    n = len(FLOWS)
    data = {}
    for field in FLOW_SCHEMA:
        data[field.name] = pa.nulls(n, type=field.type)
    for i, name in enumerate(("proto", "ip_version", "src_ip", "src_port", "dst_ip", "dst_port", "vlan")):
        data[name] = pa.array([f[i] for f in FLOWS], type=FLOW_SCHEMA.field(name).type)
    return pa.table(data, schema=FLOW_SCHEMA)


@pytest.mark.parametrize(
    "expr, rows",
    [
        ("tcp", {0, 2, 3}),
        ("udp", {1, 4}),
        ("ip6", {2, 4}),
        ("src host 10.99.0.3", {3}),
        ("host 10.99.0.1", {0, 1, 3}),
        ("dst net fd99::/64", {2}),
        ("net fd99::/64", {2, 4}),
        ("dst port 53", {1}),
        ("port 123", {4}),
        ("tcp and portrange 1-1023", {0, 3}),
        ("vlan 10", {3}),
        ("not src net 10.99.0.0/24", {2, 4}),
        ("udp port 80", set()),
    ],
)
def test_flow_filter(expr, rows):
    table = flow_table()
    assert set(np.flatnonzero(compile_flow_filter(expr)(table)).tolist()) == rows
    # the same answer on a pandas DataFrame of the table
    df = table.to_pandas()
    assert set(np.flatnonzero(compile_flow_filter(expr)(df)).tolist()) == rows
