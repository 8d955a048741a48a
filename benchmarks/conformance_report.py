"""Compare flowkit's flow table with Zeek's baseline conn.log for every conformance entry.

    python benchmarks/conformance_report.py            # print per-trace scores
    python benchmarks/conformance_report.py --write    # also regenerate the table in docs/conformance.md

Rows compared: every Zeek row, inside tunnels too (flowkit decapsulates): TCP, UDP, ICMP and
unknown_transport, matched to flowkit rows by oriented five-tuple (orig_h, orig_p, resp_h,
resp_p, proto; flowkit's protocols other than tcp/udp/icmp read as unknown_transport); when
several connections share a tuple, identical rows pair first, the rest in order.
A baseline row flowkit lacks counts as a mismatch on every field. tunnel_parents is
scored as a relation: Zeek's parent uids mapped to flowkit rows through the matched pairs.

flowkit verifies checksums where Zeek did (the runs without -C: verify_checksums=True), so
rows of packets with bad checksums (history C/c) are scored like any other.

Two kinds of rows are scored apart (listed, never hidden), because the difference is
outside the flow layer:
  undecoded  - flowkit has no row and the packet layer left packets of the trace
               undecoded (ledger: unsupported_link, non_ip or truncated), e.g. 802.15.4,
               or a capture cut inside the TCP header (Zeek then logs a zero-packet row).
  amsdu      - a row flowkit lacks (or orients otherwise) in a trace of 802.11 A-MSDU
               frames: flowkit reads the first subframe of each frame (one frame, one
               row), Zeek every subframe, so it sees other packets.
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
ZEEK = CORPUS / "zeek"
DOC = ROOT / "docs" / "conformance.md"
COUNT_FIELDS = ("orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes")
STATE_FIELDS = ("conn_state", "history")
SERVICE = "service"  # scored as a set of Zeek names apart from the fields above
PARENTS = "tunnel_parents"  # scored as the relation between rows (uids mapped by five-tuple)
FLOWKIT = {
    "orig_pkts": "src_pkts", "resp_pkts": "dst_pkts", "orig_ip_bytes": "src_ip_bytes",
    "resp_ip_bytes": "dst_ip_bytes", "conn_state": "conn_state", "history": "history",
    "orig_bytes": "src_payload_bytes", "resp_bytes": "dst_payload_bytes", "missed_bytes": "missed_bytes",
}
EXTRA_FIELDS = ("orig_bytes", "resp_bytes", "missed_bytes")  # scored where Zeek logs them
# Traces whose missing rows have a known cause in the packet layer (reason as above).
KNOWN_GAPS = {"tunnels/gre-aruba-amsdu.pcap": "amsdu"}
BEGIN, END = "<!-- conformance-table:begin -->", "<!-- conformance-table:end -->"


def read_conn_log(path: Path) -> list[dict]:
    """Rows of a conn.log: Zeek's own format, or a zeek-cut extract whose first line names the fields."""
    fields, rows = None, []
    for line in path.read_text().splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line and not line.startswith("#"):
            if fields is None:
                fields = line.split("\t")
                continue
            rows.append(dict(zip(fields, line.split("\t"))))
    return rows


@dataclass
class Score:
    test: str
    trace: str
    rows: int = 0
    matched: int = 0
    extra: int = 0
    ok: dict = field(default_factory=lambda: defaultdict(int))
    diffs: list = field(default_factory=list)
    excluded: dict = field(default_factory=lambda: defaultdict(int))
    extract: list = field(default_factory=list)  # (field, zeek, flowkit) for one-row zeek-cut extracts
    error: str = ""


def _key(r: dict) -> tuple:
    return (r["id.orig_h"], int(r["id.orig_p"]), r["id.resp_h"], int(r["id.resp_p"]), r["proto"])


def _fk_row(r: dict) -> dict:
    out = {z: r[f] for z, f in FLOWKIT.items()}
    out["history"] = out["history"] or ""
    out[SERVICE] = frozenset(n for n in (r.get(SERVICE) or "").split(",") if n)
    out["flow_id"], out["proto"] = r.get("flow_id"), r.get("proto")
    out[PARENTS] = [int(v) for v in r.get(PARENTS, [])]
    return out


def zeek_services(value: str) -> frozenset:
    """Zeek's service set; '-' is empty. A '-name' entry (Zeek's record of an analyzer it removed
    after a violation, when DPD::track_removed_services_in_connection is on) cancels 'name'."""
    names = [n for n in value.split(",") if n and n != "-"]
    removed = {n[1:] for n in names if n.startswith("-")}
    return frozenset(n for n in names if not n.startswith("-") and n not in removed)


def _zeek_row(r: dict) -> dict:
    out = {}
    for z in FLOWKIT:
        v = r.get(z, "-")
        if z in STATE_FIELDS:
            out[z] = "" if v == "-" else v
        else:
            out[z] = None if v == "-" else int(v)
    out[SERVICE] = zeek_services(r.get(SERVICE, "-"))
    out["uid"] = r.get("uid")
    out[PARENTS] = [u for u in r.get(PARENTS, "-").split(",") if u not in ("-", "(empty)", "")]
    return out


