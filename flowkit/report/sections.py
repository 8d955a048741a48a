"""One function per report section: analysis DataFrames in, an HTML ``<section>`` out.

The functions take the analyses' results (not the flow table) so each section is
testable on a frame built by hand; ``page.render_html`` runs the analyses.
Every section says so plainly when there is nothing to show.
"""
from __future__ import annotations

from html import escape

import numpy as np
import pandas as pd

from flowkit.report import svg
from flowkit.report.html import empty_note, grid, human_bytes, ms, num, section, table

TIER_ORDER = ("well-known", "registered", "dynamic")
OUTCOME_ORDER = ("complete", "rejected", "unanswered", "incomplete", "midstream")
OUTCOME_COLORS = {
    "complete": "#009E73",
    "rejected": "#D55E00",
    "unanswered": "#E69F00",
    "incomplete": "#CC79A7",
    "midstream": "#7F7F7F",
}
STATE_ORDER = ("open", "closed", "filtered")
STATE_COLORS = {"open": "#009E73", "closed": "#D55E00", "filtered": "#E69F00"}
LEDGER_ORDER = ("tcp", "udp", "icmp", "other_ip", "fragment", "non_ip", "unsupported_link", "truncated", "malformed")
MAX_SERVICE_BARS = 15  # the table lists more; a longer chart stops being read
MAX_PANELS = 6  # ephemeral scatter panels: the busiest clients
MAX_POINTS = 1500  # per scatter panel, so a huge capture still gives a small page


def pick(df: pd.DataFrame, *names: str) -> str | None:
    """The first of ``names`` that is a column of ``df`` (analysis columns by documented name,
    with the obvious synonyms)."""
    for n in names:
        if n in df.columns:
            return n
    return None


def _ordered(values, order) -> list:
    seen = [v for v in order if v in set(values)]
    return seen + sorted(v for v in set(values) if v not in order)


# ---------------------------------------------------------------- overview and ledger


def overview(df: pd.DataFrame, ledger: dict | None, sources: list[str]) -> str:
    n_flows = len(df)
    pkts = int(ledger["packets"]) if ledger else int(df.get("src_pkts", pd.Series(dtype=float)).sum()
                                                      + df.get("dst_pkts", pd.Series(dtype=float)).sum())
    flow_bytes = 0
    if n_flows and "src_ip_bytes" in df:
        flow_bytes = int(df["src_ip_bytes"].sum() + df["dst_ip_bytes"].sum())
    if n_flows and "ts_start" in df:
        t0, t1 = df["ts_start"].min(), df["ts_end"].max() if "ts_end" in df else df["ts_start"].max()
        end = _ts(t1)
        if _ts(t0)[:10] == end[:10]:
            end = end[11:]  # same day: the date once
        span = f"{_ts(t0)[:-4]} → {end} ({(t1 - t0).total_seconds():,.3f} s)"
    else:
        span = "no flows"
    items = [
        ("capture", ", ".join(sources) if sources else "(flow table)"),
        ("time span", span),
        ("packets", f"{pkts:,}" + ("" if ledger else " (in flows)")),
        ("flows", f"{n_flows:,}"),
        ("IP bytes in flows", f"{flow_bytes:,} ({human_bytes(flow_bytes)})"),
    ]
    if ledger and ledger.get("bytes_read"):
        items.append(("packet bytes read", f"{int(ledger['bytes_read']):,} ({human_bytes(ledger['bytes_read'])})"))
    if n_flows and "proto" in df:
        counts = df["proto"].value_counts()
        items.append(("flows by protocol", ", ".join(f"{k} {v:,}" for k, v in counts.items())))
    dl = "".join(f'<div class="kv{" wide" if k in ("time span", "capture") else ""}"><dt>{escape(k)}</dt><dd class="v-{escape(k.replace(" ", "-"))}">{escape(v)}</dd></div>'
                 for k, v in items)
    return section("overview", "Overview", f'<dl class="overview">{dl}</dl>')


def _ts(t) -> str:
    try:
        return pd.Timestamp(t).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
    except (ValueError, TypeError):
        return str(t)


