"""The ``flowkit`` command: parse arguments, call the library, render. Reference: docs/cli.md.

Exit codes: 0 success; 1 input error, reported as one line ``flowkit: <file>: offset N:
what was wrong`` (no traceback unless --debug); 2 usage error.
"""
from __future__ import annotations

import errno
import importlib
import inspect
import logging
import os
import sys
import threading
from pathlib import Path
from typing import List, Optional

import typer

from flowkit import cli_output, notices, progress, views
from flowkit.cli_output import STDOUT, Shape, Shown
from flowkit.cli_output import check_output as _check_output
from flowkit.errors import CaptureError, FlowkitError

# the click that typer uses (recent typer vendors its own copy): its exceptions module
click = sys.modules[typer.BadParameter.__module__]

app = typer.Typer(
    name="flowkit",
    help="Packet captures (pcap, pcapng) into five-tuple flows, and the analyses on them.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

ENGINES = ("fast", "dpkt", "pyshark")

class Settings:
    """Options shared by the commands that read captures."""

    def __init__(self, captures, engine, filter, idle_timeout, udp_timeout, strict, quiet, packet_filter=None,
                 memory=None, no_decap=False, verify_checksums=False):
        self.captures = list(captures)
        self.decap = not no_decap
        self.verify_checksums = verify_checksums
        self.engine = engine
        self.filter = filter  # over flows: src = originator, dst = responder
        self.packet_filter = packet_filter  # over packets, before flows are built (tcpdump's view)
        self.active_timeout = None
        self.vlan_key = False
        self.local_nets = None  # CIDR strings of local_orig/local_resp (None: Zeek's default)
        self.idle_timeout = idle_timeout
        self.udp_timeout = udp_timeout
        self.strict = strict
        self.quiet = quiet
        self.memory = memory  # bytes, None: the default budget

    def sources(self) -> list:
        if self.captures.count("-") > 1:
            raise click.UsageError("standard input ('-') can be given only once")
        for c in self.captures:
            if c != "-":
                _check_input(c)
        if "-" in self.captures:
            _check_stdin(sys.stdin.buffer)
        return [sys.stdin.buffer if c == "-" else c for c in self.captures]

    def flow_options(self) -> dict:
        options = {"engine": self.engine, "strict": self.strict}
        if not self.decap:
            options["decap"] = False
        if self.verify_checksums:
            options["verify_checksums"] = True
        if self.packet_filter:
            options["packet_filter"] = self.packet_filter
        if self.idle_timeout is not None:
            options["tcp_timeout"] = self.idle_timeout
        if self.udp_timeout is not None:
            options["udp_timeout"] = self.udp_timeout
        if self.active_timeout is not None:
            options["active_timeout"] = self.active_timeout
        if self.vlan_key:
            options["vlan_key"] = True
        if self.local_nets is not None:
            options["local_nets"] = tuple(self.local_nets)
        if self.memory is not None:
            options["memory"] = self.memory
        return options


def _check_input(path: str) -> None:
    """Fail with one line on what cannot be a capture, before reading anything."""
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "no such file", path)
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        # a zero-byte file has not even a file header: an error, as for tcpdump -r
        raise CaptureError(path, 0, "empty file, not a capture")


def _check_stdin(stdin) -> None:
    peek = getattr(stdin, "peek", None)
    if peek is not None and peek(1) == b"":  # waits for the first bytes, as reading would
        raise CaptureError("<stdin>", 0, "empty input, not a capture")


