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
from flowkit.report.html import empty_note, grid, human_bytes, ms, num, section, share, table

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
LEDGER_ORDER = ("tcp", "udp", "icmp", "other_ip", "fragment", "fragment_incomplete", "bad_checksum", "non_ip",
                "unsupported_link", "truncated", "malformed")
MAX_SERVICE_BARS = 15  # the table lists more; a longer chart stops being read
MAX_PANELS = 6  # ephemeral scatter panels: the busiest clients
MAX_POINTS = 1500  # per scatter panel, so a huge capture still gives a small page


def _ordered(values, order) -> list:
    seen = [v for v in order if v in set(values)]
    return seen + sorted(v for v in set(values) if v not in order)


# ---------------------------------------------------------------- overview and ledger


PLAUSIBLE_FROM = pd.Timestamp("1995-01-01", tz="UTC")  # before this a capture clock was not set (often 0: 1970)


def overview(df: pd.DataFrame, ledger: dict | None, sources: list[str]) -> str:
    n_flows = len(df)
    pkts = int(ledger["packets"]) if ledger else int(df.get("src_pkts", pd.Series(dtype=float)).sum()
                                                      + df.get("dst_pkts", pd.Series(dtype=float)).sum())
    flow_bytes = 0
    if n_flows and "src_ip_bytes" in df:
        flow_bytes = int(df["src_ip_bytes"].sum() + df["dst_ip_bytes"].sum())
    items = [
        ("capture" if len(sources) <= 1 else f"{len(sources):,} captures", _sources_html(sources)),
        ("time span", time_span(df)),
        ("packets", escape(f"{pkts:,}" + ("" if ledger else " (in flows)"))),
        ("flows", escape(f"{n_flows:,}")),
        ("IP bytes in flows", escape(f"{flow_bytes:,} ({human_bytes(flow_bytes)})")),
    ]
    if ledger and ledger.get("bytes_read"):
        items.append(("packet bytes read", escape(f"{int(ledger['bytes_read']):,} ({human_bytes(ledger['bytes_read'])})")))
    if n_flows and "proto" in df:
        counts = df["proto"].value_counts()
        items.append(("flows by protocol", escape(", ".join(f"{k} {v:,}" for k, v in counts.items()))))
    wide = lambda k: k in ("time span",) or "capture" in k  # noqa: E731
    dl = "".join(f'<div class="kv{" wide" if wide(k) else ""}"><dt>{escape(k)}</dt>'
                 f'<dd class="v-{escape(k.split()[-1] if "capture" in k else k.replace(" ", "-"))}">{v}</dd></div>'
                 for k, v in items)
    return section("overview", "Overview", f'<dl class="overview">{dl}</dl>')


def _sources_html(sources: list[str]) -> str:
    """File names whole (never broken mid-word), the directory they share once, full paths on hover."""
    if not sources:
        return "(flow table)"
    import os.path

    names = [str(s) for s in sources]
    if len(names) == 1:
        return escape(names[0])
    paths = [n for n in names if os.sep in n]
    common = os.path.commonpath(paths) if len(paths) == len(names) and len(names) > 1 else ""
    shown = names[:12]
    spans = "".join(f'<span class="path" title="{escape(n)}">{escape(os.path.relpath(n, common) if common else n)}</span>'
                    for n in shown)
    more = f"<small>and {len(names) - len(shown):,} more</small>" if len(names) > len(shown) else ""
    where = f"<small>in {escape(common)}</small>" if common else ""
    return spans + more + where