def ledger_section(ledger: dict | None) -> str:
    if not ledger:
        return section("ledger", "Packet ledger", empty_note(
            "no packet ledger: the report was built from a flow table without one"))
    total = int(ledger["packets"])
    cats = [c for c in LEDGER_ORDER if c in ledger] + [
        c for c in ledger if c not in LEDGER_ORDER and c not in ("packets", "bytes_read", "damage")]
    counts = [int(ledger.get(c, 0)) for c in cats]
    rows = pd.DataFrame({"category": cats, "packets": counts,
                         "share": [c / total if total else 0.0 for c in counts]})
    rows = pd.concat([rows, pd.DataFrame({"category": ["total"], "packets": [sum(counts)],
                                          "share": [1.0 if total else 0.0]})], ignore_index=True)
    share = lambda v: "<0.1%" if 0 < v < 0.001 else f"{v:.1%}"  # noqa: E731 -- one packet is not 0.0%
    tbl = table(rows, formats={"share": share}, cls="ledger", max_rows=100)
    colors = [svg.color(i) if i < 4 else ("#7F7F7F" if c in ("fragment", "non_ip", "unsupported_link") else "#D55E00")
              for i, c in enumerate(cats)]
    chart = svg.bar_chart(cats, counts, title="Packets per ledger category", horizontal=True,
                          x_label="packets", colors=colors)
    ok = "" if sum(counts) == total else (
        f'<p class="problem">categories sum to {sum(counts):,}, not {total:,} packets</p>')
    damage = ledger.get("damage") or []
    dmg = ("<h3>Damage</h3><ul class=\"damage\">" + "".join(f"<li>{escape(str(d))}</li>" for d in damage) + "</ul>"
           if damage else '<p class="ok">no damage: every record of the file was read</p>')
    intro = (f"Every packet read lands in exactly one category; the categories sum to the "
             f"{total:,} packets read. Only TCP and UDP packets make flows.")
    return section("ledger", "Packet ledger", grid(tbl + ok, chart) + dmg, intro)


# ---------------------------------------------------------------- ports


def tiers_section(tiers: pd.DataFrame, p2p: int | None = None) -> str:
    if tiers is None or len(tiers) == 0:
        return section("tiers", "Traffic by IANA port tier", empty_note("no TCP or UDP flows in this capture"))
    tcol = pick(tiers, "tier") or tiers.columns[0]
    pcol = pick(tiers, "proto", "protocol")
    tier_names = _ordered(tiers[tcol].astype(str), TIER_ORDER)
    protos = _ordered(tiers[pcol].astype(str), ("tcp", "udp")) if pcol else [""]
    charts = []
    for metric, label in (("flows", "flows"), ("bytes", "bytes")):
        mcol = pick(tiers, metric, f"{metric}_total", "ip_bytes")
        if not mcol:
            continue
        series = {}
        for p in protos:
            sub = tiers[tiers[pcol].astype(str) == p] if pcol else tiers
            by = sub.groupby(sub[tcol].astype(str))[mcol].sum()
            series[p] = [float(by.get(t, 0)) for t in tier_names]
        fmt = human_bytes if metric == "bytes" else num
        charts.append(svg.stacked_bars(tier_names, series, title=f"{label.capitalize()} by destination-port tier",
                                       y_label=label, value_fmt=fmt))
    fmts = {c: human_bytes for c in tiers.columns if "bytes" in c}
    if "share" in tiers:
        fmts["share"] = lambda v: "" if pd.isna(v) else f"{v:.1%}"
    intro = ("Tiers are judged on the responder (server) port, per RFC 6335: well-known 0–1023, "
             "registered 1024–49151, dynamic 49152–65535. Traffic to dynamic ports usually means "
             "peer-to-peer or negotiated data channels.")
    p2p_line = ""
    if p2p is not None:
        p2p_line = (f'<p class="p2p">{p2p:,} flow{"" if p2p == 1 else "s"} with both ports dynamic '
                    f"(≥ 49152): peer-to-peer style, no service port on either side.</p>")
    return section("tiers", "Traffic by IANA port tier", grid(*charts) + p2p_line + table(tiers, formats=fmts), intro)