# ----------------------------------------------------------------------------- shared options
CapturesArg = typer.Argument(..., metavar="CAPTURE", help="pcap/pcapng files (compressed too); '-' reads standard input; or saved flows: a flows .parquet file, a batch dataset directory, a Zeek conn.log (TSV or JSON)")
EngineOpt = typer.Option("fast", "--engine", "-e", help="decode engine: fast, dpkt or pyshark")
FilterOpt = typer.Option(None, "--filter", "-f", metavar="EXPR", help="keep flows matching a tcpdump-style expression (src = originator, dst = responder), e.g. 'tcp and dst port 80'")
PacketFilterOpt = typer.Option(None, "--packet-filter", metavar="EXPR", help="keep only packets matching EXPR before building flows (tcpdump semantics, packet by packet)")
PacketOnlyFilterOpt = typer.Option(None, "--filter", "-f", metavar="EXPR", help="keep packets matching a tcpdump-style expression, e.g. 'tcp and port 80'")
IdleOpt = typer.Option(None, "--tcp-timeout", "--idle-timeout", metavar="S", help="TCP inactivity timeout in seconds (default 300, as Zeek; --idle-timeout is the older name)")
MemoryOpt = typer.Option(None, "--memory", metavar="SIZE", help="memory for the flow state (bytes, or with K, M, G; default 96M: the process stays under 300 MB); past it connections go to disk and come back, the flows are the same")
UdpOpt = typer.Option(None, "--udp-timeout", metavar="S", help="UDP inactivity timeout in seconds (default 60, as Zeek)")
NoDecapOpt = typer.Option(False, "--no-decap", help="do not follow tunnels (GRE, VXLAN, GTP-U, ...): outer flows only")
ChecksumOpt = typer.Option(False, "--verify-checksums", help="verify checksums as Zeek without -C: packets with a bad IPv4 header checksum are dropped, bad TCP/UDP/ICMP ones left out of the counts (history C/c); default: not verified, as zeek -C")
StrictOpt = typer.Option(False, "--strict", help="fail on the first damaged record instead of keeping what was read")
QuietOpt = typer.Option(False, "--quiet", "-q", help="no progress bar, no notes on stderr")
DebugOpt = typer.Option(False, "--debug", help="show the traceback of errors")
JsonOpt = typer.Option(False, "--json", help="JSON Lines on stdout: one object per row")
LimitOpt = typer.Option(None, "--limit", "-n", metavar="N", help="rows to show (terminal default 20; JSON and files default all)")
StatsOpt = typer.Option(False, "--stats", help="also print the packet ledger")


def _settings(captures, *, engine: str = "fast", filter=None, packet_filter=None, idle_timeout=None,
              udp_timeout=None, memory=None, strict: bool = False, quiet: bool = False,
              debug: bool = False, no_decap: bool = False, verify_checksums: bool = False) -> Settings:
    """Check the shared options (before any capture is read) and bundle them."""
    if engine not in ENGINES:
        raise click.BadParameter(f"{engine!r} is not one of {', '.join(ENGINES)}", param_hint="'--engine'")
    for expr in (filter, packet_filter):
        if expr:
            from flowkit.filter import compile_filter

            compile_filter(expr)  # a bad expression fails before any capture is read
    for name, value in (("--tcp-timeout", idle_timeout), ("--udp-timeout", udp_timeout)):
        if value is not None and value <= 0:
            raise click.BadParameter("must be a positive number of seconds", param_hint=f"'{name}'")
    budget = None if memory is None else _size(memory, "--memory")
    return Settings(captures, engine, filter, idle_timeout, udp_timeout, strict, quiet, packet_filter, budget,
                    no_decap, verify_checksums)


# Option groups: functions whose parameters are typer options, spliced into the commands'
# signatures by _with_options (typer reads a command's options from its signature).
def _captures_argument(captures: List[str] = CapturesArg): ...


def _engine_option(engine: str = EngineOpt): ...


def _flow_filter_option(filter: Optional[str] = FilterOpt): ...


def _packet_filter_option(packet_filter: Optional[str] = PacketFilterOpt): ...


def _timeout_options(idle_timeout: Optional[float] = IdleOpt, udp_timeout: Optional[float] = UdpOpt,
                     memory: Optional[str] = MemoryOpt): ...


def _decap_option(no_decap: bool = NoDecapOpt, verify_checksums: bool = ChecksumOpt): ...


def _show_options(limit: Optional[int] = LimitOpt, json: bool = JsonOpt, fields: Optional[str] = cli_output.FieldsOpt,
                  sort: Optional[str] = cli_output.SortOpt, wide: bool = cli_output.WideOpt): ...


_SHOW_NAMES = list(inspect.signature(_show_options).parameters)


def _shape(shared: dict) -> Shape:
    """Take the --limit, --fields, --sort, --wide options out of ``shared``."""
    return Shape.of(shared.pop("fields"), shared.pop("sort"), shared.pop("limit"), shared.pop("wide"))


def _common_options(quiet: bool = QuietOpt, strict: bool = StrictOpt, debug: bool = DebugOpt): ...


_flow_source_options = (_engine_option, _flow_filter_option, _packet_filter_option, _timeout_options, _decap_option)


