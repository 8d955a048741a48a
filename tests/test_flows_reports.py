"""The flow engine's side of checksum verification and ICMP error reports, from packet batches
built field by field (the decoder's side: test_flows_checksums.py, test_flows_icmp_errors.py).

Truth: what each built row is: a packet with ``bad_checksum`` set (Zeek without -C leaves it out
of the counts, C/c at the 1st, 10th, ... per side), or the header an ICMP error quotes
(``tunnel_type`` ICMP_QUOTE = 8; ``tunnel_src_ip`` the error's sender, ``tunnel_src_port`` /
``tunnel_dst_port`` its type and code), which reports on the open connection of its five-tuple
and is no packet of it. Both drivers, with and without a memory budget, give the same rows.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

import flowkit
from flowgen import _addr16, batch, pkt
from flowkit.flows import FlowOptions, accumulate

QUOTE = 8  # decode.schema's Tunnel.ICMP_QUOTE
EXTRA = [pa.field("bad_checksum", pa.uint8()), pa.field("tunnel_type", pa.uint8()),
         pa.field("tunnel_src_ip", pa.binary(16)), pa.field("tunnel_src_port", pa.uint16()),
         pa.field("tunnel_dst_port", pa.uint16())]


def rows(packets, extras):
    """A batch of ``packets`` with the extra columns (per packet: bad, quote-or-None)."""
    b = batch(packets)
    cols = {"bad_checksum": [e[0] for e in extras], "tunnel_type": [QUOTE if e[1] else 0 for e in extras],
            "tunnel_src_ip": [_addr16(e[1][0]) if e[1] else bytes(16) for e in extras],
            "tunnel_src_port": [e[1][1] if e[1] else 0 for e in extras],
            "tunnel_dst_port": [e[1][2] if e[1] else 0 for e in extras]}
    for f in EXTRA:  # set, or added when the packet schema has no such column
        values = pa.array(cols[f.name], f.type)
        at = b.schema.get_field_index(f.name)
        b = b.set_column(at, f, values) if at >= 0 else b.append_column(f, values)
    return b


def every_way(b):
    """The table by the one-pass driver (unlimited, 1-byte budget) and by the mergeable one with a
    part per packet: all equal; returns the first as a DataFrame keyed by (proto, src_port, dst_port)."""
    one = flowkit.flows([b], memory=None).to_pandas()
    tiny = flowkit.flows([b], memory=1).to_pandas()
    state = None
    for i in range(b.num_rows):
        part = accumulate([b.slice(i, 1)], FlowOptions())
        state = part if state is None else state.merge(part)
    merged = state.finalize().to_pandas()
    cols = list(one.columns)
    assert tiny[cols].equals(one[cols])
    assert merged[cols].reset_index(drop=True).equals(one[cols].reset_index(drop=True))
    return {(r.proto, r.src_port, r.dst_port): r for r in one.itertuples()}


def test_bad_checksums_open_but_do_not_count():
    packets = [pkt(1.0, "10.0.0.1", 40000, "10.0.0.2", 80, "S", seq=1)]  # a SYN, bad: nothing but C
    packets += [pkt(2.0 + i / 10, "10.0.0.1", 5000, "10.0.0.2", 53, proto="udp", payload=10) for i in range(2)]
    packets += [pkt(3.0 + i / 10, "10.0.0.2", 53, "10.0.0.1", 5000, proto="udp", payload=30) for i in range(10)]
    extras = [(1, None), (0, None), (1, None)] + [(1, None)] * 10
    got = every_way(rows(packets, extras))
    syn = got[("tcp", 40000, 80)]
    assert (syn.src_pkts, syn.dst_pkts, syn.history, syn.conn_state) == (0, 0, "C", "OTH")
    dns = got[("udp", 5000, 53)]
    assert (dns.src_pkts, dns.dst_pkts, dns.history, dns.conn_state) == (1, 0, "DCcc", "S0")
    assert (dns.src_payload_bytes, dns.dst_payload_bytes, dns.ts_end.timestamp()) == (10, 0, 2.0)  # the good one


def test_icmp_reports_tie_to_open_connections_only():
    probe = pkt(1.0, "10.0.0.1", 40000, "192.0.2.9", 161, proto="udp", payload=20)
    icmp = pkt(1.5, "192.0.2.9", 0, "10.0.0.1", 0, proto="icmp", payload=28)
    icmp["icmp_type"], icmp["icmp_code"] = 3, 3
    quote = pkt(1.5, "10.0.0.1", 40000, "192.0.2.9", 161, proto="udp", payload=20)  # the quoted header
    ghost = pkt(1.6, "10.0.0.1", 40001, "192.0.2.9", 162, proto="udp")  # quotes no flow
    late = pkt(70.0, "10.0.0.1", 40000, "192.0.2.9", 161, proto="udp")  # after the 60 s timeout
    router = pkt(1.7, "10.0.0.1", 40000, "192.0.2.9", 161, proto="udp")
    packets = [probe, icmp, quote, ghost, router, late]
    extras = [(0, None), (0, None), (0, ("192.0.2.9", 3, 3)), (0, ("192.0.2.9", 3, 3)),
              (0, ("198.51.100.1", 3, 13)), (0, ("192.0.2.9", 3, 3))]
    got = every_way(rows(packets, extras))
    assert sorted(got) == [("icmp", 3, 3), ("udp", 40000, 161)]  # quotes open nothing
    r = got[("udp", 40000, 161)]
    assert (r.src_pkts, r.dst_pkts, r.src_payload_bytes) == (1, 0, 20)  # quotes are no packets
    assert (r.icmp_errors, r.icmp_error_type, r.icmp_error_code, r.icmp_error_src) == (2, 3, 13, "198.51.100.1")
    assert got[("icmp", 3, 3)].icmp_errors == 0 and np.isnan(got[("icmp", 3, 3)].icmp_error_type)