def time_span(df: pd.DataFrame) -> str:
    """First flow start to last flow end; flows stamped before 1995 or after the report was made
    (a capture clock that was not set) are counted apart, not stretched into the span."""
    if not len(df) or "ts_start" not in df:
        return "no flows"
    t0s = pd.to_datetime(df["ts_start"], utc=True)
    t1s = pd.to_datetime(df["ts_end"], utc=True) if "ts_end" in df else t0s
    now = pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=1)
    ok = (t0s >= PLAUSIBLE_FROM) & (t1s <= now)
    odd = ""
    if not ok.all():
        bad = t0s[~ok]
        odd = (f"<small>{int((~ok).sum()):,} flow{'' if (~ok).sum() == 1 else 's'} with implausible timestamps "
               f"left out of the span ({escape(_ts(bad.min())[:10])} … {escape(_ts(bad.max())[:10])}: "
               "the capture clock was not set)</small>")
    if not ok.any():
        return "no plausible timestamps" + odd
    t0, t1 = t0s[ok].min(), t1s[ok].max()
    end = _ts(t1)
    if _ts(t0)[:10] == end[:10]:
        end = end[11:]  # same day: the date once
    seconds = (t1 - t0).total_seconds()
    length = f"{seconds:,.3f} s" if seconds < 3600 else (f"{seconds / 3600:,.1f} h" if seconds < 172800
                                                        else f"{seconds / 86400:,.1f} days")
    return escape(f"{_ts(t0)[:-4]} → {end} ({length})") + odd


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
        c for c in ledger if c not in LEDGER_ORDER and c not in ("packets", "bytes_read", "damage")
        and isinstance(ledger[c], (int, np.integer))]
    if "checksum_errors" not in ledger and not ledger.get("bad_checksum"):  # checksums were not verified
        cats = [c for c in cats if c != "bad_checksum"]
    counts = [int(ledger.get(c, 0)) for c in cats]
    rows = pd.DataFrame({"category": cats, "packets": counts,
                         "share": [c / total if total else 0.0 for c in counts]})
    rows = pd.concat([rows, pd.DataFrame({"category": ["total"], "packets": [sum(counts)],
                                          "share": [1.0 if total else 0.0]})], ignore_index=True)
    tbl = table(rows, formats={"share": share}, cls="ledger", name="ledger")
    colors = [svg.color(i) if i < 4 else ("#7F7F7F" if c in ("fragment", "non_ip", "unsupported_link") else "#D55E00")
              for i, c in enumerate(cats)]
    chart = svg.bar_chart(cats, counts, title="Packets per ledger category", horizontal=True,
                          x_label="packets", colors=colors)
    ok = "" if sum(counts) == total else (
        f'<p class="problem">categories sum to {sum(counts):,}, not {total:,} packets</p>')
    damage = ledger.get("damage") or []
    dmg = ("<h3>Damage</h3><ul class=\"damage\">" + "".join(f"<li>{escape(str(d))}</li>" for d in damage) + "</ul>"
           if damage else '<p class="ok">no damage: every record of every capture was read</p>')
    intro = (f"Every packet read lands in exactly one category; the categories sum to the "
             f"{total:,} packets read. Packets counted as tcp, udp, icmp and other_ip make flows; the "
             f"other categories never do.")
    return section("ledger", "Packet ledger", grid(tbl + ok, chart) + dmg, intro)


# ---------------------------------------------------------------- ports


def tiers_section(tiers: pd.DataFrame, p2p: int | None = None) -> str:
    if tiers is None or len(tiers) == 0:
        return section("tiers", "Traffic by IANA port tier", empty_note("no TCP or UDP flows in this capture"))
    # columns as documented for analysis.port_tiers (docs/analyses.md)
    tier_names = _ordered(tiers["tier"].astype(str), TIER_ORDER)
    protos = _ordered(tiers["proto"].astype(str), ("tcp", "udp"))
    charts = []
    for metric in ("flows", "bytes"):
        series = {}
        for p in protos:
            sub = tiers[tiers["proto"].astype(str) == p]
            by = sub.groupby(sub["tier"].astype(str))[metric].sum()
            series[p] = [float(by.get(t, 0)) for t in tier_names]
        fmt = human_bytes if metric == "bytes" else num
        charts.append(svg.stacked_bars(tier_names, series, title=f"{metric.capitalize()} by destination-port tier",
                                       y_label=metric, value_fmt=fmt))
    fmts = {"bytes": human_bytes, "share": share}
    intro = ("Tiers are judged on the responder (server) port, per RFC 6335: well-known 0–1023, "
             "registered 1024–49151, dynamic 49152–65535. Traffic to dynamic ports usually means "
             "peer-to-peer or negotiated data channels.")
    p2p_line = ""
    if p2p is not None:
        p2p_line = (f'<p class="p2p">{p2p:,} flow{"" if p2p == 1 else "s"} with both ports dynamic '
                    f"(≥ 49152): peer-to-peer style, no service port on either side.</p>")
    return section("tiers", "Traffic by IANA port tier", grid(*charts) + p2p_line + table(tiers, formats=fmts, name="port-tiers"), intro)


