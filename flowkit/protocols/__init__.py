"""Payload-based service identification (Zeek's names, as in conn.log's ``service``).

The rules are C (``_identify.h``), run by the flow kernels on the first payload packets
of each direction; ``identify`` runs them over one connection's payloads for tests and
one-off use. Method and references: docs/services.md.
"""
from __future__ import annotations

from flowkit.protocols._identify import SERVICES, identify

__all__ = ["SERVICES", "identify", "service_string"]


def service_string(names) -> str:
    """Zeek's format for a set of services: sorted, comma-separated, '' when empty."""
    return ",".join(sorted(names))
