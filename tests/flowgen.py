"""Readable packet descriptions -> packet batches (PACKET_SCHEMA) and real pcap files.

    p = pkt(1.0, "10.0.0.1", 40000, "10.0.0.2", 80, "S", seq=100)
    batch([p, ...])                  # pa.RecordBatch with PACKET_SCHEMA
    write_pcap(path, [p, ...])       # an Ethernet pcap built with dpkt, same packets

``Conversation`` writes a TCP exchange with consistent sequence numbers, so tests
state what happened on the wire and derive the expected flow fields from that.
"""
from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass, field

import dpkt
import numpy as np
import pyarrow as pa

from flowkit.decode.schema import PACKET_SCHEMA, Status

FLAG_BITS = {"F": 1, "S": 2, "R": 4, "P": 8, "A": 16, "U": 32, "E": 64, "C": 128}


def flag_bits(flags: str) -> int:
    return sum(FLAG_BITS[c] for c in flags)


def _addr16(text: str) -> bytes:
    ip = ipaddress.ip_address(text)
    if ip.version == 4:
        return b"\x00" * 10 + b"\xff\xff" + ip.packed
    return ip.packed


def pkt(t, src, sport, dst, dport, flags="A", *, seq=0, ack=0, payload=0, proto="tcp", window=65535,
        vlan=0, inner_vlan=0, status=Status.OK, ip_proto=None):
    """One packet as a dict of PACKET_SCHEMA values (``payload`` = payload byte count)."""
    v = ipaddress.ip_address(src).version
    ipp = ip_proto if ip_proto is not None else {"tcp": 6, "udp": 17, "icmp": 1}[proto]
    thl = 20 if ipp == 6 else 8
    ip_hdr = 20 if v == 4 else 40
    return {
        "ts": int(round(t * 1e9)), "caplen": ip_hdr + thl + payload + 14, "wirelen": ip_hdr + thl + payload + 14,
        "iface": 0, "linktype": 1, "vlan": vlan, "inner_vlan": inner_vlan, "status": int(status),
        "ip_version": v, "src_ip": _addr16(src), "dst_ip": _addr16(dst), "ip_proto": ipp,
        "ip_len": ip_hdr + thl + payload, "ttl": 64, "ip_id": 0, "frag": 0, "frag_offset": 0,
        "src_port": sport if ipp in (6, 17) else 0, "dst_port": dport if ipp in (6, 17) else 0,
        "tcp_flags": flag_bits(flags) if ipp == 6 else 0, "seq": seq & 0xFFFFFFFF if ipp == 6 else 0,
        "ack": ack & 0xFFFFFFFF if ipp == 6 else 0, "window": window if ipp == 6 else 0,
        "tcp_hdr_len": 20 if ipp == 6 else 0, "tcp_opts": 0, "mss": 0, "wscale": 0, "tsval": 0, "tsecr": 0,
        "udp_len": 8 + payload if ipp == 17 else 0, "icmp_type": 8 if ipp == 1 else 0, "icmp_code": 0,
        "payload_len": payload, "tunnel_depth": 0, "tunnel_type": 0, "tunnel_src_ip": bytes(16),
        "tunnel_dst_ip": bytes(16), "tunnel_src_port": 0, "tunnel_dst_port": 0, "tunnel_proto": 0,
        # for write_pcap only
        "_t": t, "_src": src, "_dst": dst, "_flags": flags,
    }


def batch(packets: list[dict], first_index: int = 0) -> pa.RecordBatch:
    cols = {}
    for f in PACKET_SCHEMA:
        if f.name == "index":
            cols["index"] = pa.array(np.arange(first_index, first_index + len(packets)), pa.int64())
        elif f.name == "ts":
            cols["ts"] = pa.array([p["ts"] for p in packets], pa.int64()).cast(f.type)
        else:
            cols[f.name] = pa.array([p[f.name] for p in packets], f.type)
    return pa.RecordBatch.from_pydict(cols, schema=PACKET_SCHEMA)


def batches(packets: list[dict], cuts: list[int]) -> list[pa.RecordBatch]:
    """Packets split at the given packet positions into consecutive batches."""
    edges = [0, *sorted(set(c for c in cuts if 0 < c < len(packets))), len(packets)]
    return [batch(packets[a:b], a) for a, b in zip(edges, edges[1:]) if b > a]


