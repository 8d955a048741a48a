"""Assemble the report page: load flows, run the analyses, inline CSS/JS, write one file."""
from __future__ import annotations

import datetime as _dt
import json
import os
from html import escape
from importlib import resources
from pathlib import Path

import pandas as pd

from flowkit.ledger import CATEGORIES
from flowkit.report import sections as S

SECTIONS = (
    ("findings", "Findings"),
    ("overview", "Overview"),
    ("ledger", "Ledger"),
    ("tiers", "Port tiers"),
    ("services", "Services"),
    ("identified", "Identified services"),
    ("handshakes", "Handshakes"),
    ("ephemeral", "Ephemeral ports"),
    ("exposure", "Exposure"),
    ("scans", "Scans"),
    ("topflows", "Top flows"),
)


def _asset(name: str) -> str:
    return resources.files("flowkit.report").joinpath(name).read_text(encoding="utf-8")


def ledger_dict(ledger) -> dict | None:
    """A Ledger, its ``to_dict()``, or a list of either (summed) as one plain dict."""
    if ledger is None:
        return None
    if isinstance(ledger, (list, tuple)):
        parts = [d for d in (ledger_dict(x) for x in ledger) if d]
        if not parts:
            return None
        out = {"packets": 0, **dict.fromkeys(CATEGORIES, 0), "bytes_read": 0, "damage": []}
        for d in parts:
            for k in ("packets", "bytes_read", *CATEGORIES):
                out[k] += int(d.get(k, 0) or 0)
            out["damage"] += list(d.get("damage") or [])
        return out
    if hasattr(ledger, "to_dict"):
        return ledger.to_dict()
    if isinstance(ledger, dict):
        if "packets" not in ledger and isinstance(ledger.get("ledger"), dict):
            return ledger_dict(ledger["ledger"])
        return dict(ledger) if "packets" in ledger else None
    return None


