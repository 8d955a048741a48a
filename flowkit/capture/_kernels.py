"""The sequential record-header walks (C, ``_framing.c``), one call per buffer.

Each walk reads record headers in a uint8 buffer and fills caller-allocated column
arrays, returning ``(n, pos, status, ...)``. Python only looks at the status: it
never touches individual records. Walks never raise on bad data: every bad value
becomes a status the caller turns into a ``Damage``. Why C: the walk is sequential
(each header's length says where the next one starts), so it cannot be vectorized.
"""
from flowkit.capture._framing import (  # noqa: F401  (re-exported for pcap/pcapng/ranges)
    ABSURD_BLOCK_LEN,
    BAD_BLOCK_CAPLEN,
    BAD_BLOCK_LEN,
    BAD_CAPLEN,
    BAD_IFACE,
    BAD_TRAILER,
    FULL,
    MAX_CAPLEN,
    MAX_PACKET_BLOCK,
    NEED,
    OTHER_BLOCK,
    STOP,
    chains_meet,
    frame_pcap,
    frame_pcapng,
    resync_pcap,
    walk_chain,
)
