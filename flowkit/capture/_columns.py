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

    @classmethod
    def for_buffer(cls, size: int) -> "Columns":
        """Room for a typical buffer (records of >= 128 bytes); ``grow`` handles the rest.

        Sizing for the worst case (16-byte records) would cost ~3x the buffer itself.
        """
        return cls(size // 128 + 16)

    def grow(self) -> None:
        """Double the capacity, keeping the ``n`` records written so far."""
        cap = 2 * len(self.start)
        for name in ("start", "caplen", "wirelen", "ts", "foff", "index", "linktype", "iface"):
            old = getattr(self, name)
            new = np.empty(cap, old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

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
