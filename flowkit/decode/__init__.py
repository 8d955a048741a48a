"""Decode engines: capture records into Arrow packet batches (schema in decode/schema.py)."""
from flowkit.decode.api import PacketTable, packets

__all__ = ["PacketTable", "packets"]
