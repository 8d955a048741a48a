"""Where the ``flowkit`` command's results go: terminal tables, ``--json``, files, standard output.

Terminal tables (render.py) fit the width; ``--json`` and the machine formats (output.py)
always carry every value. ``--fields``, ``--sort`` and ``--limit`` shape all of them alike.
"""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import typer

from flowkit import views
from flowkit.errors import FlowkitError

click = sys.modules[typer.BadParameter.__module__]  # the click typer uses (see cli.py)

FORMATS = ("parquet", "csv", "jsonl", "zeek")
SUFFIX_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl",
                  ".json": "jsonl", ".ndjson": "jsonl", ".log": "zeek"}  # fmt: skip
STDOUT = "-"
TERMINAL_LIMIT = 20


class OutputClosed(Exception):
    """Standard output was closed by its reader (``| head``): not an error, the command stops.

    Why not BrokenPipeError itself: click turns an EPIPE OSError into exit status 1."""


@contextlib.contextmanager
def to_stdout():
    try:
        yield
    except BrokenPipeError as exc:
        raise OutputClosed() from exc


# ----------------------------------------------------------------------------- the options
FieldsOpt = typer.Option(None, "--fields", metavar="A,B,C", help="columns to show, in this order (terminal, --json and text formats); any column of the table")
SortOpt = typer.Option(None, "--sort", metavar="COL", help="order rows by COL (-COL: descending); several as A,-B")
WideOpt = typer.Option(False, "--wide", help="terminal: every column of the view at full width, even wider than the terminal")


def names(text: Optional[str]) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()] if text else []


@dataclass
class Shape:
    """--fields, --sort, --limit and --wide of one command."""

    fields: list[str]
    sort: list[str]
    limit: Optional[int]
    wide: bool = False

    @classmethod
    def of(cls, fields, sort, limit, wide=False) -> "Shape":
        if limit is not None and limit < 0:
            raise click.BadParameter("must be 0 or more", param_hint="'--limit'")
        return cls(names(fields), names(sort), limit, wide)

    def check(self, columns_of: list[list[str]]) -> None:
        """Every --fields and --sort name is a column of at least one of the tables."""
        known = sorted({c for cols in columns_of for c in cols})
        for option, wanted in (("--fields", self.fields), ("--sort", [s.lstrip("-") for s in self.sort])):
            unknown = [n for n in wanted if n not in known]
            if unknown:
                raise click.BadParameter(f"no column {', '.join(map(repr, unknown))}; the columns are: "
                                         f"{', '.join(known)}", param_hint=f"'{option}'")

    def frame(self, df, *, limit: Optional[int]):
        """The rows of ``df`` in --sort order, the first ``limit`` of them."""
        from flowkit.render import sort_frame

        keys = [k for k in self.sort if k.lstrip("-") in df.columns]
        if keys:
            df = sort_frame(df, keys)
        return df if limit is None else df.head(limit)

    def arrow(self, table):
        """The same for an Arrow table, with --fields selected (machine formats)."""
        keys = [(k.lstrip("-"), "descending" if k.startswith("-") else "ascending") for k in self.sort]
        if keys:
            table = table.sort_by(keys)  # missing values last
        if self.limit is not None:
            table = table.slice(0, self.limit)
        if self.fields:
            table = table.select(self.fields)
        return table

    def given(self) -> bool:
        return bool(self.fields or self.sort or self.limit is not None)


# ----------------------------------------------------------------------------- tables
@dataclass
class Shown:
    """One table a command prints: ``view`` on the terminal, every column as JSON. ``limited``:
    --limit applies to it; ``tag``: value of a ``table`` column added to its JSON rows when a
    command prints several tables."""

    df: object
    view: Optional[views.View] = None
    noun: str = "rows"
    title: Optional[str] = None
    limited: bool = True
    tag: Optional[str] = None
    total: Optional[int] = None  # rows in all when ``df`` holds only the first ones


def show(shown: list, shape: Shape, *, json: bool) -> None:
    shape.check([list(item.df.columns) for item in shown])
    with to_stdout():
        _show(shown, shape, json=json)