def services_section(services: pd.DataFrame) -> str:
    if services is None or len(services) == 0:
        return section("services", "Top services", empty_note("no TCP or UDP flows in this capture"))
    # columns as documented for analysis.services (docs/analyses.md)
    labels = [f"{port}/{proto}" + (f" {name}" if isinstance(name, str) and name else "")
              for port, proto, name in zip(services["dst_port"], services["proto"], services["service"])]
    flows = services["flows"].to_numpy(dtype=float)
    order = np.argsort(-flows, kind="stable")[:MAX_SERVICE_BARS]
    colors = [svg.color(0) if services["proto"].iloc[i] == "tcp" else svg.color(1) for i in order]
    chart = svg.bar_chart([labels[i] for i in order], flows[order],
                          title=f"Top {len(order)} server ports by flows (blue TCP, orange UDP)", horizontal=True,
                          x_label="flows", colors=colors)
    fmts = {"bytes": human_bytes}
    intro = ("Server ports ranked by number of flows across TCP and UDP, with their IANA service name "
             "where one is registered.")
    cols = ["proto", "dst_port", "service", "tier", "flows", "bytes", "servers", "clients"]
    return section("services", "Top services", grid(chart, table(services, cols, formats=fmts, name="services"), pair=True), intro)


FLAG_NOTES = {
    "unexpected-service": "what answered is not the port's IANA service",
    "off-port": "a known service away from its registered port",
    "unidentified": "a well-known port whose payload matched no protocol",
}


def identified_section(servers: pd.DataFrame | None) -> str:
    """Per server, the services identified from payload and the flags (analysis.server_services)."""
    if servers is None or len(servers) == 0:
        return section("identified", "Identified services",
                       empty_note("no server exchanged payload in this capture"))
    flags = servers["flags"].fillna("").astype(str)
    counts = {f: int(flags.str.split(",").map(lambda fl, f=f: f in fl).sum()) for f in FLAG_NOTES}
    items = "".join(f"<li><b>{escape(f)}</b>: {n} server{'s' if n != 1 else ''} ({escape(FLAG_NOTES[f])})</li>"
                    for f, n in counts.items())
    flagged = servers[flags != ""]
    cols = ["server_ip", "server_port", "proto", "port_service", "services", "flags", "flows", "server_names"]
    body = f"<ul>{items}</ul>"
    if len(flagged):
        body += "<h3>Flagged servers</h3>" + table(flagged, cols, name="flagged-servers")
    names = servers["services"].fillna("").astype(str).str.split(",").explode()
    per_service = names[names != ""].value_counts()
    if len(per_service):
        chart = svg.bar_chart(list(per_service.index[:MAX_SERVICE_BARS]),
                              per_service.to_numpy(dtype=float)[:MAX_SERVICE_BARS],
                              title="Servers per identified service", horizontal=True, x_label="servers")
        body += "<h3>All servers</h3>" + grid(chart, table(servers, cols, name="identified-services"), pair=True)
    intro = ("What really answered each server port, named from payload as Zeek's dynamic protocol detection "
             "does (a service is named only when the payload confirms it, never from the port).")
    return section("identified", "Identified services", body, intro)


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
        s = answered_first(servers)
        fm = {c: ms for c in s.columns if c.startswith("rtt")}
        fm.update({c: share for c in s.columns if "rate" in c})
        keep = ["dst_ip", "dst_port", "attempts", *OUTCOME_ORDER, "success_rate", "syn_retries",
                "rtt_server_p50", "rtt_server_p90", "rtt_client_p50", "rtt_client_p90", "clients"]
        cols = [c for c in keep if c in s.columns] or list(s.columns)
        srv = ("<h3>Per server (answered first, then by attempts)</h3>"
               + table(s, cols, formats=fm, name="handshake-servers"))
    intro = ("complete: SYN, SYN-ACK, ACK; rejected: SYN answered by RST; unanswered: no reply; "
             "incomplete: SYN-ACK but no final ACK; midstream: the capture began after the SYN. "
             "Server RTT is measured at the capture point from the SYN the SYN-ACK answers; client RTT "
             "from the SYN-ACK to the ACK. A capture near the client shows the network delay in the "
             "server RTT, near the server in the client RTT.")
    return section("handshakes", "TCP handshakes", grid(bar, *hists) + retries + stat_tbl + srv, intro)