def services_section(services: pd.DataFrame) -> str:
    if services is None or len(services) == 0:
        return section("services", "Top services", empty_note("no TCP or UDP flows in this capture"))
    port = pick(services, "dst_port", "port")
    proto = pick(services, "proto", "protocol")
    name = pick(services, "service", "name", "service_name")
    val = pick(services, "flows", "connections", "count")
    labels = []
    for _, r in services.iterrows():
        lab = f"{r[port]}/{r[proto]}" if port and proto else str(r.iloc[0])
        if name and isinstance(r[name], str) and r[name]:
            lab += f" {r[name]}"
        labels.append(lab)
    chart = ""
    if val:
        order = np.argsort(-services[val].to_numpy(dtype=float), kind="stable")[:MAX_SERVICE_BARS]
        colors = [svg.color(0) if (proto and services[proto].iloc[i] == "tcp") else svg.color(1) for i in order]
        chart = svg.bar_chart([labels[i] for i in order], services[val].to_numpy(dtype=float)[order],
                              title=f"Top {len(order)} server ports by flows (blue TCP, orange UDP)", horizontal=True,
                              x_label="flows", colors=colors)
    fmts = {c: human_bytes for c in services.columns if "bytes" in c}
    intro = "Server ports by number of flows, with their IANA service name where one is registered."
    cols = [c for c in (proto, port, name, "tier", val, "bytes", "servers", "clients") if c]
    return section("services", "Top services", grid(chart, table(services, cols, formats=fmts)), intro)


# ---------------------------------------------------------------- handshakes


def handshakes_section(hs: pd.DataFrame, summary: pd.DataFrame | None = None,
                       servers: pd.DataFrame | None = None) -> str:
    if hs is None or len(hs) == 0:
        return section("handshakes", "TCP handshakes", empty_note("no TCP handshakes in this capture"))
    counts = _outcome_counts(hs, summary)
    outcomes = _ordered(list(counts), OUTCOME_ORDER)
    bar = svg.bar_chart(outcomes, [counts[o] for o in outcomes], title="Handshake outcomes (TCP flows)",
                        y_label="flows", colors=[OUTCOME_COLORS.get(o, svg.OTHER_COLOR) for o in outcomes])
    hists = []
    for col, who in (("rtt_server", "server (SYN → SYN-ACK)"), ("rtt_client", "client (SYN-ACK → ACK)")):
        if col in hs:
            v = hs[col].to_numpy(dtype=float) * 1000.0
            hists.append(svg.histogram(v, title=f"RTT {who}", x_label="milliseconds", y_label="handshakes",
                                       fill=svg.color(0 if col == "rtt_server" else 5),
                                       empty="no complete handshake: no RTT to show"))
    stats = []
    for col in ("rtt_server", "rtt_client", "rtt_total"):
        if col in hs:
            v = hs[col].dropna()
            if len(v):
                stats.append({"rtt": col, "n": len(v), "p50": v.quantile(0.5), "p90": v.quantile(0.9),
                              "p99": v.quantile(0.99), "max": v.max()})
    stat_tbl = table(pd.DataFrame(stats), formats={c: ms for c in ("p50", "p90", "p99", "max")}) if stats else ""
    retries = ""
    if "syn_retries" in hs:
        r = hs["syn_retries"].fillna(0)
        retries = (f'<p class="retries">{int((r > 0).sum()):,} of {len(hs):,} TCP flows retried their SYN '
                   f'({int(r.sum()):,} retries in all).</p>')
    srv = ""
    if servers is not None and len(servers):
        sort = pick(servers, "attempts")
        s = servers.sort_values(sort, ascending=False) if sort else servers
        fm = {c: ms for c in s.columns if c.startswith("rtt")}
        fm.update({c: (lambda v: "" if pd.isna(v) else f"{v:.0%}") for c in s.columns if "rate" in c})
        keep = ["dst_ip", "dst_port", "attempts", *OUTCOME_ORDER, "success_rate", "syn_retries",
                "rtt_server_p50", "rtt_server_p90", "rtt_client_p50", "rtt_client_p90", "clients"]
        cols = [c for c in keep if c in s.columns] or list(s.columns)
        srv = "<h3>Per server (by attempts)</h3>" + table(s, cols, formats=fm, max_rows=20)
    intro = ("complete: SYN, SYN-ACK, ACK; rejected: SYN answered by RST; unanswered: no reply; "
             "incomplete: SYN-ACK but no final ACK; midstream: the capture began after the SYN. "
             "Server RTT is measured at the capture point from the SYN the SYN-ACK answers; client RTT "
             "from the SYN-ACK to the ACK. A capture near the client shows the network delay in the "
             "server RTT, near the server in the client RTT.")
    return section("handshakes", "TCP handshakes", grid(bar, *hists) + retries + stat_tbl + srv, intro)


