"""Service names for (port, proto): flowkit's IANA facts, gaps filled from the system's /etc/services.

flowkit's own table (services.csv, written from the IANA registry) wins on conflict: /etc/services
differs from IANA on a few ports (Debian lists 21/udp as fsp, 10000/tcp as webmin).
"""
from __future__ import annotations

import csv
import functools
from importlib import resources
from pathlib import Path

import pandas as pd

SYSTEM_SERVICES = Path("/etc/services")


def _read_builtin() -> dict[tuple[int, str], str]:
    text = resources.files("flowkit.analysis").joinpath("services.csv").read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    return {(int(r["port"]), r["proto"]): r["name"] for r in csv.DictReader(lines)}


def _read_system(path: Path) -> dict[tuple[int, str], str]:
    """Parse services(5): ``name port/proto [aliases] [# comment]``; unreadable file -> empty."""
    out: dict[tuple[int, str], str] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2 or "/" not in fields[1]:
            continue
        port, _, proto = fields[1].partition("/")
        if port.isdigit() and proto in ("tcp", "udp"):
            out.setdefault((int(port), proto), fields[0])  # first entry wins, as getservbyport
    return out


@functools.lru_cache(maxsize=4)
def registry(system_path: str | None = str(SYSTEM_SERVICES)) -> dict[tuple[int, str], str]:
    """(port, proto) -> service name; flowkit's facts override the system file."""
    merged = _read_system(Path(system_path)) if system_path else {}
    merged.update(_read_builtin())
    return merged


def registry_frame(system_path: str | None = str(SYSTEM_SERVICES)) -> pd.DataFrame:
    """The merged registry as a frame (port, proto, service, source) for joins."""
    builtin = _read_builtin()
    reg = registry(system_path)
    rows = [(p, pr, name, "flowkit" if (p, pr) in builtin else "system") for (p, pr), name in reg.items()]
    return pd.DataFrame(rows, columns=["port", "proto", "service", "source"])


def service_name(port: int, proto: str = "tcp") -> str | None:
    """IANA service name of a port, e.g. service_name(443, "tcp") == "https"; None when unknown."""
    return registry().get((int(port), str(proto).lower()))