def answered_first(servers: pd.DataFrame) -> pd.DataFrame:
    """Servers that answered (complete or incomplete handshakes) before those that never did,
    each group by attempts: 3 open ports stay on top of 1,000 scanned ones."""
    answered = sum(servers[c] for c in ("complete", "incomplete") if c in servers)
    key = pd.DataFrame({"a": np.asarray(answered, dtype=float) if len(servers) else [],
                        "n": servers["attempts"].to_numpy(dtype=float)}, index=servers.index)
    return servers.loc[key.sort_values(["a", "n"], ascending=False, kind="stable").index]


def _outcome_counts(hs: pd.DataFrame, summary) -> dict[str, int]:
    """Flows per outcome from ``handshake_summary``, else from the per-flow ``outcome`` column
    (the same numbers)."""
    if summary is not None and len(summary):
        return {str(k): int(v) for k, v in zip(summary["outcome"], summary["flows"])}
    vc = hs["outcome"].astype(str).value_counts()
    return {str(k): int(v) for k, v in vc.items()}


# ---------------------------------------------------------------- ephemeral ports


def _non_empty(df: pd.DataFrame) -> list[str]:
    """Columns with something to show (a text column empty on every row is left out)."""
    return [c for c in df.columns if not (df[c].dtype == object and df[c].fillna("").astype(str).eq("").all())]


def ephemeral_section(eph: pd.DataFrame, points: pd.DataFrame | None) -> str:
    if eph is None or len(eph) == 0:
        return section("ephemeral", "Ephemeral ports", empty_note("no client connections in this capture"))
    # columns as documented for analysis.ephemeral and ephemeral_points (docs/analyses.md)
    busy = eph.sort_values("connections", ascending=False)
    panels = []
    if points is not None and len(points):
        for _, row in busy.head(MAX_PANELS).iterrows():
            sub = points[points["client_ip"] == row["client_ip"]]
            if len(sub) < 2:
                continue
            sub = sub.sort_values("ts")
            n_total = len(sub)
            shown = ""
            if len(sub) > MAX_POINTS:  # even thinning keeps the shape of the sequence
                sub = sub.iloc[np.linspace(0, len(sub) - 1, MAX_POINTS).astype(int)]
                shown = f", {MAX_POINTS:,} shown"
            t = pd.to_datetime(sub["ts"], utc=True)
            secs = (t - t.iloc[0]).dt.total_seconds().to_numpy()
            title = f"{row['client_ip']}: {n_total:,} connections{shown} — {row['allocation']}, range {row['range']}"
            dst = sub["dst"].astype(str).to_numpy()
            ports = sub["src_port"].to_numpy()
            tips = [f"{d} port {p} at +{s:.3f} s" for d, p, s in zip(dst, ports, secs)]
            panels.append(svg.scatter(secs, ports.astype(float), groups=dst, title=title,
                                      x_label="seconds since the client's first connection",
                                      y_label="source port", tips=tips, y_integer=True))
    charts = grid(*panels) if panels else empty_note("no client with two or more connections to plot")
    fm = {c: share for c in eph.columns if c.startswith("share")}
    fm.update({c: (lambda v: "" if pd.isna(v) else f"{v:.2g}") for c in eph.columns if c.endswith("_p")})
    intro = ("Source port against time for the busiest clients, one colour per destination. "
             "A rising line across all colours is a global counter (sequential); one rising line per "
             "colour with unrelated offsets is per-destination allocation (RFC 6056 algorithm 3/4, Linux); "
             "a uniform cloud is random allocation (RFC 6056 algorithm 1). The table gives the evidence "
             "for each client's classification; <code>fixed</code> marks a client that reused a few source ports for "
             "many connections, as a scanner crafting its own packets does.")
    return section("ephemeral", "Ephemeral ports", charts + table(busy, _non_empty(busy), formats=fm, name="ephemeral"), intro)


# ---------------------------------------------------------------- exposure and scans