def _show(shown: list, shape: Shape, *, json: bool) -> None:
    from flowkit import output, render

    for item in shown:
        limit = shape.limit if item.limited else None
        if json:
            df = shape.frame(item.df, limit=limit)
            fields = [f for f in shape.fields if f in df.columns]
            if fields:
                df = df[fields]
            if item.tag is not None:
                df = df.assign(table=item.tag)
            output.write_frame_jsonl(df, sys.stdout.buffer)
            sys.stdout.flush()
            continue
        df = shape.frame(item.df, limit=TERMINAL_LIMIT if limit is None else limit)
        fields = [f for f in shape.fields if f in item.df.columns]
        view = views.View(tuple(fields), frozenset(fields)) if fields else item.view
        total = len(item.df) if item.total is None else item.total
        render.print_table(df, view, limit=None, noun=item.noun, title=item.title, total=total, wide=shape.wide)


# ----------------------------------------------------------------------------- files and stdout
def format_of(output: Path) -> str:
    """The output format the suffix of ``-o`` names (parquet without a suffix)."""
    suffix = output.suffix.lower()
    if not suffix:
        return "parquet"
    if suffix not in SUFFIX_FORMATS:
        raise click.BadParameter(f"{output}: cannot tell the format from {suffix!r} (known: "
                                 f"{', '.join(SUFFIX_FORMATS)}); give --format", param_hint="'--output'")
    return SUFFIX_FORMATS[suffix]


def is_stdout(path: Path) -> bool:
    """``-``, or a path that is the file standard output already is (``/dev/stdout``)."""
    if str(path) == STDOUT:
        return True
    try:
        return os.path.samestat(os.stat(path), os.fstat(sys.stdout.fileno()))
    except (OSError, ValueError, AttributeError):
        return False


def destination(output: Optional[Path], format: Optional[str], *, json: bool):
    """(where, format): where is None for the terminal table, STDOUT, or a Path."""
    if format is not None and format not in FORMATS:
        raise click.BadParameter(f"{format!r} is not one of {', '.join(FORMATS)}", param_hint="'--format'")
    if json and (output is not None or format is not None):
        raise click.UsageError("--json writes JSON lines to standard output; with -o or --format use --format jsonl")
    if output is None and format is None:
        return None, None
    if output is None or is_stdout(output):
        fmt = format or "parquet"
        if fmt == "parquet" and sys.stdout.isatty():
            raise click.UsageError("Parquet is binary: not written to a terminal; redirect standard output "
                                   "or give --format csv, jsonl or zeek")
        return STDOUT, fmt
    return output, format or format_of(output)


def check_output(path: Path, *, directory: bool = False) -> None:
    """An output that cannot be written fails before any capture is read, naming the path."""
    if directory:
        if path.exists() and not path.is_dir():
            raise FlowkitError(f"{path}: cannot write a dataset here: not a directory")
        parent = path
        while not parent.exists():  # batch creates the missing directories
            parent = parent.parent
        if not parent.is_dir():
            raise FlowkitError(f"{path}: cannot create the directory: {parent} is not a directory")
    else:
        if path.is_dir():
            raise FlowkitError(f"{path}: cannot write: is a directory")
        parent = path.parent
        if not parent.is_dir():
            raise FlowkitError(f"{path}: cannot write: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise FlowkitError(f"{path}: cannot write: permission denied in {parent}")


def refuse_inputs(output: Path, inputs) -> None:
    """An output that is one of the inputs would destroy it: refuse before reading anything."""
    try:
        out = os.stat(output)
    except OSError:
        return  # does not exist yet: cannot be an input
    for given in inputs:
        if str(given) == "-":
            continue
        try:
            same = os.path.samestat(out, os.stat(given))
        except OSError:
            continue
        if same:
            raise click.BadParameter(f"{output} is also an input ({given}); refusing to overwrite it",
                                     param_hint="'--output'")


def write_flows(table, where, fmt: str, shape: Shape, *, quiet: bool, local_nets=None) -> None:
    """The flow table into a file or standard output, in ``fmt``; a note on stderr for a file."""
    from flowkit import progress
    from flowkit.flows import FlowTable

    if shape.fields and fmt == "zeek":
        raise click.UsageError("--fields does not apply to the Zeek format (its fields are Zeek's conn.log's)")
    if shape.given():
        table = FlowTable(shape.arrow(table.to_arrow()), table.stats)
    if where == STDOUT:
        with to_stdout():
            sys.stdout.flush()
            table.write(sys.stdout.buffer, format=fmt, local_nets=local_nets)
        return
    with progress.current().writing(where, quiet=quiet):
        table.write(str(where), format=fmt, local_nets=local_nets)
    if not quiet:
        print(f"wrote {len(table):,} flows to {where} ({fmt})", file=sys.stderr)
