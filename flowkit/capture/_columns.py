"""Column arrays for one buffer, trimmed into a ``RecordChunk``."""
from __future__ import annotations

import numpy as np

from flowkit.capture.records import Damage, RecordChunk


class Columns:
    """Preallocated columns for at most ``cap`` records (trimmed by ``chunk``)."""

    def __init__(self, cap: int):
        self.start = np.empty(cap, np.int64)
        self.caplen = np.empty(cap, np.uint32)
        self.wirelen = np.empty(cap, np.uint32)
        self.ts = np.empty(cap, np.int64)
        self.foff = np.empty(cap, np.int64)
        self.index = np.empty(cap, np.int64)
        self.linktype = np.empty(cap, np.uint16)
        self.iface = np.empty(cap, np.uint16)
        self.n = 0

    def view(self, name: str) -> np.ndarray:
        """The free tail of column ``name`` (where the next kernel call writes)."""
        return getattr(self, name)[self.n :]

    def chunk(self, data: np.ndarray, path: str, damage: list[Damage],
              linktype: int | None = None) -> RecordChunk:
        n = self.n
        # copy: the preallocated arrays are sized for the worst case, keep only n
        lt = np.full(n, linktype, np.uint16) if linktype is not None else self.linktype[:n].copy()
        iface = np.zeros(n, np.uint16) if linktype is not None else self.iface[:n].copy()
        return RecordChunk(
            data=data,
            start=self.start[:n].copy(),
            caplen=self.caplen[:n].copy(),
            wirelen=self.wirelen[:n].copy(),
            ts=self.ts[:n].copy(),
            linktype=lt,
            iface=iface,
            file_offset=self.foff[:n].copy(),
            index=self.index[:n].copy(),
            path=path,
            damage=damage,
        )