def exposure_section(exp: pd.DataFrame) -> str:
    if exp is None or len(exp) == 0:
        return section("exposure", "Exposure", empty_note("no connection attempts to any server in this capture"))
    # columns as documented for analysis.exposure (docs/analyses.md)
    state = exp["state"].astype(str)
    # hosts with open ports first (then by ports seen): a busy scan target does not push them off the chart
    hosts = pd.DataFrame({"open": (state == "open").groupby(exp["dst_ip"]).sum(), "ports": exp.groupby("dst_ip").size()})
    top = list(hosts.sort_values(["open", "ports"], ascending=False, kind="stable").index[:12])
    states = _ordered(state, STATE_ORDER)
    ct = exp[exp["dst_ip"].isin(top)].groupby([exp["dst_ip"], state]).size()
    series = {s: [int(ct.get((h, s), 0)) for h in top] for s in states}
    chart = svg.stacked_bars([str(h) for h in top], series,
                             title="Ports per server host by state (hosts with open ports first)",
                             y_label="ports", colors=[STATE_COLORS.get(s, svg.OTHER_COLOR) for s in states])
    ph = pd.crosstab(exp["dst_ip"], state).reindex(columns=states, fill_value=0)
    ph["ports"] = ph.sum(axis=1)
    order = [c for c in ("open", "closed") if c in ph] + ["ports"]
    ph = ph.sort_values(order, ascending=False).reset_index().rename(columns={"dst_ip": "host"})
    per_host = table(ph, ["host", "ports", *states], caption="ports per host (open first)", name="exposure-hosts")
    body = grid(chart, per_host, pair=True) + "<h3>Per host and port (open, then closed, then filtered)</h3>" + table(
        open_first(exp), [c for c in exp.columns if c not in ("first_ts", "last_ts")], name="exposure")
    intro = ("Per server host and port: open (TCP SYN answered by SYN-ACK; UDP answered), closed (SYN "
             "answered by RST; UDP answered by ICMP port unreachable), filtered (no answer, or another ICMP "
             "error: the reason column says which), with the tier and service name.")
    return section("exposure", "Exposure", body, intro)


def open_first(exp: pd.DataFrame) -> pd.DataFrame:
    """Open ports, then closed, then filtered; most attempted first within each."""
    rank = exp["state"].astype(str).map({s: i for i, s in enumerate(STATE_ORDER)}).fillna(len(STATE_ORDER))
    key = pd.DataFrame({"r": rank.to_numpy(), "n": -exp["attempts"].to_numpy(dtype=float)}, index=exp.index)
    return exp.loc[key.sort_values(["r", "n"], kind="stable").index]


def scans_section(scans: pd.DataFrame) -> str:
    if scans is None or len(scans) == 0:
        return section("scans", "Scans", empty_note("no scans detected in this capture"))
    fm = {c: share for c in scans.columns if c.startswith("share")}
    intro = ("Sources with many unanswered or rejected attempts: vertical (many ports of one host) or "
             "horizontal (one port across many hosts), with the evidence.")
    fm["span"] = lambda v: "" if pd.isna(v) else f"{float(v):.3f} s"
    # target_ip/target_port repeat "target"; the table stays narrow enough to read
    cols = [c for c in scans.columns if c not in ("target_ip", "target_port")]
    return section("scans", "Scans", table(scans, cols, formats=fm, name="scans"), intro)


# ---------------------------------------------------------------- top flows

TOP_FLOW_COLUMNS = ("ts_start", "proto", "src_ip", "src_port", "dst_ip", "dst_port", "conn_state",
                    "packets", "bytes", "duration")


def top_flows_section(df: pd.DataFrame, n: int = 20) -> str:
    if len(df) == 0:
        return section("topflows", "Top flows", empty_note("no flows in this capture"))
    f = df.copy()
    f["packets"] = f["src_pkts"].astype("float64") + f["dst_pkts"].astype("float64")
    f["bytes"] = f["src_ip_bytes"].astype("float64") + f["dst_ip_bytes"].astype("float64")
    f = f.nlargest(n, "bytes")
    fm = {"ts_start": _ts, "bytes": human_bytes, "duration": lambda v: "" if pd.isna(v) else f"{v:.3f} s"}
    intro = f"The {min(n, len(df))} largest flows by IP bytes (both directions). Click a header to sort."
    return section("topflows", "Top flows", table(f, list(TOP_FLOW_COLUMNS), formats=fm, name="top-flows"), intro)


# ---------------------------------------------------------------- findings first

MAX_LISTED = 3  # items named per finding; the section below lists every one