def _run(problems: list[str], name: str, fn, *args, **kwargs):
    """Run one analysis; a failure becomes a visible line on the page, never a missing section."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 -- shown to the reader, the rest of the report still renders
        problems.append(f"{name}: {type(exc).__name__}: {exc}")
        return None


def render_html(flows_df: pd.DataFrame, ledger=None, title: str = "flowkit report",
                sources: list[str] | None = None, top: int = 20) -> str:
    """The whole report as one self-contained HTML string (inline CSS, JS and SVG).

    ``top``: services listed (ranked across protocols, as ``flowkit ports --top``) and largest flows shown."""
    from flowkit import analysis as A

    df = flows_df.to_pandas() if hasattr(flows_df, "to_pandas") else flows_df
    led = ledger_dict(ledger)
    problems: list[str] = []
    if sources is None and "source" in df.columns and len(df):
        sources = [str(s) for s in pd.unique(df["source"])]
    sources = list(sources or [])

    def run(name, *args, **kw):
        return _run(problems, name, getattr(A, name), *args, **kw)

    has_tcp = len(df) > 0 and (df["proto"] == "tcp").any()
    exposure = run("exposure", df) if len(df) else None
    scans = run("scans", df) if len(df) else None
    ephemeral = run("ephemeral", df) if len(df) else None
    body = [
        S.findings(df, led, exposure, scans, ephemeral),
        S.overview(df, led, sources),
        S.ledger_section(led),
        S.tiers_section(run("port_tiers", df) if len(df) else None, _p2p_count(run, df)),
        S.services_section(run("services", df, top=top) if len(df) else None),
        S.identified_section(run("server_services", df) if len(df) and "service" in df.columns else None),
        S.handshakes_section(run("handshakes", df) if has_tcp else None,
                             run("handshake_summary", df) if has_tcp else None,
                             run("handshake_servers", df) if has_tcp else None),
        S.ephemeral_section(ephemeral, run("ephemeral_points", df) if len(df) else None),
        S.exposure_section(exposure),
        S.scans_section(scans),
        S.top_flows_section(df, n=top),
    ]
    problem_html = ""
    if problems:
        problem_html = ('<section id="problems"><h2>Problems</h2><ul class="problems">'
                        + "".join(f"<li>{escape(p)}</li>" for p in problems) + "</ul></section>")
    from flowkit import __version__

    made = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    toc = "".join(f'<a href="#{sid}">{escape(name)}</a>' for sid, name in SECTIONS)
    sub = (escape(", ".join(os.path.basename(str(x)) for x in sources[:6])) + (f" and {len(sources) - 6:,} more" if len(sources) > 6 else "")
           if sources else "flow table")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_asset('report.css')}</style></head><body>"
        f'<header class="top"><h1>{escape(title)}</h1><p>{sub}</p></header>'
        f'<nav class="toc">{toc}</nav><main>{problem_html}{"".join(body)}</main>'
        f"<footer>made by flowkit {escape(__version__)} on {made}</footer>"
        f"<script>{_asset('report.js')}</script></body></html>\n"
    )


def _p2p_count(run, df) -> int | None:
    if not len(df):
        return None
    found = run("p2p_flows", df)
    return None if found is None else len(found)


def _is_dataset(p: Path) -> bool:
    return p.is_dir() and (p / "manifest.json").is_file()


def _dataset_ledgers(p: Path) -> list:
    """Per-capture ledgers of a batch-mode dataset: the files its manifest lists for the
    captures that are done (``captures[].ledger``), else every ``ledgers/*.json``."""
    try:
        manifest = json.loads((p / "manifest.json").read_text())
    except (OSError, ValueError):
        manifest = {}
    files = [p / e["ledger"] for e in manifest.get("captures", []) if isinstance(e, dict)
             and e.get("status", "done") == "done" and isinstance(e.get("ledger"), str)]
    if not files and (p / "ledgers").is_dir():
        files = sorted((p / "ledgers").glob("*.json"))
    found = []
    for f in files:
        try:
            found.append(json.loads(f.read_text()))
        except (OSError, ValueError):
            continue
    return found


def load(source, **flow_options) -> tuple[pd.DataFrame, object, list[str]]:
    """Flows, ledger and source names from any of the accepted inputs."""
    import flowkit

    if isinstance(source, pd.DataFrame):
        return source, None, []
    if hasattr(source, "to_pandas") and not isinstance(source, (str, os.PathLike)):
        return source.to_pandas(), getattr(source, "stats", None), []
    if hasattr(source, "read"):  # a binary stream such as stdin
        table = flowkit.flows(source, **flow_options)
        return table.to_pandas(), getattr(table, "stats", None), [getattr(source, "name", "<stream>")]
    paths = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    from flowkit.saved import kind_of, read_saved

    if all(kind_of(str(p)) in ("parquet", "zeek") for p in paths):  # saved flows: no ledger
        return read_saved([str(p) for p in paths]).table.to_pandas(), None, [str(p) for p in paths]
    if len(paths) == 1 and _is_dataset(Path(paths[0])):
        ds = flowkit.read_dataset(str(paths[0]))
        df = ds.to_pandas() if hasattr(ds, "to_pandas") else pd.DataFrame(ds)
        names = [str(x) for x in pd.unique(df["source"])] if "source" in df.columns else []
        return df, _dataset_ledgers(Path(paths[0])) or None, names
    table = flowkit.flows(paths[0] if len(paths) == 1 else [str(p) for p in paths], **flow_options)
    names = ["standard input" if str(p) == "-" else Path(p).name for p in paths]
    return table.to_pandas(), getattr(table, "stats", None), names


def write_report(source, path, *, title: str | None = None, sources: list[str] | None = None, top: int = 20,
                 **flow_options) -> Path:
    """Write the HTML report for ``source`` to ``path`` (atomically) and return the path.

    ``source``: capture path(s), a FlowTable, a DataFrame of flows, or a batch-mode
    dataset directory (one holding ``manifest.json``). ``flow_options`` go to
    ``flowkit.flows`` when captures are read. ``sources`` names the captures when
    ``source`` is an already built FlowTable (which does not know its file names). ``top``: see
    ``render_html``.
    """
    df, ledger, names = load(source, **flow_options)
    names = list(sources) if sources else names
    if title is None:
        title = "flowkit report" + (f": {names[0]}" if len(names) == 1 else "")
    html = render_html(df, ledger=ledger, title=title, sources=names or None, top=top)
    out = Path(path)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, out)
    return out
