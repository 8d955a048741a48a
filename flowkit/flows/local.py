"""``local_orig`` / ``local_resp``: is an address inside the local networks?

The default is Zeek's: ``Site::private_address_space`` (IANA's special-purpose blocks
that are not routable, with their 6to4 forms) counts as local because Zeek's
``Site::private_address_space_is_local`` is true by default and ``Site::local_nets`` is
empty. Users pass their own networks with ``local_nets=``; docs/schema.md.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable

import numpy as np

from flowkit.flows import _rows

# scripts/base/utils/site.zeek, Site::private_address_space
ZEEK_PRIVATE_ADDRESS_SPACE = (
    "0.0.0.0/8", "2002::/24",
    "10.0.0.0/8", "2002:a00::/24",
    "100.64.0.0/10", "2002:6440::/26",
    "127.0.0.0/8", "2002:7f00::/24",
    "169.254.0.0/16", "2002:a9fe::/32",
    "172.16.0.0/12", "2002:ac10::/28",
    "192.0.0.0/24", "2002:c000::/40",
    "192.0.2.0/24", "2002:c000:200::/40",
    "192.168.0.0/16", "2002:c0a8::/32",
    "198.18.0.0/15", "2002:c612::/31",
    "198.51.100.0/24", "2002:c633:6400::/40",
    "203.0.113.0/24", "2002:cb00:7100::/40",
    "240.0.0.0/4", "2002:f000::/20",
    "255.255.255.255/32", "2002:ffff:ffff::/48",
    "::/128", "::1/128", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:2::/48",
    "2001:db8::/32", "fc00::/7", "fe80::/10",
    # not in site.zeek's list, but current Zeek's conn.logs mark the IPv4 local network control
    # block local (its test baselines: 224.0.0.5, .9, .18 are local_resp T, ff02:: is F)
    "224.0.0.0/24",
)


class LocalNets:
    """Networks as 128-bit (prefix, mask) word pairs; IPv4 as IPv4-mapped IPv6 (::ffff:0:0/96)."""

    def __init__(self, nets: Iterable[str] = ZEEK_PRIVATE_ADDRESS_SPACE):
        rows = []
        for text in nets:
            net = ipaddress.ip_network(text, strict=False)
            if net.version == 4:
                net = ipaddress.IPv6Network((int(net.network_address) | 0xFFFF << 32, 96 + net.prefixlen))
            mask = ((1 << 128) - 1) ^ ((1 << (128 - net.prefixlen)) - 1)
            prefix = int(net.network_address) & mask
            rows.append((prefix >> 64, prefix & (2**64 - 1), mask >> 64, mask & (2**64 - 1)))
        self.nets = tuple(nets)
        self.words = np.array(rows, np.uint64).reshape(-1)  # prefix hi, lo, mask hi, lo per network (_rows.c)

    def contains(self, addrs: np.ndarray) -> np.ndarray:
        """Boolean per row of an (n, 16) uint8 matrix of binary(16) addresses."""
        words = np.ascontiguousarray(addrs, np.uint8).view(">u8").astype(np.uint64)
        return self.contains_words(words[:, 0], words[:, 1])

    def contains_words(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """Boolean per address given as its high and low 64-bit words (uint64 arrays)."""
        hi = np.ascontiguousarray(np.asarray(hi).view(np.uint64))
        lo = np.ascontiguousarray(np.asarray(lo).view(np.uint64))
        out = np.empty(len(hi), bool)
        _rows.local_bits(hi, lo, self.words, out)  # the rule, in C: rows_to_arrow's local_orig/local_resp
        return out


DEFAULT = LocalNets()


def local_nets_of(nets: Iterable[str] | None) -> LocalNets:
    """The LocalNets of a ``local_nets=`` option (None: Zeek's default)."""
    return DEFAULT if nets is None else LocalNets(nets)


def check_nets(nets) -> tuple[str, ...] | None:
    """``local_nets=`` as a tuple of network strings, each checked; a ValueError names a bad one."""
    if nets is None:
        return None
    if isinstance(nets, str):
        nets = [n for n in nets.split(",") if n.strip()]
    out = tuple(str(n).strip() for n in nets)
    for n in out:
        try:
            ipaddress.ip_network(n, strict=False)
        except ValueError:
            raise ValueError(f"local_nets: {n!r} is not a network (CIDR, e.g. 10.0.0.0/8)") from None
    return out