_SHARED_NAMES = [name for group in (*_flow_source_options, _common_options)
                 for name in inspect.signature(group).parameters]


def _signature(*parts) -> inspect.Signature:
    """One signature from option groups (functions) and lists of ``inspect.Parameter``."""
    params = []
    for part in parts:
        if callable(part):
            part = inspect.signature(part, eval_str=True).parameters.values()
        params.extend(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in part)
    return inspect.Signature(params)


def _with_options(*groups):
    """Give a command ``fn(own..., **shared)`` the options of ``groups`` in place of ``**shared``."""

    def wrap(fn):
        own = [p for p in inspect.signature(fn, eval_str=True).parameters.values()
               if p.kind is not inspect.Parameter.VAR_KEYWORD]
        fn.__signature__ = _signature(own, *groups)
        return fn

    return wrap


def _is_flow_file(path: str) -> bool:
    """Saved flows (Parquet, a batch dataset directory, a Zeek conn.log) rather than a capture."""
    from flowkit.saved import is_saved

    return is_saved(path)


def _source_names(captures) -> list[str]:
    return ["standard input" if str(c) == "-" else str(c) for c in captures]


def build_table(s: Settings):
    """FlowTable of the captures: packet filter while reading, then the flow filter.

    Says on stderr what would otherwise surprise: damage, time going backwards between
    captures, packets that made no flow (and why), flows none of which pass --filter."""
    import flowkit
    from flowkit.flows import FlowTable

    saved = [_is_flow_file(c) for c in s.captures]
    if any(saved) and not all(saved):
        raise click.UsageError("give either captures or saved flows (.parquet, dataset directory, Zeek conn.log), not both")
    if saved and all(saved):
        return _saved_table(s)
    sources = s.sources()
    options = s.flow_options()
    session = progress.current()
    # the same PacketTable flows() would open, watched batch by batch (no per-packet work)
    packets = notices.WatchedPackets(sources if len(sources) > 1 else sources[0], options.pop("engine"),
                                     strict=options.pop("strict"), filter=options.pop("packet_filter", None),
                                     decap=options.pop("decap", True),
                                     verify_checksums=options.pop("verify_checksums", False),
                                     names=_source_names(s.captures), on_packets=session.add_packets)
    with session.reading(s.captures, quiet=s.quiet):
        table = flowkit.flows(packets, **options)
    notices.warn_damage(table.stats, s.quiet)
    for line in notices.time_backwards(packets.names, packets.spans):
        notices.say(line, quiet=s.quiet)
    if s.verify_checksums:
        notices.say(notices.checksum_note(table.stats), quiet=s.quiet)
    if len(table) == 0 and table.stats.packets > 0:
        notices.say(notices.no_flow_reason(table.stats, packets.kept, packets.links, s.packet_filter),
                    quiet=s.quiet)
    session.flows = len(table)
    if s.filter:
        from flowkit.filter import compile_flow_filter

        arrow = table.to_arrow()
        made = arrow.num_rows
        table = FlowTable(arrow.filter(compile_flow_filter(s.filter)(arrow)), table.stats)
        if made and not len(table):
            notices.say(f"{made:,} flow{'' if made == 1 else 's'}, none matching --filter {s.filter!r}",
                        quiet=s.quiet)
    return table


def load_flows(s: Settings):
    """(flows DataFrame, ledger): from captures, or from saved flows (ledger None)."""
    table = build_table(s)
    return table.to_pandas(), (None if getattr(table, "saved", False) else table.stats)


def _saved_table(s: Settings):
    """FlowTable of saved flows (no packet ledger), flow filter applied; notes on stderr."""
    from flowkit.flows import FlowTable
    from flowkit.saved import read_saved

    saved = read_saved(s.captures)
    notices.warn_saved(s)
    if not s.quiet:
        for note in saved.notes:
            print(f"flowkit: note: {note}", file=sys.stderr)
    arrow = saved.table
    if s.filter:
        from flowkit.filter import compile_flow_filter

        arrow = arrow.filter(compile_flow_filter(s.filter)(arrow))
    table = FlowTable(arrow)
    table.saved = True  # no packets were read: there is no ledger to show
    return table