def _outcome_counts(hs: pd.DataFrame, summary) -> dict[str, int]:
    """Counts per outcome from ``handshake_summary`` if it is in a recognisable shape,
    else from the per-flow ``outcome`` column (the same numbers)."""
    if isinstance(summary, pd.Series) and len(summary):
        return {str(k): int(v) for k, v in summary.items()}
    if isinstance(summary, pd.DataFrame) and len(summary):
        o = pick(summary, "outcome")
        c = pick(summary, "count", "flows", "n")
        if o and c:
            return {str(k): int(v) for k, v in zip(summary[o], summary[c])}
    vc = hs["outcome"].astype(str).value_counts()
    return {str(k): int(v) for k, v in vc.items()}


# ---------------------------------------------------------------- ephemeral ports


def ephemeral_section(eph: pd.DataFrame, points: pd.DataFrame | None) -> str:
    if eph is None or len(eph) == 0:
        return section("ephemeral", "Ephemeral ports", empty_note("no client connections in this capture"))
    ccol = pick(eph, "client_ip", "src_ip")
    ncol = pick(eph, "connections", "flows")
    busy = eph.sort_values(ncol, ascending=False) if ncol else eph
    panels = []
    if points is not None and len(points):
        pc = pick(points, "client_ip", "src_ip")
        tc = pick(points, "ts", "ts_start")
        yc = pick(points, "src_port", "port")
        dc = pick(points, "dst", "destination", "dst_ip")
        for _, row in busy.head(MAX_PANELS).iterrows():
            sub = points[points[pc] == row[ccol]]
            if len(sub) < 2:
                continue
            sub = sub.sort_values(tc)
            n_total = len(sub)
            shown = ""
            if len(sub) > MAX_POINTS:  # even thinning keeps the shape of the sequence
                sub = sub.iloc[np.linspace(0, len(sub) - 1, MAX_POINTS).astype(int)]
                shown = f", {MAX_POINTS:,} shown"
            t = pd.to_datetime(sub[tc], utc=True)
            secs = (t - t.iloc[0]).dt.total_seconds().to_numpy()
            alloc = f" — {row['allocation']}" if "allocation" in eph else ""
            rng = f", range {row['range']}" if "range" in eph else ""
            title = f"{row[ccol]}: {n_total:,} connections{shown}{alloc}{rng}"
            dst = sub[dc].astype(str).to_numpy() if dc else None
            tips = [f"{d} port {p} at +{s:.3f} s" for d, p, s in zip(dst if dst is not None else [""] * len(sub),
                                                                    sub[yc].to_numpy(), secs)]
            panels.append(svg.scatter(secs, sub[yc].to_numpy(dtype=float), groups=dst, title=title,
                                      x_label="seconds since the client's first connection",
                                      y_label="source port", tips=tips, y_integer=True))
    charts = grid(*panels) if panels else empty_note("no client with two or more connections to plot")
    fm = {c: (lambda v: "" if pd.isna(v) else f"{v:.2f}") for c in eph.columns
          if c.startswith("share") or c.endswith("_p")}
    intro = ("Source port against time for the busiest clients, one colour per destination. "
             "A rising line across all colours is a global counter (sequential); one rising line per "
             "colour with unrelated offsets is per-destination allocation (RFC 6056 algorithm 3/4, Linux); "
             "a uniform cloud is random allocation (RFC 6056 algorithm 1). The table gives the evidence "
             "for each client's classification.")
    return section("ephemeral", "Ephemeral ports", charts + table(busy, formats=fm, max_rows=40), intro)


