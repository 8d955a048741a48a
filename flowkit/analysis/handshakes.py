"""TCP three-way handshakes: outcome, SYN retries and round-trip times per flow.

Method and references in docs/analyses.md ("Handshakes").
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from flowkit.analysis._frame import _frame, col_or, diff_seconds, tcp_only

OUTCOMES = ("complete", "rejected", "unanswered", "incomplete", "midstream")
KEY = ["src_ip", "src_port", "dst_ip", "dst_port", "ts_start"]
_REQUIRED = ("proto", *KEY, "syn_ts", "syn_last_ts", "synack_ts", "ack_ts", "syn_count")


def handshakes(flows) -> pd.DataFrame:
    """One row per TCP flow: outcome, syn_retries, rtt_server, rtt_client, rtt_total (seconds)."""
    df = tcp_only(_frame(flows, _REQUIRED))
    syn_count = df["syn_count"].fillna(0).astype(np.int64).to_numpy()
    has_syn = (syn_count > 0) | df["syn_ts"].notna().to_numpy()
    has_synack = df["synack_ts"].notna().to_numpy().copy()
    has_ack = df["ack_ts"].notna().to_numpy().copy()
    # A responder RST to a SYN that got no SYN-ACK: Zeek's REJ, and also what Zeek files as
    # RSTOS0/RSTR when both sides reset; the count column is authoritative, history the fallback.
    history = col_or(df, "history", "").fillna("").astype(str)
    if "dst_rst" in df.columns:
        responder_rst = df["dst_rst"].fillna(0).to_numpy().astype(np.int64) > 0
    else:  # a frame without flag counts: Zeek's history letter r is a responder RST
        responder_rst = history.str.contains("r", regex=False).to_numpy().copy()
    if "src_syn" in df.columns and df["src_syn"].isna().any():
        # rows read from a Zeek conn.log carry no flag counts and no handshake times: its history
        # letters say what was seen (S originator SYN, h responder SYN-ACK, then A/D/F from the originator)
        z = df["src_syn"].isna().to_numpy()
        has_syn[z] = history[z].str.contains("S", regex=False).to_numpy()
        has_synack[z] = history[z].str.contains("h", regex=False).to_numpy()
        has_ack[z] = history[z].str.contains("h.*[ADF]", regex=True).to_numpy()
        responder_rst[z] = history[z].str.contains("r", regex=False).to_numpy()

    outcome = np.select(
        [
            ~has_syn,
            has_synack & has_ack,
            has_synack,
            responder_rst,
        ],
        ["midstream", "complete", "incomplete", "rejected"],
        default="unanswered",
    )
    rtt_server = diff_seconds(df["synack_ts"], df["syn_last_ts"])
    rtt_client = diff_seconds(df["ack_ts"], df["synack_ts"])
    out = df[KEY].copy()
    out["outcome"] = pd.Categorical(outcome, categories=OUTCOMES)
    out["syn_retries"] = np.maximum(syn_count - 1, 0).astype(np.int64)
    out["rtt_server"] = rtt_server
    out["rtt_client"] = rtt_client
    out["rtt_total"] = diff_seconds(df["ack_ts"], df["syn_last_ts"])
    out["conn_state"] = col_or(df, "conn_state", None).to_numpy()
    return out


def handshake_summary(flows) -> pd.DataFrame:
    """Outcome counts over all TCP flows: outcome, flows, share, syn_retries, rtt medians."""
    hs = handshakes(flows)
    g = hs.groupby("outcome", observed=False)
    out = pd.DataFrame(
        {
            "flows": g.size(),
            "syn_retries": g["syn_retries"].sum(),
            "rtt_server_p50": g["rtt_server"].median(),
            "rtt_client_p50": g["rtt_client"].median(),
        }
    ).reindex(list(OUTCOMES))
    out["flows"] = out["flows"].fillna(0).astype(np.int64)
    out["syn_retries"] = out["syn_retries"].fillna(0).astype(np.int64)
    total = int(out["flows"].sum())
    out.insert(1, "share", out["flows"] / total if total else 0.0)
    out.index.name = "outcome"
    return out.reset_index()


def handshake_servers(flows) -> pd.DataFrame:
    """Per server (dst_ip, dst_port): attempts, outcomes, success_rate and RTT percentiles.

    Attempts are flows where the originator's SYN was seen (midstream flows are not attempts).
    """
    hs = handshakes(flows)
    hs = hs[hs["outcome"] != "midstream"]
    keys = ["dst_ip", "dst_port"]
    kinds = [o for o in OUTCOMES if o != "midstream"]
    outcome = hs["outcome"].astype(str).to_numpy()
    hs = hs.assign(**{k: (outcome == k).astype(np.int64) for k in kinds})
    g = hs.groupby(keys)
    out = pd.DataFrame({"attempts": g.size()}).join(g[kinds].sum())
    out["success_rate"] = out["complete"] / out["attempts"]
    out["syn_retries"] = g["syn_retries"].sum()
    out["clients"] = g["src_ip"].nunique()
    codes = g.ngroup().to_numpy()  # group number in the (sorted) order of out's index
    for col in ("rtt_server", "rtt_client"):
        q = group_quantiles(codes, hs[col].to_numpy(dtype=np.float64), len(out), (0.5, 0.9, 0.99))
        for j, name in enumerate(("p50", "p90", "p99")):
            out[f"{col}_{name}"] = q[:, j]
    out = out.reset_index().sort_values(["attempts", "dst_ip", "dst_port"], ascending=[False, True, True])
    for c in ("attempts", *[o for o in OUTCOMES if o != "midstream"], "syn_retries", "clients"):
        out[c] = out[c].astype(np.int64)
    return out.reset_index(drop=True)


def group_quantiles(codes: np.ndarray, values: np.ndarray, ngroups: int, qs) -> np.ndarray:
    """Quantiles per group ignoring NaN, numpy's default linear interpolation; NaN for empty groups.

    One sort for all groups (pandas' groupby quantile is slow with many small groups).
    """
    order = np.lexsort((values, codes))  # NaN sorts last inside each group
    v, c = values[order], codes[order]
    starts = np.searchsorted(c, np.arange(ngroups), side="left")
    valid = np.bincount(codes[~np.isnan(values)], minlength=ngroups)
    out = np.full((ngroups, len(qs)), np.nan)
    has = valid > 0
    for j, q in enumerate(qs):
        pos = q * (valid[has] - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.ceil(pos).astype(np.int64)
        base = starts[has]
        a, b = v[base + lo], v[base + hi]
        out[has, j] = a + (b - a) * (pos - lo)
    return out