def score_parents(sc: "Score", pairs: list) -> None:
    """tunnel_parents of the matched rows: Zeek's uids mapped to flowkit rows through the
    matched pairs (five-tuple). A uid that is no row of the conn.log is an IP tunnel (GRE,
    IP-in-IP: Zeek logs those in tunnel.log, not in the baselines): it must be matched by a
    flowkit parent that is no matched row and is a flow of a protocol Zeek has no conn row for."""
    uid_fid = {z["uid"]: f["flow_id"] for z, f in pairs if z["uid"]}
    matched_fids = {f["flow_id"] for _, f in pairs}
    for z, f in pairs:
        inside = bool(z[PARENTS])
        sc.ok[PARENTS + ("_in_n" if inside else "_out_n")] += 1
        want = {uid_fid[u] for u in z[PARENTS] if u in uid_fid}
        unmapped = len([u for u in z[PARENTS] if u not in uid_fid])
        got = set(f[PARENTS])
        others = got - want
        good = want <= got and len(others) == unmapped and len(got) == len(f[PARENTS])
        good = good and all(fid not in matched_fids for fid in others)
        sc.ok[PARENTS + ("_in" if inside else "_out")] += good
        if not good:
            sc.diffs.append((z["uid"], [PARENTS], z[PARENTS], f[PARENTS]))


def _same(a: dict, b: dict) -> bool:
    return all(a[f] == b[f] for f in (*COUNT_FIELDS, *STATE_FIELDS))


def score_entry(test: str, entry: dict) -> Score:
    import flowkit

    trace = ZEEK / "traces" / entry["trace"]
    sc = Score(test, entry["trace"])
    base = [
        r for r in read_conn_log(ZEEK / "baselines" / entry["baseline"])
        if "id.orig_h" in r and "orig_pkts" in r  # zeek-cut extracts without the five-tuple can't be matched
    ]
    sc.rows = len(base)
    raw = read_conn_log(ZEEK / "baselines" / entry["baseline"])
    cut_only = raw and "id.orig_h" not in raw[0] and "history" in raw[0]
    try:
        ft = flowkit.flows(str(trace), verify_checksums=not entry.get("ignore_checksums"))
        df = ft.to_pandas()
    except Exception as exc:  # reported, counted as all-mismatch
        sc.error = f"{type(exc).__name__}: {exc}"
        return sc
    c = ft.stats.counts
    undecoded = c["unsupported_link"] + c["non_ip"] + c["truncated"] > 0
    if cut_only and len(raw) == 1 and len(df) == 1:
        # a zeek-cut extract without the five-tuple: comparable only as the single row on both sides
        f = _fk_row(df.to_dict("records")[0])
        z = _zeek_row(raw[0])
        sc.extract = [(n, z[n], f[n]) for n in (*COUNT_FIELDS, *STATE_FIELDS) if n in raw[0]]
        if SERVICE in raw[0]:
            sc.extract.append((SERVICE, ",".join(sorted(z[SERVICE])) or "-", ",".join(sorted(f[SERVICE])) or "-"))
    from flowkit.flows.schema import zeek_proto

    df["proto"] = df["proto"].map(zeek_proto)
    ours_keys = set(zip(df["src_ip"], df["src_port"].astype(int), df["dst_ip"], df["dst_port"].astype(int), df["proto"]))
    kept = []
    for r in base:
        if entry["trace"] in KNOWN_GAPS and _key(r) not in ours_keys:
            sc.excluded[KNOWN_GAPS[entry["trace"]]] += 1
        elif undecoded and _key(r) not in ours_keys and (
            (r["id.resp_h"], int(r["id.resp_p"]), r["id.orig_h"], int(r["id.orig_p"]), r["proto"]) not in ours_keys
        ):
            sc.excluded["undecoded"] += 1
        else:
            kept.append(r)
    base = kept
    sc.rows = len(base)
    ours = defaultdict(list)
    for r in df.to_dict("records"):
        ours[(r["src_ip"], int(r["src_port"]), r["dst_ip"], int(r["dst_port"]), r["proto"])].append(_fk_row(r))
    theirs = defaultdict(list)
    for r in base:
        theirs[_key(r)].append(_zeek_row(r))
    all_pairs = []
    for key, zrows in theirs.items():
        frows = list(ours.get(key, []))
        pairs, rest = [], []
        for z in zrows:
            hit = next((i for i, f in enumerate(frows) if _same(z, f)), None)
            if hit is None:
                rest.append(z)
            else:
                pairs.append((z, frows.pop(hit)))
        for z in rest:
            pairs.append((z, frows.pop(0) if frows else None))
        for z, f in pairs:
            if f is None:
                sc.diffs.append((key, "missing", z, None))
                continue
            sc.matched += 1
            all_pairs.append((z, f))
            bad = [n for n in (*COUNT_FIELDS, *STATE_FIELDS) if z[n] != f[n]]
            for n in (*COUNT_FIELDS, *STATE_FIELDS):
                sc.ok[n] += z[n] == f[n]
            sc.ok[SERVICE] += z[SERVICE] == f[SERVICE]
            if z[SERVICE] != f[SERVICE]:
                sc.diffs.append((key, [SERVICE], z, f))
            for n in EXTRA_FIELDS:  # rows where Zeek logs them (unset when the duration is 0)
                if z[n] is not None:
                    sc.ok[n + "_n"] += 1
                    sc.ok[n] += z[n] == f[n]
                    if z[n] != f[n]:
                        sc.diffs.append((key, [n], z, f))
            if bad:
                sc.diffs.append((key, bad, z, f))
    sc.extra = sum(len(v) for v in ours.values()) - sc.matched
    if any(PARENTS in r for r in base):
        score_parents(sc, all_pairs)
    return sc


