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


# nmap's --reason names of the ICMP errors an attempt can draw: (ip_version, type) -> {code: reason}
_ICMP_REASONS = {
    (4, 3): {0: "net-unreach", 1: "host-unreach", 2: "proto-unreach", 3: "port-unreach", 4: "needfrag",
             9: "net-prohibited", 10: "host-prohibited", 13: "admin-prohibited"},
    (4, 11): {}, (4, 12): {},
    (6, 1): {0: "net-unreach", 1: "admin-prohibited", 2: "beyond-scope", 3: "host-unreach", 4: "port-unreach",
             5: "policy-failed", 6: "reject-route"},
    (6, 2): {}, (6, 3): {}, (6, 4): {},
}
_ICMP_KINDS = {(4, 3): "unreach", (4, 11): "time-exceeded", (4, 12): "param-problem", (6, 1): "unreach",
               (6, 2): "packet-too-big", (6, 3): "time-exceeded", (6, 4): "param-problem"}


def icmp_reason(ip_version, icmp_type, icmp_code) -> str:
    """nmap's name for an ICMP error (``port-unreach``, ``admin-prohibited``, ``time-exceeded``, ...)."""
    key = (int(ip_version), int(icmp_type))
    if key not in _ICMP_KINDS:
        return f"icmp-{int(icmp_type)}/{int(icmp_code)}"
    return _ICMP_REASONS[key].get(int(icmp_code), _ICMP_KINDS[key] if key not in ((4, 3), (6, 1))
                                  else f"unreach-{int(icmp_code)}")


def _icmp_reasons(df: pd.DataFrame) -> np.ndarray:
    """Per flow: the reason of the last ICMP error quoting it, or None (also for flows read from
    elsewhere without the ``icmp_error_*`` columns)."""
    out = np.full(len(df), None, object)
    if "icmp_errors" not in df.columns or "icmp_error_type" not in df.columns:
        return out
    has = (pd.to_numeric(df["icmp_errors"], errors="coerce").fillna(0) > 0).to_numpy()
    ver, typ, code = (df[c].to_numpy()[has] for c in ("ip_version", "icmp_error_type", "icmp_error_code"))
    out[has] = [icmp_reason(v, t, c) for v, t, c in zip(ver, typ, code)]
    return out


def _attempts(flows) -> pd.DataFrame:
    """Connection attempts with their answer (answered / rejected / unanswered) and its reason.

    TCP: flows with the originator's SYN; answered = SYN-ACK seen, rejected = responder RST without
    SYN-ACK. Midstream TCP flows are left out (their orientation is a port-based guess).
    UDP: every flow; answered = the responder sent a packet; rejected = no reply but an ICMP
    port unreachable quoting the flow (nmap's closed UDP port). Any other ICMP error quoting an
    unanswered attempt is its reason (admin-prohibited, host-unreach, ...; nmap's filtered).
    """
    df = _frame(flows, ("proto", "src_ip", "src_port", "dst_ip", "dst_port", "ts_start", "dst_pkts"))
    df = df.assign(_icmp=_icmp_reasons(df))
    parts = []
    tcp = df[df["proto"] == "tcp"]
    if len(tcp):
        hs = handshakes(tcp)
        keep = (hs["outcome"] != "midstream").to_numpy()
        hs, icmp = hs[keep], tcp["_icmp"].to_numpy()[keep]  # handshakes keeps the flows' order
        answer = np.select(
            [hs["outcome"].isin(["complete", "incomplete"]), hs["outcome"] == "rejected"],
            ["answered", "rejected"],
            default="unanswered",
        )
        reason = np.where(answer == "answered", "syn-ack", np.where(answer == "rejected", "reset", None))
        reason = np.where((answer == "unanswered") & (icmp != None), icmp, reason)  # noqa: E711
        parts.append(hs[["src_ip", "src_port", "dst_ip", "dst_port", "ts_start"]].assign(
            proto="tcp", answer=answer, reason=reason))
    udp = df[df["proto"] == "udp"]
    if len(udp):
        icmp = udp["_icmp"].to_numpy()
        replied = udp["dst_pkts"].fillna(0).to_numpy() > 0
        answer = np.select([replied, icmp == "port-unreach"], ["answered", "rejected"], default="unanswered")
        reason = np.where(replied, "udp-response", icmp)
        parts.append(udp[["src_ip", "src_port", "dst_ip", "dst_port", "ts_start"]].assign(
            proto="udp", answer=answer, reason=reason))
    cols = ["src_ip", "src_port", "dst_ip", "dst_port", "ts_start", "proto", "answer", "reason"]
    if not parts:
        return pd.DataFrame(columns=cols)
    out = pd.concat(parts, ignore_index=True)[cols]
    out["dst_port"] = out["dst_port"].astype(np.int64)
    out["reason"] = out["reason"].where(out["reason"].notna(), "no-response")
    return out


