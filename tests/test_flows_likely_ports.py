"""Orientation of midstream connections by Zeek's likely server ports.

Truth: the ports Zeek's default scripts register as server ports (``register_for_ports``
in scripts/base/protocols/*/main.zeek and scripts/base/packet-protocols/*/main.zeek),
which current Zeek adds to ``likely_server_ports``. A first UDP packet *from* a likely
port to an unlikely one is flipped (the sender is the responder); a first packet from a
port no default script registers keeps its sender as originator.
"""
from __future__ import annotations

import pytest

import flowkit
from flowgen import batch, pkt

ZEEK_TCP_SERVER = [21, 22, 25, 79, 80, 443, 514, 1434, 3306, 6667, 8080]  # finger, syslog-tcp, mysql
ZEEK_UDP_SERVER = [53, 67, 123, 443, 514, 4011, 4789, 6081, 2152, 3544, 5072]  # dhcp 4011, tunnels
NOT_REGISTERED_TCP = [110, 111, 194, 1723, 2049]  # pop3/irc-194 are DPD-only; rpc, nfs, pptp: no script
NOT_REGISTERED_UDP = [68, 69, 111, 500, 1813, 2049, 4500, 47808]  # 68 is dhcp's client port


def _first_packet_from(port: int, proto: str):
    flags = "A" if proto == "tcp" else ""
    p = pkt(1.0, "192.0.2.10", port, "192.0.2.20", 50123, flags, proto=proto, payload=10, seq=1000)
    row = flowkit.flows(batch([p])).to_pandas().iloc[0]
    return int(row.src_port), row.history


@pytest.mark.parametrize("port", ZEEK_TCP_SERVER)
def test_tcp_server_port_flips(port):
    src_port, history = _first_packet_from(port, "tcp")
    assert src_port == 50123 and history.startswith("^"), (port, src_port, history)


@pytest.mark.parametrize("port", ZEEK_UDP_SERVER)
def test_udp_server_port_flips(port):
    src_port, history = _first_packet_from(port, "udp")
    assert src_port == 50123 and history.startswith("^"), (port, src_port, history)


@pytest.mark.parametrize("port", NOT_REGISTERED_TCP)
def test_tcp_unregistered_port_keeps_sender(port):
    src_port, history = _first_packet_from(port, "tcp")
    assert src_port == port and not history.startswith("^"), (port, src_port, history)


@pytest.mark.parametrize("port", NOT_REGISTERED_UDP)
def test_udp_unregistered_port_keeps_sender(port):
    src_port, history = _first_packet_from(port, "udp")
    assert src_port == port and not history.startswith("^"), (port, src_port, history)