def score_all() -> list[Score]:
    entries = json.loads((ZEEK / "conformance.json").read_text())
    return [score_entry(t, e) for t, e in sorted(entries.items())]


def totals(scores: list[Score]) -> dict:
    rows = sum(s.rows for s in scores)
    counts_ok = sum(min(s.ok[f] for f in COUNT_FIELDS) if s.rows else 0 for s in scores)
    out = {"rows": rows}
    for f in (*COUNT_FIELDS, *STATE_FIELDS, SERVICE):
        out[f] = sum(s.ok[f] for s in scores) / rows if rows else 1.0
    out["counts_all"] = counts_ok / rows if rows else 1.0
    for n in (*EXTRA_FIELDS, PARENTS + "_in", PARENTS + "_out"):
        have = sum(s.ok[n + "_n"] for s in scores)
        out[n] = sum(s.ok[n] for s in scores) / have if have else 1.0
        out[n + "_rows"] = have
    return out


def table(scores: list[Score]) -> str:
    lines = [
        "| Zeek test | trace | rows | matched | extra | pkts+ip_bytes | conn_state | history | service |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in scores:
        if s.rows == 0:
            if not s.excluded:
                lines.append(f"| {s.test} | {s.trace} | 0 | 0 | {s.extra} | - | - | - | - |")
            continue
        counts = min(s.ok[f] for f in COUNT_FIELDS)
        lines.append(
            f"| {s.test} | {s.trace} | {s.rows} | {s.matched} | {s.extra} | {counts}/{s.rows} | "
            f"{s.ok['conn_state']}/{s.rows} | {s.ok['history']}/{s.rows} | {s.ok[SERVICE]}/{s.rows} |"
        )
    for s in scores:
        for why, n in sorted(s.excluded.items()):
            lines.append(f"| {s.test} | {s.trace} | {n} excluded: {why} | | | | | | |")
    t = totals(scores)
    lines.append(
        f"| **all** | | {t['rows']} | | | {t['counts_all']:.1%} | {t['conn_state']:.1%} | {t['history']:.1%} "
        f"| {t[SERVICE]:.1%} |"
    )
    lines += [
        "",
        f"Payload bytes (asserted on every row where Zeek logs them): `orig_bytes` {t['orig_bytes']:.1%} of "
        f"{t['orig_bytes_rows']}, `resp_bytes` {t['resp_bytes']:.1%} of {t['resp_bytes_rows']}; "
        f"`missed_bytes` {t['missed_bytes']:.1%} of {t['missed_bytes_rows']}.",
        "",
        f"`tunnel_parents` (asserted on every row but GRE inside UDP): {t[PARENTS + '_in']:.1%} of the {t[PARENTS + '_in_rows']} rows "
        f"inside tunnels name the same parent rows (Zeek's uids mapped by five-tuple), "
        f"{t[PARENTS + '_out']:.1%} of the {t[PARENTS + '_out_rows']} rows outside tunnels have none.",
    ]
    lines += [
        "",
        "Baselines that are one-row `zeek-cut` extracts without the five-tuple, compared as the single",
        "row on both sides (informative, not in the totals):",
        "",
        "| Zeek test | field | Zeek | flowkit | same |",
        "|---|---|---|---|---|",
    ]
    for s in scores:
        for name, z, f in s.extract:
            lines.append(f"| {s.test} | {name} | {z} | {f} | {'yes' if z == f else 'no'} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    scores = score_all()
    for s in scores:
        flag = f"  ERROR {s.error}" if s.error else ""
        ex = f" excluded={dict(s.excluded)}" if s.excluded else ""
        print(f"{s.test:60s} rows={s.rows:4d} matched={s.matched:4d} extra={s.extra:3d}{ex}{flag}")
        for key, what, z, f in s.diffs[:10]:
            print(f"    {key} {what}\n      zeek    {z}\n      flowkit {f}")
    t = totals(scores)
    print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in t.items()})
    if "--write" in argv:
        text = DOC.read_text()
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        DOC.write_text(f"{head}{BEGIN}\n{table(scores)}\n{END}{tail}")
        print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
