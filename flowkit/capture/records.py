"""The contract between capture/ (framing) and decode/ (engines).

A capture reader yields ``RecordChunk`` objects: one contiguous byte buffer holding
the captured bytes of up to a few hundred thousand packets, plus parallel numpy
columns that say where each packet's bytes start and how to interpret them.
No Python object is created per packet.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Damage:
    """One place where the file stopped making sense (kept, reported, never silent)."""

    path: str
    offset: int  # byte offset in the (decompressed) capture stream
    message: str  # what was wrong, short, no trailing period

    def __str__(self) -> str:
        return f"{self.path}: offset {self.offset}: {self.message}"


@dataclass
class RecordChunk:
    """Packets of one slice of a capture, as columns over one byte buffer.

    data      uint8[...]  captured bytes; packet i is data[start[i] : start[i] + caplen[i]]
    start     int64[n]    offset of each packet's first byte inside ``data``
    caplen    uint32[n]   captured length (bytes present in ``data``)
    wirelen   uint32[n]   original length on the wire
    ts        int64[n]    timestamp, nanoseconds since the Unix epoch, UTC
    linktype  uint16[n]   DLT/LINKTYPE of the packet's interface
    iface     uint16[n]   pcapng interface index (0 for classic pcap)
    file_offset int64[n]  offset of the record header in the capture stream (for messages)
    index     int64[n]    packet number in the capture, 0-based, continuous across chunks
    """

    data: np.ndarray
    start: np.ndarray
    caplen: np.ndarray
    wirelen: np.ndarray
    ts: np.ndarray
    linktype: np.ndarray
    iface: np.ndarray
    file_offset: np.ndarray
    index: np.ndarray
    path: str = "<capture>"
    damage: list[Damage] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.start)

    def packet_bytes(self, i: int) -> bytes:
        """Bytes of packet ``i`` (for the per-packet reference engines and tests)."""
        s = int(self.start[i])
        return self.data[s : s + int(self.caplen[i])].tobytes()