def _print_stats(ledger, *, to_stderr: bool) -> None:
    from flowkit.render import print_ledger

    with cli_output.to_stdout():
        print_ledger(ledger, stream=sys.stderr if to_stderr else sys.stdout)


# ----------------------------------------------------------------------------- commands
def _version_callback(value: bool) -> None:
    if value:
        from flowkit import __version__

        print(f"flowkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", "-V", callback=_version_callback, is_eager=True,
                                 help="print the version and exit"),
) -> None:
    """Packet captures (pcap, pcapng) into five-tuple flows, and the analyses on them."""


def _local_nets(text: Optional[str]):
    """``--local-nets``: comma-separated networks, checked before any capture is read."""
    if text is None:
        return None
    import ipaddress

    nets = [n.strip() for n in text.split(",") if n.strip()]
    for n in nets:
        try:
            ipaddress.ip_network(n, strict=False)
        except ValueError:
            raise click.BadParameter(f"{n!r} is not a network (CIDR, e.g. 10.0.0.0/8)", param_hint="'--local-nets'") from None
    return nets


@app.command()
@_with_options(*_flow_source_options, _show_options, _common_options)
def flows(
    captures: List[str] = CapturesArg,
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="write the flow table to this file instead of the terminal"),
    format: Optional[str] = typer.Option(None, "--format", help="parquet, csv, jsonl or zeek (default: from the -o suffix; parquet when it has none)"),
    active_timeout: Optional[float] = typer.Option(None, "--active-timeout", metavar="S", help="also end a flow after S seconds even while active (NetFlow style; default: never)"),
    vlan_key: bool = typer.Option(False, "--vlan-key", help="VLAN tags separate connections (Zeek's vlan_fivetuple key; default: as Zeek, they do not)"),
    local_nets: Optional[str] = typer.Option(None, "--local-nets", metavar="CIDR,...", help="networks of the local_orig/local_resp columns (default: Zeek's, the private address space)"),
    stats: bool = StatsOpt,
    **shared,
) -> None:
    """Build the five-tuple flow table (Zeek conn.log semantics)."""
    json = shared.pop("json")
    shape = _shape(shared)
    s = _settings(captures, **shared)
    if active_timeout is not None:
        if active_timeout <= 0:
            raise click.BadParameter("must be a positive number of seconds", param_hint="'--active-timeout'")
        s.active_timeout = active_timeout
    s.vlan_key = vlan_key
    nets = s.local_nets = _local_nets(local_nets)
    where, fmt = cli_output.destination(output, format, json=json)
    if where is not None:
        if where != STDOUT:
            _check_output(where)
            cli_output.refuse_inputs(where, captures)
        if shape.fields:
            shape.check([list(_flow_columns())])
        if fmt == "parquet":  # load the writer while the capture is read (the readers release the GIL)
            threading.Thread(target=importlib.import_module, args=("pyarrow.parquet",), daemon=True).start()
        table = build_table(s)
        cli_output.write_flows(table, where, fmt, shape, quiet=s.quiet, local_nets=nets)
        if stats:
            _print_stats(getattr(table, "stats", None), to_stderr=True)
        return
    df, ledger = load_flows(s)
    cli_output.show([Shown(df, views.FLOWS, "flows")], shape, json=json)
    if stats:
        _print_stats(ledger, to_stderr=json)


def _flow_columns() -> list[str]:
    from flowkit.flows.schema import FLOW_COLUMNS

    return list(FLOW_COLUMNS)