def write_pcap(path, packets: list[dict]) -> None:
    """The same packets as a real Ethernet pcap (dpkt), with correct IP lengths."""
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f, nano=True)
        for p in packets:
            v = p["ip_version"]
            data = b"x" * p["payload_len"]
            if p["ip_proto"] == 6:
                l4 = dpkt.tcp.TCP(sport=p["src_port"], dport=p["dst_port"], seq=p["seq"], ack=p["ack"],
                                  flags=p["tcp_flags"] & 0xFF, win=p["window"], data=data)
            elif p["ip_proto"] == 17:
                l4 = dpkt.udp.UDP(sport=p["src_port"], dport=p["dst_port"], data=data)
                l4.ulen = 8 + len(data)
            else:
                l4 = dpkt.icmp.ICMP(type=8, code=0, data=dpkt.icmp.ICMP.Echo(id=1, seq=1, data=data))
            if v == 4:
                ip = dpkt.ip.IP(src=socket.inet_pton(socket.AF_INET, p["_src"]),
                                dst=socket.inet_pton(socket.AF_INET, p["_dst"]), p=p["ip_proto"], data=l4, ttl=64)
                ip.len = 20 + len(bytes(l4))
                eth_type = dpkt.ethernet.ETH_TYPE_IP
            else:
                ip = dpkt.ip6.IP6(src=socket.inet_pton(socket.AF_INET6, p["_src"]),
                                  dst=socket.inet_pton(socket.AF_INET6, p["_dst"]), nxt=p["ip_proto"], hlim=64, data=l4)
                ip.plen = len(bytes(l4))
                eth_type = dpkt.ethernet.ETH_TYPE_IP6
            eth = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=eth_type, data=ip)
            w.writepkt(bytes(eth), ts=p["_t"])


@dataclass
class Conversation:
    """A TCP connection between a client and a server with consistent sequence numbers."""

    client: str
    cport: int
    server: str
    sport: int
    t: float = 1000.0
    step: float = 0.01
    cseq: int = 1000
    sseq: int = 5000
    packets: list = field(default_factory=list)

    def _emit(self, from_client: bool, flags: str, payload: int = 0, seq=None, dt=None):
        self.t += self.step if dt is None else dt
        if from_client:
            p = pkt(self.t, self.client, self.cport, self.server, self.sport, flags,
                    seq=self.cseq if seq is None else seq, ack=self.sseq if "A" in flags else 0, payload=payload)
        else:
            p = pkt(self.t, self.server, self.sport, self.client, self.cport, flags,
                    seq=self.sseq if seq is None else seq, ack=self.cseq if "A" in flags else 0, payload=payload)
        self.packets.append(p)
        return p

    def syn(self, **kw):
        p = self._emit(True, "S", **kw)
        return p

    def synack(self, **kw):
        self.cseq += 1  # the server acknowledges the client's SYN
        p = self._emit(False, "SA", **kw)
        self.sseq += 1
        return p

    def ack(self, from_client=True, **kw):
        return self._emit(from_client, "A", **kw)

    def data(self, from_client: bool, n: int, **kw):
        p = self._emit(from_client, "PA", payload=n, **kw)
        if from_client:
            self.cseq += n
        else:
            self.sseq += n
        return p

    def retransmit(self, packet: dict, dt=None):
        """The same segment again (same seq, same payload)."""
        from_client = packet["src_port"] == self.cport
        return self._emit(from_client, packet["_flags"], payload=packet["payload_len"], seq=packet["seq"], dt=dt)

    def fin(self, from_client: bool, **kw):
        p = self._emit(from_client, "FA", **kw)
        if from_client:
            self.cseq += 1
        else:
            self.sseq += 1
        return p

    def rst(self, from_client: bool, flags="R", **kw):
        return self._emit(from_client, flags, **kw)

    def handshake(self):
        self.syn()
        self.synack()
        self.ack()
        return self

    def close(self):
        self.fin(True)
        self.fin(False)
        self.ack(True)
        return self
