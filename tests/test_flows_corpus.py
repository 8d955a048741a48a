"""Flow tables of the real third-party corpus: no packet lost, no crash, stable under chunking."""
from __future__ import annotations

import numpy as np
import pytest

import flowkit
from conftest import corpus_files
from flowkit.decode.schema import Tunnel

pytestmark = pytest.mark.corpus


def test_every_ip_packet_lands_in_exactly_one_flow(corpus):
    files = corpus_files("nfstream")
    assert files, "no nfstream captures in the corpus"
    flows_total = 0
    for path in files:
        table = flowkit.flows(path)
        table.stats.check()
        t = table.to_arrow()
        in_flows = int(t.column("src_pkts").to_numpy().sum() + t.column("dst_pkts").to_numpy().sum())
        c = table.stats.counts
        # IP rows: the records' own (the ledger's) and those of packets inside tunnels; the
        # headers ICMP errors quote are no packets (they report on a flow, flows.icmp_errors)
        rows = flowkit.packets(path).to_arrow()
        ok = rows.column("status").to_numpy() == 0
        quote = rows.column("tunnel_type").to_numpy() == Tunnel.ICMP_QUOTE
        assert in_flows == int((ok & ~quote).sum()), path.name
        assert int(t.column("icmp_errors").to_numpy().sum()) <= int((ok & quote).sum()), path.name
        outer = ok & (rows.column("tunnel_depth").to_numpy() == 0)
        assert int(outer.sum()) == c["tcp"] + c["udp"] + c["icmp"] + c["other_ip"], path.name
        assert (t.column("duration").to_numpy() >= 0).all(), path.name
        flows_total += len(table)
    assert flows_total > 1000


def test_small_chunks_give_the_same_table(corpus):
    # decoding in many small chunks streams many batches through the same state
    files = sorted((p for p in corpus_files("nfstream") if p.stat().st_size < 4 << 20), key=lambda p: p.stat().st_size)
    assert files
    for path in files[-3:]:  # the three largest under 4 MB
        name = path.name
        whole = flowkit.flows(path).to_arrow()
        chunked = flowkit.flows(path, chunk_bytes=64 << 10).to_arrow()
        assert chunked.equals(whole), name
        assert np.all(np.diff(whole.column("ts_start").cast("int64").to_numpy()) >= 0)


def test_community_id_of_every_corpus_flow_matches_the_reference(corpus):
    """Every flow of every corpus capture against the ``communityid`` package (the spec's
    reference implementation): TCP, UDP and SCTP with ports, ICMP/ICMPv6 with the type and
    counterpart type (or code) the flow is keyed by, other protocols by address pair."""
    communityid = pytest.importorskip("communityid")
    cid = communityid.CommunityID()
    FT = communityid.FlowTuple

    def reference(ip_proto, src, dst, sport, dport):
        if ip_proto in (6, 17, 132):
            return FT(ip_proto, src, dst, sport, dport)
        if ip_proto in (1, 58):  # the package pairs the type with its counterpart itself
            return (FT.make_icmp if ip_proto == 1 else FT.make_icmp6)(src, dst, sport, dport)
        return FT.make_ip(src, dst, ip_proto)

    checked, versions, protos = 0, set(), set()
    for path in corpus_files("zeek/traces") + corpus_files("nfstream"):
        t = flowkit.flows(path).to_arrow()
        cols = [t.column(c).to_pylist() for c in ("ip_proto", "src_ip", "dst_ip", "src_port", "dst_port",
                                                  "community_id", "ip_version")]
        for ip_proto, src, dst, sport, dport, got, version in zip(*cols):
            want = cid.calc(reference(ip_proto, src, dst, sport, dport))
            assert got == want, (path.name, ip_proto, src, sport, dst, dport)
            versions.add(version)
            protos.add(ip_proto)
            checked += 1
    assert checked > 4000 and versions == {4, 6} and {1, 6, 17, 58} <= protos
