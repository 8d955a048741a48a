"""Handshake outcomes, retries and RTTs on flow frames whose truth is how they were built."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flowkit.analysis as A
from analysisgen import OUTCOME_OF, frame, tcp, udp

def test_every_outcome_and_udp_ignored():
    rows = [tcp(f"10.0.0.1:{40000 + i} > 10.0.0.2:80", kind, t=float(i)) for i, kind in enumerate(OUTCOME_OF)]
    rows.append(udp("10.0.0.1:5353 > 10.0.0.2:53"))
    hs = A.handshakes(frame(rows))
    assert len(hs) == len(OUTCOME_OF)
    got = dict(zip(hs["src_port"] - 40000, hs["outcome"].astype(str)))
    assert got == {i: OUTCOME_OF[k] for i, k in enumerate(OUTCOME_OF)}

def test_rtts_are_microsecond_exact_at_real_epochs():
    # float seconds since 1970 hold only ~0.2 us at today's epoch; exact results need integer ns
    rows = [
        tcp("10.0.0.1:40000 > 10.0.0.2:80", "complete", t=5.123457, rtt_server=0.010123, rtt_client=0.000007),
        tcp("10.0.0.1:40002 > 10.0.0.2:80", "incomplete", t=6.0, rtt_server=0.25),
    ]
    hs = A.handshakes(frame(rows))
    assert hs.loc[0, "rtt_server"] == 0.010123
    assert hs.loc[0, "rtt_client"] == 0.000007
    assert hs.loc[0, "rtt_total"] == 0.010130
    assert hs.loc[1, "rtt_server"] == 0.25
    assert np.isnan(hs.loc[1, "rtt_client"]) and np.isnan(hs.loc[1, "rtt_total"])

@settings(max_examples=60, deadline=None)
@given(
    rs=st.integers(1, 3_000_000),
    rc=st.integers(1, 3_000_000),
    retries=st.integers(0, 6),
    t_us=st.integers(0, 10**9),
)
def test_rtt_and_retries_property(rs, rc, retries, t_us):
    row = tcp("10.9.9.9:50000 > 10.8.8.8:443", "complete", t=t_us / 1e6, rtt_server=rs / 1e6,
              rtt_client=rc / 1e6, retries=retries)  # fmt: skip
    hs = A.handshakes(frame([row]))
    assert hs.loc[0, "syn_retries"] == retries
    assert hs.loc[0, "rtt_server"] == rs / 1e6  # measured from the last SYN, not the first
    assert hs.loc[0, "rtt_client"] == rc / 1e6
    assert hs.loc[0, "rtt_total"] == (rs + rc) / 1e6

def test_rejected_needs_a_responder_rst_not_the_conn_state():
    # Zeek files "SYN, then both sides reset" as RSTOS0/RSTR; the responder's RST makes it rejected
    row = tcp("10.0.0.1:40000 > 10.0.0.2:80", "syn_rst", t=0.0)
    row.update(dst_rst=1, dst_pkts=1, history="SRr")
    hs = A.handshakes(frame([row, tcp("10.0.0.1:40001 > 10.0.0.2:80", "syn_rst")]))
    assert list(hs["outcome"].astype(str)) == ["rejected", "unanswered"]

def test_summary_counts_and_shares():
    kinds = ["complete"] * 5 + ["rejected"] * 3 + ["unanswered"] * 2
    rows = [tcp(f"10.0.0.1:{40000 + i} > 10.0.0.2:80", k, t=float(i), retries=1) for i, k in enumerate(kinds)]
    s = A.handshake_summary(frame(rows)).set_index("outcome")
    assert list(s.index) == ["complete", "rejected", "unanswered", "incomplete", "midstream"]
    assert s.loc["complete", "flows"] == 5 and s.loc["rejected", "flows"] == 3
    assert s.loc["unanswered", "flows"] == 2 and s.loc["midstream", "flows"] == 0
    assert s.loc["complete", "share"] == 0.5
    assert s["syn_retries"].sum() == 10

def test_servers_success_rate_and_percentiles():
    rng = np.random.default_rng(3)
    rtts = rng.integers(1_000, 200_000, size=40) / 1e6
    rows = [tcp(f"10.0.1.{i % 7}:{40000 + i} > 10.0.0.2:443", "complete", t=float(i), rtt_server=r)
            for i, r in enumerate(rtts)]  # fmt: skip
    rows += [tcp(f"10.0.1.1:{41000 + i} > 10.0.0.2:443", "unanswered", t=100.0 + i) for i in range(10)]
    rows += [tcp(f"10.0.1.1:{42000 + i} > 10.0.0.3:22", "rejected", t=200.0 + i) for i in range(4)]
    rows += [tcp("10.0.1.1:43000 > 10.0.0.3:22", "midstream", t=300.0)]
    srv = A.handshake_servers(frame(rows)).set_index(["dst_ip", "dst_port"])
    web = srv.loc[("10.0.0.2", 443)]
    assert web["attempts"] == 50 and web["complete"] == 40 and web["unanswered"] == 10
    assert web["success_rate"] == pytest.approx(0.8)
    assert web["clients"] == 7
    for q, name in ((50, "p50"), (90, "p90"), (99, "p99")):
        assert web[f"rtt_server_{name}"] == pytest.approx(np.percentile(rtts, q), abs=1e-9)
    ssh = srv.loc[("10.0.0.3", 22)]
    assert ssh["attempts"] == 4 and ssh["rejected"] == 4 and ssh["success_rate"] == 0.0
    assert np.isnan(ssh["rtt_server_p50"])

def test_accepts_arrow_table_and_flowtable_like_objects():
    df = frame([tcp("10.0.0.1:40000 > 10.0.0.2:80", "complete", rtt_server=0.002)])

    class FakeTable:  # anything with to_pandas(), as FlowTable
        def to_pandas(self):
            return df

    for obj in (df, pa.Table.from_pandas(df), FakeTable()):
        assert A.handshakes(obj).loc[0, "rtt_server"] == 0.002

def test_missing_column_is_one_clear_error():
    df = frame([tcp("10.0.0.1:40000 > 10.0.0.2:80", "complete")]).drop(columns=["synack_ts"])
    with pytest.raises(A.AnalysisInputError, match="synack_ts"):
        A.handshakes(df)

def test_empty_input():
    empty = frame([udp("10.0.0.1:1 > 10.0.0.2:53")]).iloc[0:0]
    assert len(A.handshakes(empty)) == 0
    assert A.handshake_summary(empty)["flows"].sum() == 0
    assert len(A.handshake_servers(empty)) == 0

def test_input_frame_not_modified():
    df = frame([tcp("10.0.0.1:40000 > 10.0.0.2:80", "complete")])
    before = df.copy()
    A.handshakes(df)
    pd.testing.assert_frame_equal(df, before)

@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.one_of(st.floats(0, 10), st.just(float("nan")))), max_size=60))
def test_group_quantiles_match_numpy(pairs):
    from flowkit.analysis.handshakes import group_quantiles

    codes = np.array([c for c, _ in pairs], dtype=np.int64)
    values = np.array([v for _, v in pairs], dtype=np.float64)
    got = group_quantiles(codes, values, 6, (0.5, 0.9, 0.99))
    for g in range(6):
        vals = values[(codes == g) & ~np.isnan(values)]
        if len(vals) == 0:
            assert np.isnan(got[g]).all()
        else:
            np.testing.assert_allclose(got[g], np.percentile(vals, [50, 90, 99]), rtol=1e-12, atol=1e-12)

def test_frame_without_flag_counts_uses_history():
    rows = [tcp("10.0.0.1:40000 > 10.0.0.2:80", "rejected"), tcp("10.0.0.1:40001 > 10.0.0.2:80", "unanswered")]
    df = frame(rows).drop(columns=[c for c in frame(rows).columns if c.startswith(("src_", "dst_")) and c.endswith("rst")])
    assert "dst_rst" not in df.columns
    assert list(A.handshakes(df)["outcome"].astype(str)) == ["rejected", "unanswered"]