@app.command()
@_with_options(_show_options, _common_options)
def packets(
    captures: List[str] = CapturesArg,
    engine: str = EngineOpt,
    filter: Optional[str] = PacketOnlyFilterOpt,
    stats: bool = StatsOpt,
    no_decap: bool = NoDecapOpt,
    verify_checksums: bool = ChecksumOpt,
    **shared,
) -> None:
    """Show decoded packets (the first --limit rows; streams, so large captures are fine)."""
    import pyarrow as pa

    from flowkit.decode.api import addresses_to_strings

    json = shared.pop("json")
    shape = _shape(shared)
    s = _settings(captures, engine=engine, filter=filter, **shared)
    sources = s.sources()
    session = progress.current()
    table = notices.WatchedPackets(sources if len(sources) > 1 else sources[0], engine, strict=s.strict,
                                   filter=filter, decap=not no_decap, verify_checksums=verify_checksums,
                                   names=_source_names(captures), on_packets=session.add_packets)
    # keep only the rows to show and count the rest, unless --sort needs them all
    want = None if shape.sort else (cli_output.TERMINAL_LIMIT if not json else None) if shape.limit is None \
        else shape.limit
    kept, total, held = [], 0, 0
    with session.reading(captures, quiet=s.quiet):
        for batch in table:
            if want is None or held < want:
                kept.append(batch)
                held += batch.num_rows
            total += batch.num_rows
    data = pa.Table.from_batches(kept, schema=table.schema) if kept else table.schema.empty_table()
    if want is not None:
        data = data.slice(0, want)
    for name in ("src_ip", "dst_ip", "tunnel_src_ip", "tunnel_dst_ip"):
        i = data.schema.get_field_index(name)
        data = data.set_column(i, name, addresses_to_strings(data.column(name)))
    cli_output.show([Shown(data.to_pandas(), views.PACKETS, "packets", total=total)], shape, json=json)
    notices.warn_damage(table.stats, s.quiet)
    for line in notices.time_backwards(table.names, table.spans):
        notices.say(line, quiet=s.quiet)
    if stats:
        _print_stats(table.stats, to_stderr=json)


def _analysis_command(name: str, help_text: str):
    """Register ``fn(df, **own_options) -> Shown | [Shown]`` as a command that reads captures
    (or flow .parquet files), builds the flows, runs ``fn`` on them and prints the result.

    The command's options are ``fn``'s own (after ``df``) plus the shared ones of
    ``_flow_source_options`` and ``_show_options``."""

    def wrap(fn):
        own = list(inspect.signature(fn, eval_str=True).parameters.values())[1:]

        def command(captures, json, **options):
            shape = _shape(options)
            shared = {k: options.pop(k) for k in _SHARED_NAMES}
            df, _ = load_flows(_settings(captures, **shared))
            with progress.current().working(f"analysing {len(df):,} flows", quiet=shared["quiet"]):
                shown = fn(df, **options)
            cli_output.show([shown] if isinstance(shown, Shown) else shown, shape, json=json)

        command.__name__ = fn.__name__
        command.__doc__ = help_text
        command.__signature__ = _signature(_captures_argument, own, *_flow_source_options, _show_options,
                                           _common_options)
        return app.command(name=name)(command)

    return wrap


@_analysis_command("handshakes", "TCP handshakes per flow: outcome, SYN retries, round-trip times.")
def handshakes(df, summary: bool = typer.Option(False, "--summary", help="one row per outcome instead of one per flow")):
    from flowkit import analysis

    if not summary:
        return Shown(analysis.handshakes(df), views.HANDSHAKES, "TCP flows")
    table = analysis.handshake_summary(df)
    if "outcome" not in table.columns:
        table = table.rename_axis("outcome").reset_index()
    return Shown(table, views.HANDSHAKE_SUMMARY, "outcomes")


@_analysis_command("ports", "Port usage by IANA tier (system, user, dynamic) and the top services.")
def ports(df, top: int = typer.Option(20, "--top", help="services to list")):
    from flowkit import analysis

    return [Shown(analysis.port_tiers(df), views.PORT_TIERS, "tiers", "port tiers (RFC 6335)", limited=False, tag="tiers"),
            Shown(analysis.services(df, top=top), views.SERVICES, "services", "services", tag="services")]


@_analysis_command("ephemeral", "Client ephemeral-port allocation per host: range, scheme, reuse, headroom.")
def ephemeral(df):
    from flowkit import analysis

    return Shown(analysis.ephemeral(df), views.EPHEMERAL, "clients")


@_analysis_command("exposure", "Server ports seen: open, closed (RST) or filtered (no answer).")
def exposure(df):
    from flowkit import analysis

    return Shown(analysis.exposure(df), views.EXPOSURE, "server ports")


@_analysis_command("services", "Which service really answers each server port (from payload), with flags: "
                              "unexpected-service, off-port, unidentified.")
def services(df, flagged: bool = typer.Option(False, "--flagged", help="only servers with a flag")):
    from flowkit import analysis

    if "service" not in df.columns:
        raise FlowkitError("these flows have no service column (written by an older flowkit?): "
                           "build them from the capture")
    return Shown(analysis.server_services(df, flagged_only=flagged), views.IDENTIFIED, "servers")


