"""Find the captures a batch run reads: files, directories (recursively) and globs.

A directory contributes every file whose name looks like a capture, including the
names rotation tools write (tcpdump ``-C`` appends a counter: ``dump.pcap``,
``dump.pcap1``; ``-G`` names files by time) and compressed copies (``.gz``,
``.bz2``, ``.xz``). A file named explicitly is taken whatever its name.
"""
from __future__ import annotations

import glob
import hashlib
import os
import re
from dataclasses import dataclass

from flowkit.errors import FlowkitError

CAPTURE_NAME = re.compile(r"\.(pcap|pcapng|cap)\d*(\.(gz|bz2|xz))?$", re.IGNORECASE)
COMPRESSED = (".gz", ".bz2", ".xz")
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class CaptureInput:
    """One capture file of a batch run."""

    source: str  # the path as the user gave it (or joined under the directory given)
    path: str  # absolute path, for reading
    size: int

    @property
    def compressed(self) -> bool:
        return self.path.lower().endswith(COMPRESSED)


def natural_key(text: str) -> list:
    """Sort key that orders ``dump.pcap2`` before ``dump.pcap10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def looks_like_capture(name: str) -> bool:
    return CAPTURE_NAME.search(name) is not None


def _walk(directory: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # skip .git, temp dirs
        found.extend(os.path.join(root, f) for f in files if looks_like_capture(f))
    return sorted(found, key=natural_key)


def discover(inputs) -> list[CaptureInput]:
    """Expand ``inputs`` (a path, or a list of paths, directories and globs) into captures.

    Order: as given, directories and globs in natural name order; a file reached
    twice is kept once. Raises FlowkitError for a path that does not exist, a glob
    that matches nothing, or when nothing at all is found.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    paths: list[str] = []
    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item):
            paths.extend(_walk(item))
        elif os.path.exists(item):
            paths.append(item)
        elif _GLOB_CHARS.search(item):
            matches = sorted(glob.glob(item, recursive=True), key=natural_key)
            if not matches:
                raise FlowkitError(f"{item}: no file matches this pattern")
            for match in matches:
                if os.path.isdir(match):
                    paths.extend(_walk(match))
                elif os.path.isfile(match):
                    paths.append(match)
        else:
            raise FlowkitError(f"{item}: no such file or directory")
    seen: set[str] = set()
    out = []
    for p in paths:
        real = os.path.realpath(p)
        if real in seen:
            continue
        seen.add(real)
        out.append(CaptureInput(source=os.path.normpath(p), path=os.path.abspath(p), size=os.path.getsize(p)))
    if not out:
        given = ", ".join(map(str, inputs)) or "no inputs given"
        raise FlowkitError(f"{given}: no capture files found")
    return out


def sha256_file(path: str, block: int = 1 << 20) -> str:
    """Content hash of a file, read in blocks (memory stays flat for any size)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def output_key(source: str) -> str:
    """File-name stem for a capture's outputs: readable, and unique per source path."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(source)).lstrip("._") or "capture"
    digest = hashlib.sha1(source.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    return f"{stem[:60]}-{digest}"
