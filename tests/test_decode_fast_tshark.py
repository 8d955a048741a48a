"""The fast engine against tshark (an independent decoder) on real captures of every link type.

For each packet the fast engine decodes as OK, the header fields tshark reports
(first occurrence: the outer header of tunnelled packets) must equal flowkit's columns.
"""
from __future__ import annotations

import ipaddress
import subprocess

import numpy as np
import pytest

from conftest import CORPUS, require_tool
from flowkit.capture.reader import read_chunks
from flowkit.decode.fast import decode_chunk
from flowkit.decode.schema import Status

CAPTURES = [
    "nfstream/synscan.pcap",  # Ethernet, SYNs with many TCP options
    "nfstream/weibo.pcap",  # Ethernet TCP/UDP mix
    "nfstream/quickplay.pcap",  # Linux cooked (113)
    "nfstream/dlt_ppp.pcap",  # PPP (9)
    "nfstream/raw.pcap",  # raw IP (101)
    "nfstream/nats.pcap",  # BSD null (0)
    "zeek/traces/redis/pubsub.pcap",  # BSD null (0)
    "zeek/traces/linux_dlt_sll2.pcap",  # SLL2 (276)
    "zeek/traces/mpls-in-vlan.pcap",  # VLAN + MPLS
    "zeek/traces/pppoe-over-qinq.pcap",  # QinQ + PPPoE
    "zeek/traces/ftp/ipv6.pcap",  # IPv6
    "zeek/traces/http/261/variant-03-cl_negative.pcap",  # raw IPv4 (228)
    "zeek/traces/icmp/icmp6-mldv2.pcap",  # raw IPv6 (229), hop-by-hop header
]

# tshark field -> (flowkit column, converter of tshark's text)
FIELDS = {
    "ip.proto": ("ip_proto", int),
    "ip.ttl": ("ttl", int),
    "ip.len": ("ip_len", int),
    "ip.id": ("ip_id", lambda s: int(s, 16)),
    "ipv6.hlim": ("ttl", int),
    "tcp.srcport": ("src_port", int),
    "tcp.dstport": ("dst_port", int),
    "udp.srcport": ("src_port", int),
    "udp.dstport": ("dst_port", int),
    "udp.length": ("udp_len", int),
    "tcp.seq_raw": ("seq", int),
    "tcp.ack_raw": ("ack", int),
    "tcp.flags": ("tcp_flags", lambda s: int(s, 16)),
    "tcp.window_size_value": ("window", int),
    "tcp.hdr_len": ("tcp_hdr_len", int),
    "tcp.options.mss_val": ("mss", int),
    "tcp.options.wscale.shift": ("wscale", int),
    "tcp.options.timestamp.tsval": ("tsval", int),
    "tcp.options.timestamp.tsecr": ("tsecr", int),
    "icmp.type": ("icmp_type", int),
    "icmpv6.type": ("icmp_type", int),
    "vlan.id": ("vlan", int),
}
ADDRESSES = {"ip.src": "src_ip", "ip.dst": "dst_ip", "ipv6.src": "src_ip", "ipv6.dst": "dst_ip"}


def tshark_rows(tshark: str, path) -> list[dict]:
    names = ["frame.number", *FIELDS, *ADDRESSES]
    cmd = [tshark, "-n", "-r", str(path), "-T", "fields", "-E", "separator=\t", "-E", "occurrence=f",
           "-o", "tcp.analyze_sequence_numbers:FALSE"]
    for n in names:
        cmd += ["-e", n]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    return [dict(zip(names, line.split("\t"))) for line in out.splitlines()]


def addr16(text: str) -> bytes:
    ip = ipaddress.ip_address(text)
    return (b"\0" * 10 + b"\xff\xff" + ip.packed) if ip.version == 4 else ip.packed


@pytest.mark.corpus
@pytest.mark.parametrize("name", CAPTURES)
def test_fields_agree_with_tshark(name):
    tshark = require_tool("tshark")
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"{path} not in the corpus")
    batches = [decode_chunk(ch).to_pydict() for ch in read_chunks(path)]
    ours = {k: [v for b in batches for v in b[k]] for k in batches[0]}
    theirs = tshark_rows(tshark, path)
    assert len(theirs) == len(ours["index"])
    compared = 0
    for i, t in enumerate(theirs):
        if ours["status"][i] != Status.OK:
            continue
        ip_version = ours["ip_version"][i]
        proto = ours["ip_proto"][i]
        for field, (col, conv) in FIELDS.items():
            value = t.get(field, "")
            if not value:
                continue
            if field.startswith(("ip.", "icmp.")) and ip_version != 4:
                continue  # e.g. an IPv4 header inside an ICMPv6 error or a tunnel
            if field.startswith(("ipv6.", "icmpv6.")) and ip_version != 6:
                continue
            if field.startswith("tcp.") and proto != 6 or field.startswith("udp.") and proto != 17:
                continue  # tshark also shows headers quoted inside ICMP errors
            if field.startswith(("icmp.", "icmpv6.")) and proto not in (1, 58):
                continue
            if field == "tcp.flags":
                assert ours[col][i] & 0xFF == conv(value) & 0xFF, (name, i + 1, field)
                continue
            assert ours[col][i] == conv(value), (name, i + 1, field, ours[col][i], value)
            compared += 1
        for field, col in ADDRESSES.items():
            value = t.get(field, "")
            if value and (field.startswith("ipv6.") == (ip_version == 6)):
                assert ours[col][i] == addr16(value), (name, i + 1, field)
                compared += 1
    assert compared > 0
    assert np.count_nonzero(np.array(ours["status"]) == Status.OK) > 0
