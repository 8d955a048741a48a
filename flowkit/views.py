"""What each command's terminal table shows, and what gives way when it is too wide.

A ``View`` lists the columns shown by default, the *key* columns that are never dropped
(addresses, ports, the protocol: what identifies a row) and the order in which the other
columns are dropped when the terminal is narrow. docs/cli.md ("Terminal tables") states
the same order; JSON and files always get every column.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class View:
    columns: tuple[str, ...]
    keys: frozenset[str]
    drop: tuple[tuple[str, ...], ...] = ()  # groups dropped together, first group first

    def keys_in(self, columns) -> set[str]:
        return {c for c in columns if c in self.keys}


def view(columns: str, keys: str, *drop: str) -> View:
    return View(tuple(columns.split()), frozenset(keys.split()), tuple(tuple(d.split()) for d in drop))


FLOWS = view(
    "ts_start proto src_ip src_port dst_ip dst_port conn_state history src_pkts dst_pkts "
    "src_payload_bytes dst_payload_bytes duration",
    "proto src_ip src_port dst_ip dst_port",
    "history", "duration", "src_pkts dst_pkts", "src_payload_bytes dst_payload_bytes", "ts_start", "conn_state",
)
PACKETS = view(
    "index ts ip_version src_ip src_port dst_ip dst_port ip_proto tcp_flags caplen wirelen payload_len status",
    "src_ip src_port dst_ip dst_port ip_proto",
    "ip_version", "wirelen", "caplen", "status", "tcp_flags", "payload_len", "ts", "index",
)
HANDSHAKES = view(
    "ts_start src_ip src_port dst_ip dst_port outcome conn_state syn_retries rtt_server rtt_client rtt_total",
    "src_ip src_port dst_ip dst_port outcome",
    "conn_state", "rtt_client", "rtt_server", "ts_start", "syn_retries", "rtt_total",
)
HANDSHAKE_SUMMARY = view(
    "outcome flows share syn_retries rtt_server_p50 rtt_client_p50",
    "outcome flows",
    "rtt_client_p50", "rtt_server_p50", "syn_retries", "share",
)
EPHEMERAL = view(
    "client_ip connections destinations port_min port_max range allocation median_step reuse_count "
    "peak_concurrent headroom nat_hint",
    "client_ip connections port_min port_max allocation",
    "nat_hint", "median_step", "peak_concurrent", "reuse_count", "destinations", "headroom", "range",
)
EXPOSURE = view(
    "dst_ip dst_port proto state reason tier service attempts answered rejected unanswered clients",
    "dst_ip dst_port proto state",
    "tier", "clients", "reason", "rejected", "unanswered", "answered", "service", "attempts",
)
SCANS = view(
    "src_ip kind target distinct_ports distinct_hosts attempts failed answered span",
    "src_ip kind target",
    "span", "answered", "attempts", "distinct_hosts", "distinct_ports", "failed",
)
PORT_TIERS = view(
    "tier proto flows packets bytes distinct_server_ports share",
    "tier proto flows",
    "distinct_server_ports", "packets", "bytes", "share",
)
IDENTIFIED = view(
    "server_ip server_port proto port_service services flags flows identified_flows server_names",
    "server_ip server_port proto services flags",
    "identified_flows", "port_service", "flows", "server_names",
)
SERVICES = view(
    "proto dst_port service tier flows packets bytes servers clients",
    "proto dst_port flows",
    "tier", "clients", "servers", "packets", "bytes", "service",
)

# header names used when a header is wider than its values and the table does not fit
# (argus's and Zeek's short names where they have one)
SHORT_HEADERS = {
    "ts_start": "start", "src_port": "sport", "dst_port": "dport", "conn_state": "state",
    "src_pkts": "spkts", "dst_pkts": "dpkts", "src_payload_bytes": "sbytes", "dst_payload_bytes": "dbytes",
    "duration": "dur", "ip_version": "ipv", "ip_proto": "proto", "tcp_flags": "flags", "payload_len": "payload",
    "syn_retries": "retries", "rtt_server": "rtt_srv", "rtt_client": "rtt_cli", "rtt_server_p50": "srv_p50",
    "rtt_client_p50": "cli_p50", "connections": "conns", "destinations": "dests", "median_step": "step",
    "reuse_count": "reuse", "peak_concurrent": "peak", "distinct_ports": "ports", "distinct_hosts": "hosts",
    "unanswered": "unans", "distinct_server_ports": "ports",
}  # fmt: skip

# integer columns that are identifiers, not counts: no thousands separators
IDENTIFIERS = frozenset(
    "src_port dst_port port_min port_max target_port server_port flow_id vlan inner_vlan ip_version ip_proto "
    "tcp_flags index status linktype iface tunnel_src_port tunnel_dst_port icmp_error_type icmp_error_code".split()
)


def is_seconds(name: str) -> bool:
    """Columns holding durations in seconds (shown with microseconds or finer)."""
    return name in ("duration", "span") or name.startswith("rtt_")


def is_share(name: str) -> bool:
    """Columns holding a fraction of 1 (shown as a percentage)."""
    return name == "share" or name.startswith("share_")


def default_view(columns) -> View:
    """A table without its own view: every column; addresses, ports and the first column are keys,
    the others give way from the last one."""
    columns = tuple(columns)
    keys = {c for c in columns if c.endswith(("_ip", "_port", "proto"))} | set(columns[:1])
    return View(columns, frozenset(keys), tuple((c,) for c in reversed(columns) if c not in keys))
