"""``flowkit.packets(source, engine=...)``: the packet table users and flows/ consume."""
from __future__ import annotations


class PacketTable:  # filled in by the engines work (issue 2)
    pass


def packets(source, engine: str = "fast", **options) -> PacketTable:
    raise NotImplementedError("packet decoding is being built (issue 2)")
