"""Which service really answers: per server, the services identified from payload, and flags.

A port says what should answer; the flow table's ``service`` column (Zeek's names, filled
from payload, docs/services.md) says what did. Method and references: docs/analyses.md
("Identified services").
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from flowkit.analysis._frame import _frame, col_or
from flowkit.analysis.services_registry import registry

# The IANA-registered (port, proto) of each service flowkit identifies (Zeek's names).
# TLS counts as at home on the registered ports of the TLS variants of other protocols.
HOME: dict[str, tuple[tuple[int, str], ...]] = {
    "ayiya": ((5072, "udp"),),
    "dce_rpc": ((135, "tcp"),),
    "dhcp": ((67, "udp"), (68, "udp")),
    "dns": ((53, "udp"), (53, "tcp"), (5353, "udp"), (5355, "udp"), (5355, "tcp"), (137, "udp")),
    "dtls": ((443, "udp"), (853, "udp"), (5061, "udp"), (5349, "udp"), (5684, "udp")),
    "ftp": ((21, "tcp"),),
    "ftp-data": ((20, "tcp"),),
    "geneve": ((6081, "udp"),),
    "gtpv1": ((2152, "udp"), (2123, "udp")),
    "http": ((80, "tcp"), (8080, "tcp"), (8008, "tcp")),
    "imap": ((143, "tcp"),),
    "irc": ((194, "tcp"), (6665, "tcp"), (6666, "tcp"), (6667, "tcp"), (6668, "tcp"), (6669, "tcp")),
    "irc-dcc-data": (),
    "krb": ((88, "udp"),),
    "krb_tcp": ((88, "tcp"),),
    "modbus": ((502, "tcp"),),
    "mysql": ((3306, "tcp"),),
    "ntp": ((123, "udp"),),
    "pop3": ((110, "tcp"),),
    "quic": ((443, "udp"), (80, "udp"), (853, "udp")),
    "rdp": ((3389, "tcp"),),
    "redis": ((6379, "tcp"),),
    "smb": ((445, "tcp"), (139, "tcp")),
    "smtp": ((25, "tcp"), (587, "tcp")),
    "ssh": ((22, "tcp"),),
    "ssl": tuple((p, "tcp") for p in (443, 465, 563, 636, 853, 989, 990, 992, 993, 994, 995, 5061, 6697, 8443)),
    "teredo": ((3544, "udp"),),
    "vxlan": ((4789, "udp"),),
    "xmpp": ((5222, "tcp"), (5269, "tcp")),
}
# Services that use ports handed out at run time by design: never "off-port".
DYNAMIC = frozenset({"ftp-data", "irc-dcc-data", "dce_rpc", "teredo"})
FLAGS = ("unexpected-service", "off-port", "unidentified")
WELL_KNOWN_LAST = 1023  # RFC 6335 system ports
MAX_NAMES = 5  # server names listed per server

_HOME_PORTS = {(p, pr) for homes in HOME.values() for p, pr in homes}


def _at_home(name: str, port: int, proto: str) -> bool:
    return (port, proto) in HOME.get(name, ())


def flags_of(services: str, port: int, proto: str, payload: bool, reg: dict | None = None) -> list[str]:
    """FLAGS for one server: its identified services (comma-separated), port, proto, and
    whether any of its flows carried payload."""
    reg = registry() if reg is None else reg
    names = [n for n in services.split(",") if n]
    out = []
    if names and (port, proto) in reg and not any(_at_home(n, port, proto) for n in names):
        out.append("unexpected-service")
    # TLS inside another protocol (STARTTLS, HTTP CONNECT, QUIC) is at home where that protocol is
    carried = any(n != "ssl" and _at_home(n, port, proto) for n in names)
    if any(n in HOME and n not in DYNAMIC and not _at_home(n, port, proto) and not (n == "ssl" and carried)
           for n in names):
        out.append("off-port")
    if not names and payload and port <= WELL_KNOWN_LAST and (port, proto) in _HOME_PORTS:
        out.append("unidentified")
    return out


def _confirmed(service: str) -> str:
    """A service value without Zeek's '-name' entries (an analyzer removed after a violation,
    logged when DPD::track_removed_services_in_connection is on) and the names they cancel."""
    names = service.split(",")
    removed = {n[1:] for n in names if n.startswith("-")}
    return ",".join(n for n in names if n and not n.startswith("-") and n not in removed)


def _joined(df: pd.DataFrame, key: list[str], column: str, limit: int | None = None) -> pd.Series:
    """Distinct comma-separated values of ``column`` per key, sorted, joined with commas."""
    values = df[key + [column]].assign(**{column: df[column].str.split(",")}).explode(column)
    values = values[values[column].notna() & (values[column] != "")].drop_duplicates().sort_values(key + [column])
    if limit is not None:
        values = values.groupby(key, sort=False).head(limit)
    return values.groupby(key)[column].agg(",".join)


def server_services(flows, flagged_only: bool = False) -> pd.DataFrame:
    """Per server (server_ip, server_port, proto): the services identified and flags.

    Columns: server_ip, server_port, proto, port_service (IANA name of the port), services
    (Zeek names seen over the server's flows, sorted, comma-separated), flags
    (comma-separated FLAGS), flows, payload_flows (flows that carried payload both ways;
    UDP: any payload), identified_flows, clients, server_names (TLS SNI / HTTP Host
    values, up to MAX_NAMES), and one bool column per flag (unexpected_service, off_port,
    unidentified). Servers with neither payload nor a service are left out; flagged
    servers first, then by flows.
    """
    df = _frame(flows, ("proto", "dst_ip", "dst_port", "src_ip", "service"))
    df = df[df["proto"].isin(["tcp", "udp"])]
    src_pl = col_or(df, "src_payload_bytes", 0).fillna(0).astype(np.int64).to_numpy()
    dst_pl = col_or(df, "dst_payload_bytes", 0).fillna(0).astype(np.int64).to_numpy()
    udp = (df["proto"] == "udp").to_numpy()
    service = df["service"].fillna("").astype(str)
    if service.str.contains("-", regex=False).any():  # conn.logs: '-' unset, '-name' removed analyzers
        service = service.map({v: _confirmed(v) for v in service.unique()})
    service = service.to_numpy()
    key = ["server_ip", "server_port", "proto"]
    work = pd.DataFrame({
        "server_ip": df["dst_ip"].to_numpy(), "server_port": df["dst_port"].astype(np.int64).to_numpy(),
        "proto": df["proto"].to_numpy(), "client": df["src_ip"].to_numpy(), "service": service,
        "payload": np.where(udp, (src_pl > 0) | (dst_pl > 0), (src_pl > 0) & (dst_pl > 0)),
        "identified": service != "",
        "server_name": col_or(df, "server_name", "").fillna("").astype(str).to_numpy(),
    })
    g = work.groupby(key)
    out = pd.DataFrame({
        "flows": g.size(), "payload_flows": g["payload"].sum().astype(np.int64),
        "identified_flows": g["identified"].sum().astype(np.int64), "clients": g["client"].nunique(),
    })
    out["services"] = _joined(work, key, "service").reindex(out.index, fill_value="")
    out["server_names"] = _joined(work, key, "server_name", MAX_NAMES).reindex(out.index, fill_value="")
    out = out.reset_index()
    out = out[(out["services"] != "") | (out["payload_flows"] > 0)].reset_index(drop=True)
    reg = registry()
    out["port_service"] = [reg.get((int(p), pr)) for p, pr in zip(out["server_port"], out["proto"])]
    # flags depend on (services, port, proto, payload) only: computed once per distinct combination
    combos = {}
    flags = []
    for combo in zip(out["services"], out["server_port"], out["proto"], out["payload_flows"] > 0):
        if combo not in combos:
            combos[combo] = ",".join(flags_of(combo[0], int(combo[1]), combo[2], bool(combo[3]), reg))
        flags.append(combos[combo])
    out["flags"] = pd.Series(flags, dtype=object, index=out.index)
    for f in FLAGS:
        out[f.replace("-", "_")] = out["flags"].str.split(",").map(lambda fl, f=f: f in fl).astype(bool)
    columns = ["server_ip", "server_port", "proto", "port_service", "services", "flags", "flows", "payload_flows",
               "identified_flows", "clients", "server_names", *(f.replace("-", "_") for f in FLAGS)]
    out = out[columns]
    if flagged_only:
        out = out[out["flags"] != ""]
    n_flags = (out["flags"].str.count(",") + (out["flags"] != "")).to_numpy()
    order = np.lexsort((-out["flows"].to_numpy(), -n_flags)) if len(out) else np.zeros(0, np.int64)
    return out.iloc[order].reset_index(drop=True)
