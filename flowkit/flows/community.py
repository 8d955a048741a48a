"""Community ID v1 (seed 0) for whole columns: SHA-1 and base64 in C (``_sha1.c``).

Spec: github.com/corelight/community-id-spec. The hashed message is
seed(2) . a_ip . b_ip . proto(1) . 0(1) [. a_port(2) . b_port(2)], (a_ip, a_port) the
smaller endpoint, so both directions get one ID. Ports are hashed for TCP, UDP, SCTP
and ICMP/ICMPv6 only. ICMP uses the type as source port and the counterpart type (or,
for one-way types, the code) as destination port, as Zeek keys ICMP connections;
one-way messages are hashed in their own direction, not ordered. The message (at most
40 bytes) fits one 64-byte SHA-1 block, which is why a small kernel beats hashlib's
per-call overhead by two orders of magnitude on many flows. Tests check it against
the ``communityid`` package.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from flowkit.flows import _machine
from flowkit.flows._sha1 import WIDTH, community  # WIDTH: "1:" + 28 base64 characters of the digest

# Zeek's ICMP4_counterpart / ICMP6_counterpart, from the flow rules (_rules.h): request/reply
# types share a connection; every other type (-1 here) is one-way.
_PAIR4 = np.array(_machine.ICMP4_COUNTERPART, np.int64)
_PAIR6 = np.array(_machine.ICMP6_COUNTERPART, np.int64)


def icmp_ports(icmp_proto: np.ndarray, icmp_type: np.ndarray, icmp_code: np.ndarray):
    """(src_port, dst_port, one_way) of ICMP messages as Zeek keys them (``icmp_proto`` 1 or 58)."""
    t = np.asarray(icmp_type, np.int64) & 0xFF
    counter = np.where(np.asarray(icmp_proto) == 58, _PAIR6[t], _PAIR4[t])
    one_way = counter < 0
    return t, np.where(one_way, np.asarray(icmp_code, np.int64), counter), one_way


def icmp_one_way(proto: np.ndarray, src_port: np.ndarray) -> np.ndarray:
    """True for ICMP/ICMPv6 rows whose type (``src_port``) has no request/reply counterpart."""
    proto = np.asarray(proto)
    t = np.asarray(src_port, np.int64) & 0xFF
    return ((proto == 1) & (_PAIR4[t] < 0)) | ((proto == 58) & (_PAIR6[t] < 0))


def community_ids(ahi, alo, bhi, blo, aport, bport, proto, ip_version) -> pa.Array:
    """Community ID strings for endpoint columns (A = the smaller endpoint, or the sender of a one-way message)."""
    n = len(ahi)
    out = np.zeros((n, WIDTH), np.uint8)
    if n:
        u = lambda a: np.ascontiguousarray(np.asarray(a)).view(np.int64)  # noqa: E731  (bit pattern)
        i64 = lambda a: np.ascontiguousarray(a, np.int64)  # noqa: E731
        community(u(ahi), u(alo), u(bhi), u(blo), i64(aport), i64(bport), i64(proto),
                  np.ascontiguousarray(np.asarray(ip_version) == 4), out)
    # every ID is exactly WIDTH characters: the matrix is already the string data
    offsets = np.arange(0, (n + 1) * WIDTH, WIDTH, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(out.reshape(-1))])


def oriented_community_ids(shi, slo, dhi, dlo, sport, dport, proto, ip_version) -> pa.Array:
    """Community IDs from originator (s) and responder (d) columns: orders each row per the spec.

    Address words are uint64/int64 bit patterns of the big-endian high/low halves (IPv4
    mapped: the address in the low 32 bits); ICMP ports are type and counterpart/code.
    """
    shi, slo, dhi, dlo = (np.asarray(a).view(np.uint64) for a in (shi, slo, dhi, dlo))
    sport, dport = np.asarray(sport, np.int64), np.asarray(dport, np.int64)
    proto = np.asarray(proto, np.int64)
    # byte order of the packed addresses = (hi, lo) word order; ports compare only on equal addresses
    swap = (shi > dhi) | ((shi == dhi) & (slo > dlo)) | ((shi == dhi) & (slo == dlo) & (sport > dport))
    swap &= ~icmp_one_way(proto, sport)
    pick = lambda a, b: np.where(swap, b, a)  # noqa: E731
    return community_ids(pick(shi, dhi), pick(slo, dlo), pick(dhi, shi), pick(dlo, slo), pick(sport, dport),
                         pick(dport, sport), proto, ip_version)
