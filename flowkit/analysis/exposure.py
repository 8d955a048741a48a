"""Server exposure (open / closed / filtered per host and port) and scan detection.

Method and references in docs/analyses.md ("Exposure and scans").
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from flowkit.analysis._frame import _frame
from flowkit.analysis.handshakes import handshakes
from flowkit.analysis.ports import service_names, tier_of

STATES = ("open", "closed", "filtered")


def _attempts(flows) -> pd.DataFrame:
    """Connection attempts with their answer: answered / rejected / unanswered.

    TCP: flows with the originator's SYN; answered = SYN-ACK seen, rejected = responder RST without
    SYN-ACK. Midstream TCP flows are left out (their orientation is a port-based guess).
    UDP: every flow; answered = the responder sent a packet. A closed UDP port answers with ICMP
    port unreachable, which the flow table does not carry, so UDP is never "closed".
    """
    df = _frame(flows, ("proto", "src_ip", "src_port", "dst_ip", "dst_port", "ts_start", "dst_pkts"))
    parts = []
    tcp = df[df["proto"] == "tcp"]
    if len(tcp):
        hs = handshakes(tcp)
        hs = hs[hs["outcome"] != "midstream"]
        answer = np.select(
            [hs["outcome"].isin(["complete", "incomplete"]), hs["outcome"] == "rejected"],
            ["answered", "rejected"],
            default="unanswered",
        )
        parts.append(hs[["src_ip", "src_port", "dst_ip", "dst_port", "ts_start"]].assign(proto="tcp", answer=answer))
    udp = df[df["proto"] == "udp"]
    if len(udp):
        answer = np.where(udp["dst_pkts"].fillna(0).to_numpy() > 0, "answered", "unanswered")
        parts.append(udp[["src_ip", "src_port", "dst_ip", "dst_port", "ts_start"]].assign(proto="udp", answer=answer))
    cols = ["src_ip", "src_port", "dst_ip", "dst_port", "ts_start", "proto", "answer"]
    if not parts:
        return pd.DataFrame(columns=cols)
    out = pd.concat(parts, ignore_index=True)[cols]
    out["dst_port"] = out["dst_port"].astype(np.int64)
    return out


def exposure(flows) -> pd.DataFrame:
    """Per (dst_ip, dst_port, proto): state open/closed/filtered, tier, service, attempts, clients, evidence counts.

    open: any attempt answered (TCP SYN-ACK, UDP reply); closed: no answer but a TCP RST to a SYN;
    filtered: attempts never answered.
    """
    a = _attempts(flows)
    keys = ["dst_ip", "dst_port", "proto"]
    cols = [*keys, "state", "tier", "service", "attempts", "answered", "rejected", "unanswered", "clients",
            "first_ts", "last_ts"]  # fmt: skip
    if a.empty:
        return pd.DataFrame(columns=cols)
    answer = a["answer"].to_numpy()
    a = a.assign(**{k: (answer == k).astype(np.int64) for k in ("answered", "rejected", "unanswered")})
    g = a.groupby(keys)
    out = pd.DataFrame(
        {"attempts": g.size(), "clients": g["src_ip"].nunique(), "first_ts": g["ts_start"].min(),
         "last_ts": g["ts_start"].max()}  # fmt: skip
    ).join(g[["answered", "rejected", "unanswered"]].sum())
    out = out.reset_index()
    out["state"] = pd.Categorical(
        np.select([out["answered"] > 0, out["rejected"] > 0], ["open", "closed"], default="filtered"),
        categories=STATES,
    )
    out["tier"] = tier_of(out["dst_port"])
    out["service"] = service_names(out["dst_port"], out["proto"])
    out = out.sort_values(["state", "attempts", "dst_ip", "dst_port"], ascending=[True, False, True, True])
    for c in ("attempts", "answered", "rejected", "unanswered", "clients"):
        out[c] = out[c].astype(np.int64)
    return out[cols].reset_index(drop=True)


def scans(
    flows,
    *,
    vertical_ports: int = 20,
    horizontal_hosts: int = 20,
    min_failed_share: float = 0.5,
) -> pd.DataFrame:
    """Scanning sources: one row per (src_ip, kind, target).

    vertical:   one source, one target host, failed attempts (unanswered or rejected) on at least
                ``vertical_ports`` distinct ports; target = the host.
    horizontal: one source, one port/proto, failed attempts on at least ``horizontal_hosts``
                distinct hosts; target = "port/proto".
    In both, failed attempts must be at least ``min_failed_share`` of the source's attempts on that
    target (a busy client of a real service fails rarely).
    """
    a = _attempts(flows)
    cols = ["src_ip", "kind", "target", "target_ip", "target_port", "proto", "distinct_ports", "distinct_hosts",
            "attempts", "failed", "answered", "share_unanswered", "share_rejected", "first_ts", "last_ts",
            "span"]  # fmt: skip
    if a.empty:
        return pd.DataFrame(columns=cols)
    a = a.assign(
        failed=(a["answer"] != "answered").to_numpy(),
        unanswered=(a["answer"] == "unanswered").to_numpy(),
        rejected=(a["answer"] == "rejected").to_numpy(),
    )
    a["fport"] = a["dst_port"].where(a["failed"])
    a["fhost"] = a["dst_ip"].where(a["failed"])
    rows = []
    for kind, keys, distinct_col, threshold in (
        ("vertical", ["src_ip", "dst_ip"], "fport", vertical_ports),
        ("horizontal", ["src_ip", "dst_port", "proto"], "fhost", horizontal_hosts),
    ):
        g = a.groupby(keys)
        s = pd.DataFrame(
            {
                "distinct_ports": g["dst_port"].nunique(),
                "distinct_hosts": g["dst_ip"].nunique(),
                "distinct_failed": g[distinct_col].nunique(),
                "attempts": g.size(),
                "failed": g["failed"].sum(),
                "unanswered": g["unanswered"].sum(),
                "rejected": g["rejected"].sum(),
                "first_ts": g["ts_start"].min(),
                "last_ts": g["ts_start"].max(),
            }
        )
        if kind == "vertical":  # a host scanned over both protocols is one row; say which were seen
            s["proto"] = g["proto"].first().where(g["proto"].nunique() == 1, "tcp/udp")
        s = s[(s["distinct_failed"] >= threshold) & (s["failed"] >= min_failed_share * s["attempts"])]
        s = s.reset_index()
        s["kind"] = kind
        if kind == "vertical":
            s["target"] = s["dst_ip"]
            s["target_ip"] = s["dst_ip"]
            s["target_port"] = pd.array([pd.NA] * len(s), dtype="Int64")
        else:
            s["target"] = s["dst_port"].astype(str) + "/" + s["proto"]
            s["target_ip"] = None
            s["target_port"] = s["dst_port"].astype("Int64")
        rows.append(s)
    out = pd.concat(rows, ignore_index=True)
    out["answered"] = out["attempts"] - out["failed"]
    out["share_unanswered"] = out["unanswered"] / out["attempts"]
    out["share_rejected"] = out["rejected"] / out["attempts"]
    out["span"] = (out["last_ts"] - out["first_ts"]).dt.total_seconds()
    out = out.sort_values(["attempts", "src_ip", "kind"], ascending=[False, True, True])
    for c in ("distinct_ports", "distinct_hosts", "attempts", "failed", "answered"):
        out[c] = out[c].astype(np.int64)
    return out[cols].reset_index(drop=True)