# ---------------------------------------------------------------- exposure and scans


def exposure_section(exp: pd.DataFrame) -> str:
    if exp is None or len(exp) == 0:
        return section("exposure", "Exposure", empty_note("no connection attempts to any server in this capture"))
    host = pick(exp, "dst_ip", "host")
    state = pick(exp, "state")
    hosts = exp.groupby(host).size().sort_values(ascending=False)
    top = list(hosts.index[:12])
    chart = ""
    if state:
        states = _ordered(exp[state].astype(str), STATE_ORDER)
        ct = exp[exp[host].isin(top)].groupby([host, exp[state].astype(str)]).size()
        series = {s: [int(ct.get((h, s), 0)) for h in top] for s in states}
        chart = svg.stacked_bars([str(h) for h in top], series, title="Ports per server host by state",
                                 y_label="ports", colors=[STATE_COLORS.get(s, svg.OTHER_COLOR) for s in states])
    port = pick(exp, "dst_port", "port")
    sort_cols = [c for c in (host, state, port) if c]
    per_host = ""
    if state:
        ph = pd.crosstab(exp[host], exp[state].astype(str)).reindex(columns=states, fill_value=0)
        ph["ports"] = ph.sum(axis=1)
        ph = ph.sort_values("ports", ascending=False).reset_index().rename(columns={host: "host"})
        per_host = table(ph, ["host", "ports", *states], max_rows=30, caption="ports per host")
    body = grid(chart, per_host) + "<h3>Per host and port</h3>" + table(
        exp.sort_values(sort_cols), [c for c in exp.columns if c not in ("first_ts", "last_ts")], max_rows=200)
    intro = ("Per server host and port: open (TCP SYN answered by SYN-ACK; UDP answered), closed (SYN "
             "answered by RST), filtered (no answer), with the tier and service name.")
    return section("exposure", "Exposure", body, intro)


def scans_section(scans: pd.DataFrame) -> str:
    if scans is None or len(scans) == 0:
        return section("scans", "Scans", empty_note("no scans detected in this capture"))
    fm = {c: (lambda v: "" if pd.isna(v) else f"{v:.0%}") for c in scans.columns if c.startswith("share")}
    intro = ("Sources with many unanswered or rejected attempts: vertical (many ports of one host) or "
             "horizontal (one port across many hosts), with the evidence.")
    fm["span"] = lambda v: "" if pd.isna(v) else f"{float(v):.3f} s"
    # target_ip/target_port repeat "target"; the table stays narrow enough to read
    cols = [c for c in scans.columns if c not in ("target_ip", "target_port")]
    return section("scans", "Scans", table(scans, cols, formats=fm, max_rows=100), intro)


# ---------------------------------------------------------------- top flows

TOP_FLOW_COLUMNS = ("ts_start", "proto", "src_ip", "src_port", "dst_ip", "dst_port", "conn_state",
                    "packets", "bytes", "duration")


def top_flows_section(df: pd.DataFrame, n: int = 25) -> str:
    if len(df) == 0:
        return section("topflows", "Top flows", empty_note("no flows in this capture"))
    f = df.copy()
    f["packets"] = f["src_pkts"].astype("float64") + f["dst_pkts"].astype("float64")
    f["bytes"] = f["src_ip_bytes"].astype("float64") + f["dst_ip_bytes"].astype("float64")
    f = f.nlargest(n, "bytes")
    fm = {"ts_start": _ts, "bytes": human_bytes, "duration": lambda v: "" if pd.isna(v) else f"{v:.3f} s"}
    intro = f"The {min(n, len(df))} largest flows by IP bytes (both directions). Click a header to sort."
    return section("topflows", "Top flows", table(f, list(TOP_FLOW_COLUMNS), formats=fm, max_rows=n), intro)
