"""IANA port tiers (RFC 6335), top services, and flows between two ephemeral ports.

TCP and UDP flows only: ICMP flows carry type/code in the port columns and other
protocols have no ports. Method and references in docs/analyses.md ("Ports").
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from flowkit.analysis._frame import DYNAMIC_FIRST, _frame, with_ports
from flowkit.analysis.services_registry import registry

TIERS = ("well-known", "registered", "dynamic")  # 0-1023, 1024-49151, 49152-65535


def tier_of(ports) -> np.ndarray:
    """RFC 6335 tier name of each port."""
    p = np.asarray(ports, dtype=np.int64)
    return np.select([p < 1024, p < DYNAMIC_FIRST], ["well-known", "registered"], default="dynamic")


def service_names(ports, protos) -> np.ndarray:
    """Service name for each (port, proto) pair; None where the registry has none."""
    reg = registry()
    keys = pd.MultiIndex.from_arrays([np.asarray(ports, dtype=np.int64), np.asarray(protos, dtype=object)])
    lookup = pd.Series(list(reg.values()), index=pd.MultiIndex.from_tuples(list(reg.keys())), dtype=object)
    return lookup.reindex(keys).to_numpy(dtype=object, na_value=None)


def _volumes(df: pd.DataFrame) -> pd.DataFrame:
    df = df.assign(
        packets=df["src_pkts"].astype(np.int64) + df["dst_pkts"].astype(np.int64),
        bytes=df["src_ip_bytes"].astype(np.int64) + df["dst_ip_bytes"].astype(np.int64),
    )
    return df


_VOLUME_COLS = ("proto", "dst_port", "src_pkts", "dst_pkts", "src_ip_bytes", "dst_ip_bytes")


def port_tiers(flows) -> pd.DataFrame:
    """Per (tier, proto), judged on the server port dst_port: flows, packets, bytes, distinct_server_ports, share.

    Every tier appears for every protocol present, with zeros when unused.
    """
    df = _volumes(with_ports(_frame(flows, _VOLUME_COLS)))
    df["tier"] = tier_of(df["dst_port"])
    g = df.groupby(["tier", "proto"])
    out = pd.DataFrame(
        {
            "flows": g.size(),
            "packets": g["packets"].sum(),
            "bytes": g["bytes"].sum(),
            "distinct_server_ports": g["dst_port"].nunique(),
        }
    )
    protos = sorted(df["proto"].unique()) or ["tcp", "udp"]
    full = pd.MultiIndex.from_product([list(TIERS), protos], names=["tier", "proto"])
    out = out.reindex(full, fill_value=0).astype(np.int64).reset_index()
    total = out["flows"].sum()
    out["share"] = out["flows"] / total if total else 0.0
    return out


def services(flows, top: int = 20) -> pd.DataFrame:
    """The ``top`` server ports by flows, ranked across protocols (ties: lower port, then tcp before udp).

    Columns: proto, dst_port, service, tier, flows, packets, bytes, servers, clients.
    """
    df = _volumes(with_ports(_frame(flows, (*_VOLUME_COLS, "src_ip", "dst_ip"))))
    g = df.groupby(["proto", "dst_port"])
    out = pd.DataFrame(
        {
            "flows": g.size(),
            "packets": g["packets"].sum(),
            "bytes": g["bytes"].sum(),
            "servers": g["dst_ip"].nunique(),
            "clients": g["src_ip"].nunique(),
        }
    ).reset_index()
    # one ranking across protocols: a busy UDP service is not listed after TCP ports seen once
    out = out.sort_values(["flows", "dst_port", "proto"], ascending=[False, True, True], kind="stable")
    out = out.head(top).reset_index(drop=True)
    out.insert(2, "service", service_names(out["dst_port"], out["proto"]))
    out.insert(3, "tier", tier_of(out["dst_port"]))
    return out


def p2p_flows(flows) -> pd.DataFrame:
    """Flows whose two ports are both dynamic (>= 49152): peer-to-peer style, no service port.

    Returns the matching rows of the flow frame, all its columns, in their original order.
    """
    df = _frame(flows, ("src_port", "dst_port"))  # ICMP type/code and portless 0 are never dynamic
    both = (df["src_port"].astype(np.int64) >= DYNAMIC_FIRST) & (df["dst_port"].astype(np.int64) >= DYNAMIC_FIRST)
    return df[both.to_numpy()].reset_index(drop=True)