@_analysis_command("scans", "Scanning sources: vertical (many ports of one host) and horizontal (one port, many hosts).")
def scans(
    df,
    min_ports: int = typer.Option(20, "--min-ports", help="failed ports on one host that make a vertical scan"),
    min_hosts: int = typer.Option(20, "--min-hosts", help="failed hosts on one port that make a horizontal scan"),
):
    from flowkit import analysis

    return Shown(analysis.scans(df, vertical_ports=min_ports, horizontal_hosts=min_hosts), views.SCANS, "scans")


@app.command()
@_with_options(*_flow_source_options, _common_options)
def report(
    captures: List[str] = CapturesArg,
    output: Path = typer.Option(..., "--output", "-o", help="HTML file to write"),
    title: Optional[str] = typer.Option(None, "--title", help="page title"),
    top: int = typer.Option(20, "--top", help="services listed (ranked across protocols, as 'flowkit ports --top') and largest flows shown"),
    **shared,
) -> None:
    """Write the self-contained HTML report (captures, flow .parquet files, or a batch dataset directory)."""
    from flowkit.report import write_report

    if output.suffix.lower() not in (".html", ".htm"):
        raise click.BadParameter(f"{output}: the report is an HTML page; name it .html", param_hint="'--output'")
    _check_output(output)
    cli_output.refuse_inputs(output, captures)
    names = None  # write_report finds them itself except for a FlowTable
    if len(captures) == 1 and os.path.isdir(captures[0]):
        if shared["filter"] or shared["packet_filter"]:
            raise click.UsageError("--filter and --packet-filter apply to captures, not to a dataset directory")
        source = captures[0]  # a batch-mode dataset
        notices.warn_saved(_settings(captures, **shared))
    else:
        s = _settings(captures, **shared)
        if all(_is_flow_file(c) for c in captures):
            source, _ = load_flows(s)
        else:
            source = build_table(s)  # a FlowTable: the report shows its ledger too
            names = ["standard input" if str(c) == "-" else Path(c).name for c in captures]
    with progress.current().working(f"building {output.name}", quiet=shared["quiet"]):
        path = write_report(source, output, title=title, sources=names, top=top)
    if not shared["quiet"]:
        print(f"wrote {path}", file=sys.stderr)


@app.command()
@_with_options(_engine_option, _packet_filter_option, _timeout_options, _common_options)
def batch(
    inputs: Optional[List[str]] = typer.Argument(None, metavar="INPUT", help="captures, directories (searched recursively) or globs"),
    output: Path = typer.Option(..., "--output", "-o", help="dataset directory (Hive-partitioned Parquet + manifest.json)"),
    stitch: bool = typer.Option(False, "--stitch", help="treat each directory's captures as one rotated sequence"),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="run on a local Dask cluster of N processes"),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", metavar="ADDR", help="address of a running Dask scheduler"),
    force: bool = typer.Option(False, "--force", help="reprocess captures the manifest lists as done"),
    split_bytes: Optional[str] = typer.Option(None, "--split-bytes", metavar="SIZE", help="read uncompressed classic pcaps larger than SIZE (bytes, or with K, M, G) as byte ranges in parallel (default 256M with --workers or --scheduler, no split in-process; 0 never splits)"),
    forget: Optional[List[str]] = typer.Option(None, "--forget", metavar="CAPTURE", help="drop this capture (or every capture under this directory) from the dataset and its manifest, then stop; repeatable"),
    **shared,
) -> None:
    """Many captures into a partitioned Parquet flow dataset (in-process or on Dask).

    Exits 1 when a capture of this run failed (one line each on stderr); the others are in
    the dataset, and the next run retries what failed."""
    import flowkit

    if forget:
        if inputs:
            raise click.UsageError("--forget takes no INPUT: it only edits the dataset")
        manifest = flowkit.batch.forget(str(output), forget)
        if not shared["quiet"]:
            n = manifest["totals"]["captures"]
            print(f"{n} capture{'' if n == 1 else 's'} left in {output}", file=sys.stderr)
        return
    if not inputs:
        raise click.UsageError("give the captures to read (INPUT...), or --forget CAPTURE")
    if any(os.path.isfile(i) and _is_flow_file(i) for i in inputs):
        raise click.UsageError("batch reads captures, not flow .parquet files")
    s = _settings(inputs, **shared)
    if workers is not None and workers < 1:
        raise click.BadParameter("must be at least 1", param_hint="'--workers'")

    def progress(entry: dict) -> None:
        if entry.get("status") == "failed":  # the failure line names the capture; no status line before it
            print(f"flowkit: failed: {_failure(entry)}", file=sys.stderr)
        elif not s.quiet:
            print(f"{entry.get('status', 'done')}: {entry.get('source', '?')}", file=sys.stderr)
        if entry.get("warning"):
            print(f"flowkit: warning: {entry['warning']}", file=sys.stderr)

    # failures and warnings are printed here from the manifest entries, once each
    logging.getLogger("flowkit.batch").setLevel(logging.ERROR)

    split = None if split_bytes is None else _size(split_bytes, "--split-bytes")
    _check_output(output, directory=True)
    manifest = flowkit.batch(inputs, str(output), stitch=stitch, workers=workers, scheduler=scheduler,
                             force=force, split_bytes=split, progress=progress, **s.flow_options())
    captures = manifest.get("captures", [])
    failed_now = manifest["run"].get("failed", [])
    older = [e["source"] for e in captures if e.get("status") != "done" and e["source"] not in failed_now]
    if not s.quiet:
        print(f"{len(captures)} capture{'' if len(captures) == 1 else 's'} in {output}"
              + (f", {len(failed_now)} failed in this run" if failed_now else ""), file=sys.stderr)
        if older:
            print(f"flowkit: note: {len(older)} capture{'' if len(older) == 1 else 's'} that failed before "
                  f"{'is' if len(older) == 1 else 'are'} not among these inputs ({older[0]}{', ...' if len(older) > 1 else ''}); "
                  f"'flowkit batch -o {output} --forget CAPTURE' drops an entry", file=sys.stderr)
    if failed_now:
        raise typer.Exit(1)


