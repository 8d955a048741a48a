"""local_orig / local_resp against Zeek's own conn.logs (the default local networks).

Truth: every row of the Zeek baselines in ../shared/corpus/zeek, written by Zeek with its
default ``Site::local_nets`` (private address space counted as local).
"""
from __future__ import annotations

import ipaddress

import numpy as np
import pytest

from flowkit.flows.local import DEFAULT, LocalNets


def _matrix(texts):
    out = []
    for t in texts:
        ip = ipaddress.ip_address(t)
        out.append((b"\0" * 10 + b"\xff\xff" + ip.packed) if ip.version == 4 else ip.packed)
    return np.frombuffer(b"".join(out), np.uint8).reshape(-1, 16)


def _baseline_rows(corpus):
    rows = []
    for log in sorted((corpus / "zeek" / "baselines").glob("*/conn.log")):
        fields = None
        for line in log.read_text().splitlines():
            if line.startswith("#fields"):
                fields = line.split("\t")[1:]
            elif line and not line.startswith("#") and fields:
                r = dict(zip(fields, line.split("\t")))
                for side in ("orig", "resp"):
                    if r.get(f"local_{side}") in ("T", "F"):
                        rows.append((log.parent.name, r[f"id.{side}_h"], r[f"local_{side}"] == "T"))
    return rows


@pytest.mark.corpus
def test_default_matches_zeek_baselines(corpus):
    rows = _baseline_rows(corpus)
    assert len(rows) > 200
    got = DEFAULT.contains(_matrix([a for _, a, _ in rows]))
    wrong = [(t, a, want) for (t, a, want), g in zip(rows, got) if g != want]
    assert wrong == []


def test_boundaries():
    addrs = ["10.0.0.0", "10.255.255.255", "11.0.0.0", "9.255.255.255", "172.15.255.255", "172.16.0.1",
             "172.31.255.255", "172.32.0.0", "fe80::1", "febf::1", "fec0::1", "::", "::2", "2001:1ff::1",
             "2001:200::1", "255.255.255.255", "255.255.255.254"]
    want = [True, True, False, False, False, True, True, False, True, True, False, True, False, True, False,
            True, True]  # 255.255.255.254 is in 240.0.0.0/4
    assert list(DEFAULT.contains(_matrix(addrs))) == want


def test_user_networks():
    nets = LocalNets(["8.8.8.0/24", "2001:4860::/32"])
    got = nets.contains(_matrix(["8.8.8.8", "8.8.9.8", "2001:4860::8888", "10.0.0.1"]))
    assert list(got) == [True, False, True, False]