def top_talkers(df: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """Hosts by IP bytes they sent and received (both roles), with their flows."""
    if not len(df):
        return pd.DataFrame(columns=["host", "bytes", "flows"])
    b = (df["src_ip_bytes"].astype("float64") + df["dst_ip_bytes"].astype("float64")).to_numpy()
    hosts = pd.concat([df["src_ip"].astype(str), df["dst_ip"].astype(str)], ignore_index=True)
    g = pd.DataFrame({"host": hosts, "bytes": np.concatenate([b, b]), "flows": 1}).groupby("host")
    out = g.sum().sort_values(["bytes", "flows"], ascending=False).head(n).reset_index()
    return out


def findings(df: pd.DataFrame, ledger: dict | None, exposure: pd.DataFrame | None, scans: pd.DataFrame | None,
             ephemeral: pd.DataFrame | None) -> str:
    """The summary box at the top: what a reader looks for first, each with a link to its section."""
    items = []

    def add(title: str, text: str, link: str, kind: str = "") -> None:
        items.append(f'<li class="{kind}"><b>{escape(title)}</b>{text} <a href="#{link}">details ↓</a></li>')

    if scans is not None and len(scans):
        named = "; ".join(f"{escape(str(r.src_ip))} → {escape(str(r.target))} ({r.kind}, {int(r.attempts):,} attempts, "
                          f"{int(r.failed):,} failed)" for r in scans.head(MAX_LISTED).itertuples())
        more = f"; and {len(scans) - MAX_LISTED:,} more" if len(scans) > MAX_LISTED else ""
        sources = scans["src_ip"].nunique()
        add("scans", f"{sources:,} scanning source{'' if sources == 1 else 's'}: {named}{more}", "scans", "alert")
    else:
        add("scans", "no scanning source", "scans", "ok")
    if exposure is not None and len(exposure):
        counts = exposure["state"].astype(str).value_counts()
        states = ", ".join(f"{int(counts.get(s, 0)):,} {s}" for s in STATE_ORDER)
        opened = open_first(exposure)
        opened = opened[opened["state"].astype(str) == "open"].head(MAX_LISTED + 2)
        named = ", ".join(f"{escape(str(r.dst_ip))}:{int(r.dst_port)}/{r.proto}"
                          + (f" {escape(str(r.service))}" if isinstance(r.service, str) and r.service else "")
                          for r in opened.itertuples())
        add("server ports", f"{states}" + (f"; open: {named}" if named else ""), "exposure")
        unanswered = int(exposure["unanswered"].sum())
        rejected = int(exposure["rejected"].sum())
        attempts = int(exposure["attempts"].sum())
        ports = int((exposure["unanswered"] > 0).sum())
        add("unanswered attempts",
            f"{unanswered:,} of {attempts:,} connection attempts got no answer ({share(unanswered / attempts)}), "
            f"to {ports:,} server port{'' if ports == 1 else 's'}; {rejected:,} rejected by a RST",
            "exposure", "alert" if unanswered else "ok")
    else:
        add("server ports", "no connection attempts to any server", "exposure")
    damage = (ledger or {}).get("damage") or []
    if ledger is None:
        add("damage", "unknown: no packet ledger (the report was built from saved flows)", "ledger")
    elif damage:
        first = escape(str(damage[0]))
        add("damage", f"{len(damage):,} damaged record{'' if len(damage) == 1 else 's'}: {first}"
            + (f"; and {len(damage) - 1:,} more" if len(damage) > 1 else ""), "ledger", "alert")
    else:
        not_in_flows = int(ledger["packets"]) - int(ledger.get("tcp", 0)) - int(ledger.get("udp", 0))
        add("damage", f"none: every record was read; {not_in_flows:,} packet{'' if not_in_flows == 1 else 's'} "
            "outside TCP/UDP flows", "ledger", "ok")
    talkers = top_talkers(df)
    if len(talkers):
        named = ", ".join(f"{escape(str(r.host))} {human_bytes(r.bytes)} ({int(r.flows):,} flow{'' if r.flows == 1 else 's'})"
                          for r in talkers.itertuples())
        add("top talkers", f"by IP bytes sent and received: {named}", "topflows")
    if ephemeral is not None and len(ephemeral) and "allocation" in ephemeral:
        fixed = ephemeral[ephemeral["allocation"] == "fixed"]
        if len(fixed):
            named = ", ".join(f"{escape(str(r.client_ip))} ({int(r.distinct_ports):,} ports for {int(r.connections):,} "
                              "connections)" for r in fixed.head(MAX_LISTED).itertuples())
            add("crafted source ports", f"clients reusing a few fixed source ports: {named}", "ephemeral", "alert")
    return section("findings", "Findings", f'<ul class="findings">{"".join(items)}</ul>').replace(
        '<section id="findings">', '<section id="findings" class="findings">', 1)
