"""Where each packet's captured transport payload is, next to a packet batch.

Not a batch column: copying every payload into Arrow would cost more than decoding
(a 357 MB capture holds 288 MB of payload). The fast engine records, per packet, the
offset of the captured TCP/UDP payload in the chunk's read buffer and its captured
length; the flow kernels read the bytes there for service identification
(flowkit.protocols), only for the first few payload packets of each connection.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Payload:
    """Payload bytes of a batch's packets: packet i is data[start[i] : start[i] + caplen[i]].

    caplen is 0 where a packet carries no TCP/UDP payload or it was not captured (or the
    packet is an IP fragment). Keeps the chunk's read buffer alive while it is referenced.
    """

    data: np.ndarray  # uint8, the chunk's read buffer
    start: np.ndarray  # int64[n]
    caplen: np.ndarray  # uint32[n]

    def __len__(self) -> int:
        return len(self.start)

    def packet(self, i: int) -> bytes:
        s = int(self.start[i])
        return self.data[s : s + int(self.caplen[i])].tobytes()

    def filter(self, mask: np.ndarray) -> "Payload":
        """The rows a batch filter kept (``mask``: one bool per packet)."""
        return Payload(self.data, self.start[mask], self.caplen[mask])
