"""flowkit's flow table against Zeek's own baseline conn.log files (../shared/corpus/zeek).

Thresholds: packets and IP bytes per direction on >= 99% of compared rows, conn_state and
history on >= 97%, service on >= 95%, payload bytes (orig_bytes, resp_bytes) and missed_bytes
on every row where Zeek logs them, tunnel_parents on every row but GRE inside UDP. Runs without
-C are compared with checksums verified. Scoring, exclusions (rows of link types the packet layer
does not decode) and the per-trace table live in
benchmarks/conformance_report.py, which also regenerates docs/conformance.md.
"""
from __future__ import annotations

import importlib.util
import sys

import pytest

from conftest import ROOT

pytestmark = [pytest.mark.corpus, pytest.mark.slow]


def _report():
    spec = importlib.util.spec_from_file_location("conformance_report", ROOT / "benchmarks" / "conformance_report.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def test_zeek_conn_log_conformance(corpus):
    report = _report()
    scores = report.score_all()
    for s in scores:
        counts = min(s.ok[f] for f in report.COUNT_FIELDS) if s.rows else 0
        print(f"{s.test:62s} rows={s.rows:3d} counts={counts:3d} conn_state={s.ok['conn_state']:3d} "
              f"history={s.ok['history']:3d} excluded={dict(s.excluded)} {s.error}")
    assert not [s.test for s in scores if s.error]
    t = report.totals(scores)
    print(t)
    assert t["rows"] >= 100  # the corpus really was compared
    for f in report.COUNT_FIELDS:
        assert t[f] >= 0.99, (f, t[f])
    assert t["conn_state"] >= 0.97 and t["history"] >= 0.97, t
    # runs without -C are compared with verify_checksums=True: Zeek's zero-packet C/c rows of
    # packets with bad checksums are flowkit's too (one-row zeek-cut extracts, compared as such)
    extracts = {s.test: s.extract for s in scores}
    for test in ("core.tcp.bad-checksum-syn", "core.udp-corrupt"):
        assert extracts[test] and all(z == f for _, z, f in extracts[test]), (test, extracts[test])
    # payload bytes (TCP: from sequence numbers) and missed bytes agree on every row where Zeek logs them
    for n in ("orig_bytes", "resp_bytes", "missed_bytes"):
        assert t[n + "_rows"] >= 100 and t[n] == 1.0, (n, t[n], [d for s in scores for d in s.diffs if d[1] == [n]])
    assert t["service"] >= 0.95, t  # service identification from payload (docs/services.md)
    # tunnel_parents as a relation between rows: every row outside tunnels has none; inside, the
    # parents are Zeek's (uids mapped by five-tuple), except GRE inside UDP, where Zeek names the GRE
    # tunnel of the outer address pair (tunnel.log) and flowkit the UDP flows that carried it
    assert t["tunnel_parents_out"] == 1.0 and t["tunnel_parents_in_rows"] >= 20, t
    misses = {s.test for s in scores for d in s.diffs if d[1] == ["tunnel_parents"]}
    assert misses <= {"core.tunnels.gre-over-udp"}, misses
    assert t["tunnel_parents_in"] >= 0.9, t
