"""Flow table columns: the public contract (documented in docs/schema.md).

One row per connection. ``src_*`` is the originator, ``dst_*`` the responder,
as Zeek's id.orig_*/id.resp_*.
"""
from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("ns", tz="UTC")

# The columns that may be null: the times of events that did not happen and the ICMP error
# columns of connections without one (flows/rows.py's validity bitmaps). Every other column
# has a value in every row (not null in the schema: Parquet files mark them required, which
# spares the writer a definition level per value, 16 % of its time on 3 M flows).
MAY_BE_NULL = frozenset(["ts_start", "ts_end", "syn_ts", "syn_last_ts", "synack_ts", "ack_ts", "icmp_error_type",
                         "icmp_error_code", "icmp_error_src"])

_DIR_COUNTS = [
    pa.field(f"{side}_{flag}", pa.uint32())
    for side in ("src", "dst")
    for flag in ("syn", "fin", "rst", "ack", "psh", "urg", "ece", "cwr")
]

FLOW_SCHEMA = pa.schema(
    f.with_nullable(f.name in MAY_BE_NULL)
    for f in [
        pa.field("flow_id", pa.uint64()),  # stable hash of the oriented five-tuple and ts_start
        pa.field("ts_start", TS),
        pa.field("ts_end", TS),
        pa.field("duration", pa.float64()),  # seconds
        pa.field("proto", pa.string()),  # "tcp" | "udp" | "icmp" (IPv4 and IPv6, as Zeek) | other: PROTO_NAMES
        pa.field("ip_proto", pa.uint8()),  # IP protocol number (ICMPv6: 58)
        pa.field("ip_version", pa.uint8()),
        pa.field("src_ip", pa.string()),
        pa.field("src_port", pa.uint16()),
        pa.field("dst_ip", pa.string()),
        pa.field("dst_port", pa.uint16()),
        pa.field("src_pkts", pa.uint64()),
        pa.field("dst_pkts", pa.uint64()),
        pa.field("src_ip_bytes", pa.uint64()),  # Zeek orig_ip_bytes
        pa.field("dst_ip_bytes", pa.uint64()),  # Zeek resp_ip_bytes
        pa.field("src_payload_bytes", pa.uint64()),  # Zeek orig_bytes (TCP: from sequence numbers)
        pa.field("dst_payload_bytes", pa.uint64()),
        pa.field("conn_state", pa.string()),  # Zeek's 13 states
        pa.field("local_orig", pa.bool_()),  # originator address in the local networks (flows/local.py)
        pa.field("local_resp", pa.bool_()),
        pa.field("missed_bytes", pa.uint64()),  # Zeek missed_bytes: acknowledged bytes never seen (content gaps)
        pa.field("history", pa.string()),  # Zeek's history letters
        *_DIR_COUNTS,
        pa.field("syn_ts", TS),  # first originator SYN (no ACK); null when none
        pa.field("syn_last_ts", TS),  # last originator SYN before the first SYN-ACK (the one it answers)
        pa.field("synack_ts", TS),  # first responder SYN-ACK
        pa.field("ack_ts", TS),  # first originator ACK after the SYN-ACK (handshake complete)
        pa.field("syn_count", pa.uint32()),  # originator SYNs (retries = syn_count - 1)
        pa.field("community_id", pa.string()),  # Community ID v1, seed 0
        pa.field("icmp_errors", pa.uint32()),  # ICMP errors quoting this connection's five-tuple
        pa.field("icmp_error_type", pa.uint8()),  # the last one's type (ICMP or ICMPv6 by ip_version); null: none
        pa.field("icmp_error_code", pa.uint8()),
        pa.field("icmp_error_src", pa.string()),  # who sent the last one
        pa.field("vlan", pa.uint16()),
        pa.field("inner_vlan", pa.uint16()),
        pa.field("service", pa.string()),  # Zeek names confirmed from payload, sorted, comma-separated; "" = none
        pa.field("server_name", pa.string()),  # TLS SNI, else the HTTP Host header; "" = none
        # flow_ids of the connections this one's packets came through (Zeek's tunnel_parents); [] if none
        pa.field("tunnel_parents", pa.list_(pa.uint64())),
    ]
)


# each side's packet, IP byte and payload byte counts
COUNTERS = ("src_pkts", "dst_pkts", "src_ip_bytes", "dst_ip_bytes", "src_payload_bytes", "dst_payload_bytes")


def nullable(schema: pa.Schema) -> pa.Schema:
    """``schema`` with every field nullable."""
    return pa.schema(f.with_nullable(True) for f in schema)


# tables from elsewhere (a Zeek conn.log) may lack any value: they use every field nullable
NULLABLE_SCHEMA = nullable(FLOW_SCHEMA)

FLOW_COLUMNS = FLOW_SCHEMA.names

# ``proto`` of flows that are neither TCP, UDP nor ICMP: IANA's protocol keyword, lower
# case; numbers without one read "ip-N". Zeek writes all of them as "unknown_transport".
PROTO_NAMES = {
    0: "hopopt", 2: "igmp", 3: "ggp", 4: "ipv4", 8: "egp", 9: "igp", 41: "ipv6", 46: "rsvp", 47: "gre", 50: "esp",
    51: "ah", 88: "eigrp", 89: "ospf", 94: "ipip", 97: "etherip", 103: "pim", 108: "ipcomp", 112: "vrrp",
    115: "l2tp", 124: "isis", 132: "sctp", 133: "fc", 136: "udplite", 137: "mpls-in-ip",
}


def zeek_proto(proto: str) -> str:
    """Zeek's conn.log ``proto`` for a flowkit ``proto``: tcp, udp, icmp, or unknown_transport."""
    return proto if proto in ("tcp", "udp", "icmp") else "unknown_transport"


def proto_numbers(proto, ip_version):
    """IP protocol numbers implied by ``proto`` names (numpy arrays; icmp: 1 or 58 by IP
    version); -1 where a name says no number (unknown_transport, other names)."""
    import numpy as np

    p = np.asarray(proto, dtype=object)
    icmp = np.where(np.asarray(ip_version) == 6, 58, 1)
    return np.select([p == "tcp", p == "udp", p == "icmp", p == "icmp6", p == "sctp"], [6, 17, icmp, 58, 132], -1)


def proto_names() -> list[str]:
    """The ``proto`` text of each IP protocol number 0-255."""
    names = [PROTO_NAMES.get(n, f"ip-{n}") for n in range(256)]
    names[6], names[17], names[1], names[58] = "tcp", "udp", "icmp", "icmp"
    return names
