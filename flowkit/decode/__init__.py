"""Decode engines: capture records into Arrow packet batches (schema in decode/schema.py).

``packets``/``PacketTable`` load on first use: the schema module is imported by the ledger,
and must not pull in the engines (and through them the ledger) while it loads.
"""
from __future__ import annotations

__all__ = ["PacketTable", "packets"]


def __getattr__(name: str):
    if name in __all__:
        from flowkit.decode import api

        return getattr(api, name)
    raise AttributeError(f"module 'flowkit.decode' has no attribute {name!r}")
