"""``read_chunks``: any capture source to a stream of ``RecordChunk``."""
from __future__ import annotations

from typing import Iterator

from flowkit.capture import pcap, pcapng
from flowkit.capture.records import Damage, RecordChunk
from flowkit.capture.sniff import format_of_head
from flowkit.capture.stream import ByteStream, open_source
from flowkit.errors import CaptureError

DEFAULT_CHUNK_BYTES = 4 << 20  # see docs/performance.md: peak RSS vs speed


def read_chunks(source, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES, strict: bool = False,
                start: int | None = None, end: int | None = None) -> Iterator[RecordChunk]:
    """Frame the packets of a capture into chunks of at most about ``chunk_bytes`` bytes.

    ``source``: path (str/Path), ``"-"`` for stdin, or a readable binary file object.
    pcap (both byte orders, us/ns) and pcapng, optionally gzip/bzip2/xz-compressed
    (recognised by magic bytes). Damage is reported in ``chunk.damage`` (framing stops
    there; packets before it are kept) or raised as ``CaptureError`` with ``strict``.
    ``start``/``end``: byte range of an uncompressed classic pcap file (see
    ``flowkit.capture.ranges``); only records whose header begins in it are yielded.
    """
    if chunk_bytes < 1:
        raise ValueError("chunk_bytes must be >= 1")
    if start is not None or end is not None:
        from flowkit.capture.ranges import read_range

        yield from read_range(source, 0 if start is None else start, end,
                              chunk_bytes=chunk_bytes, strict=strict)
        return
    f, name, owned, comp = open_source(source)
    try:
        stream = ByteStream(f, name, comp)
        head = stream.refill(24)
        fmt = format_of_head(bytes(head[:24]), comp)
        if fmt.kind == "empty":
            if stream.error:
                _damage_only(name, 0, stream.error, strict)
                yield _empty(name, Damage(name, 0, stream.error))
                return
            # no bytes at all is a mistake (a failed download, an empty pipe), not a capture
            # with no packets: a header-only file is the valid way to say "0 packets"
            comp = f" ({comp}-compressed)" if comp else ""
            raise CaptureError(name, 0, f"empty file{comp}, not a capture")
        if fmt.kind == "unknown":
            raise CaptureError(name, 0, fmt.describe())
        if fmt.kind == "pcapng":
            stream.consume(head, 0)
            yield from pcapng.frame_blocks(stream, chunk_bytes, strict)
            return
        if len(head) < pcap.HEADER_LEN:
            msg = f"file ends inside the pcap file header ({len(head)} of 24 bytes)"
            if stream.error:
                msg += f" ({stream.error})"
            _damage_only(name, 0, msg, strict)
            yield _empty(name, Damage(name, 0, msg))
            return
        hdr = pcap.parse_header(bytes(head[:24]))
        stream.consume(head, 24)
        yield from pcap.frame_records(stream, hdr, chunk_bytes, strict)
    finally:
        if owned is not None:
            owned.close()


def _damage_only(name, offset, msg, strict):
    if strict:
        raise CaptureError(name, offset, msg)


def _empty(name: str, damage: Damage) -> RecordChunk:
    from flowkit.capture._columns import Columns
    import numpy as np

    return Columns(0).chunk(np.zeros(0, np.uint8), name, [damage])