def _failure(entry: dict) -> str:
    """A failed manifest entry as one line that names the capture once."""
    source, error = entry.get("source", "?"), entry.get("error") or "no reason recorded"
    return error if error.startswith(source) or error.startswith(entry.get("path", source)) else f"{source}: {error}"


_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def _size(text: str, option: str) -> int:
    """``"65536"``, ``"64K"``, ``"256M"``, ``"1G"`` (binary multiples) as a byte count."""
    number, unit = text.strip().upper().removesuffix("B").removesuffix("I"), ""
    if number[-1:] in _SIZE_UNITS:
        number, unit = number[:-1], number[-1]
    try:
        value = int(float(number) * _SIZE_UNITS[unit])
    except ValueError:
        value = -1
    if value < 0:
        raise click.BadParameter(f"{text!r} is not a size (bytes, or a number with K, M or G)",
                                 param_hint=f"'{option}'")
    return value


# ----------------------------------------------------------------------------- entry point
def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, FlowkitError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    return str(exc)


def run() -> None:
    """The ``flowkit`` console script: ``main()``, then exit without tearing the interpreter down.

    Why: after a large capture, freeing every module, array and Arrow pool at interpreter
    shutdown takes 0.06-0.1 s, and the system reclaims the memory anyway. Exit handlers
    (``atexit``: temporary spill directories, multiprocessing children) still run, and
    output is flushed first. Library callers and tests use ``main()``, which returns.
    """
    import atexit

    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing left to show
            pass
    atexit._run_exitfuncs()
    os._exit(code)


def main(argv=None) -> int:
    """Console entry point ``flowkit``; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    session = progress.begin()
    try:
        # outside standalone mode click returns a typer.Exit's code instead of raising it
        code = app(args=args, prog_name="flowkit", standalone_mode=False)
        if not code:
            session.finish()
    except click.UsageError as exc:  # includes BadParameter: exit code 2, as click
        exc.show(file=sys.stderr)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print("flowkit: interrupted", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("flowkit: interrupted", file=sys.stderr)
        return 130
    except (BrokenPipeError, cli_output.OutputClosed):
        # output piped into head(1) and the like: not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (FlowkitError, OSError) as exc:
        if debug:
            raise
        print(f"flowkit: {_one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug or an input no check foresaw: still one line, the rest with --debug
        if debug:
            raise
        print(f"flowkit: unexpected error: {type(exc).__name__}: {exc} (--debug shows the traceback)",
              file=sys.stderr)
        return 1
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
