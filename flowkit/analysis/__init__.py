"""Analyses over a FlowTable or a pandas DataFrame of flows; each returns a pandas DataFrame.

Columns, methods and references: docs/analyses.md.
"""
from __future__ import annotations

from flowkit.analysis._frame import AnalysisInputError, _frame
from flowkit.analysis.ephemeral import ephemeral, ephemeral_points
from flowkit.analysis.exposure import exposure, scans
from flowkit.analysis.identified import server_services
from flowkit.analysis.handshakes import handshake_servers, handshake_summary, handshakes
from flowkit.analysis.ports import p2p_flows, port_tiers, services, tier_of
from flowkit.analysis.services_registry import service_name

__all__ = [
    "AnalysisInputError",
    "handshakes",
    "handshake_summary",
    "handshake_servers",
    "port_tiers",
    "services",
    "server_services",
    "service_name",
    "tier_of",
    "p2p_flows",
    "ephemeral",
    "ephemeral_points",
    "exposure",
    "scans",
]