def exposure(flows) -> pd.DataFrame:
    """Per (dst_ip, dst_port, proto): state open/closed/filtered, its reason, tier, service,
    attempts, clients, evidence counts.

    open: any attempt answered (TCP SYN-ACK, UDP reply); closed: no answer but a TCP RST to a SYN
    or an ICMP port unreachable to a UDP attempt; filtered: attempts never answered (reason: the
    ICMP error they drew, or no-response).
    """
    a = _attempts(flows)
    keys = ["dst_ip", "dst_port", "proto"]
    cols = [*keys, "state", "reason", "tier", "service", "attempts", "answered", "rejected", "unanswered",
            "icmp_errors", "clients", "first_ts", "last_ts"]  # fmt: skip
    if a.empty:
        return pd.DataFrame(columns=cols)
    answer = a["answer"].to_numpy()
    a = a.assign(**{k: (answer == k).astype(np.int64) for k in ("answered", "rejected", "unanswered")})
    a["icmp_errors"] = ~a["reason"].isin(["syn-ack", "reset", "udp-response", "no-response"])
    g = a.groupby(keys)
    out = pd.DataFrame(
        {"attempts": g.size(), "clients": g["src_ip"].nunique(), "first_ts": g["ts_start"].min(),
         "last_ts": g["ts_start"].max()}  # fmt: skip
    ).join(g[["answered", "rejected", "unanswered", "icmp_errors"]].sum())
    out = out.join(_state_reasons(a, keys))
    out = out.reset_index()
    out["state"] = pd.Categorical(
        np.select([out["answered"] > 0, out["rejected"] > 0], ["open", "closed"], default="filtered"),
        categories=STATES,
    )
    out["reason"] = np.select([out["answered"] > 0, out["rejected"] > 0],
                              [out["_open"], out["_closed"]], default=out["_filtered"])
    out["tier"] = tier_of(out["dst_port"])
    out["service"] = service_names(out["dst_port"], out["proto"])
    out = out.sort_values(["state", "attempts", "dst_ip", "dst_port"], ascending=[True, False, True, True])
    for c in ("attempts", "answered", "rejected", "unanswered", "icmp_errors", "clients"):
        out[c] = out[c].astype(np.int64)
    return out[cols].reset_index(drop=True)


def _state_reasons(a: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per port: the reason of its last attempt of each answer kind (open, closed, filtered)."""
    a = a.sort_values("ts_start", kind="stable")
    out = {}
    for col, kind in (("_open", "answered"), ("_closed", "rejected"), ("_filtered", "unanswered")):
        sub = a[a["answer"] == kind]
        if kind == "unanswered":  # an ICMP error says more than silence, whenever it came
            sub = sub.assign(_silent=sub["reason"] == "no-response").sort_values(["_silent", "ts_start"],
                                                                                    ascending=[False, True],
                                                                                    kind="stable")
        out[col] = sub.groupby(keys)["reason"].last()
    return pd.DataFrame(out)


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
