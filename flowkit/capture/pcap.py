"""Classic pcap: file header and record framing (one C walk per buffer)."""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from flowkit.capture import _framing as K
from flowkit.capture._columns import Columns
from flowkit.capture.records import Damage, RecordChunk
from flowkit.capture.sniff import PCAP_MAGICS
from flowkit.capture.stream import ByteStream
from flowkit.errors import CaptureError

HEADER_LEN = 24
RECORD_HEADER_LEN = 16


@dataclass(frozen=True)
class PcapHeader:
    big_endian: bool
    nanosecond: bool
    snaplen: int
    linktype: int  # FCS bits masked

    @property
    def caplen_limit(self) -> int:
        """Largest caplen accepted as a real record.

        libpcap writers sometimes put caplen a little above snaplen, and snaplen 0 or
        tiny values occur in the wild, so a caplen is damage only beyond both 64 KiB and
        snaplen, and always beyond 256 KiB.
        """
        return min(K.MAX_CAPLEN, max(self.snaplen, 65535))


def parse_header(head: bytes) -> PcapHeader:
    big, ns = PCAP_MAGICS[head[:4]]
    snap, lt = struct.unpack((">" if big else "<") + "II", head[16:24])
    return PcapHeader(big, ns, snap, lt & 0xFFFF)


def frame_records(stream: ByteStream, hdr: PcapHeader, chunk_bytes: int, strict: bool,
                  first_index: int = 0, stop: int | None = None) -> Iterator[RecordChunk]:
    """Records from the stream's current position (just after the file header).

    ``stop``: stream offset; records whose header starts at/after it are not taken.
    On damage the records before it are yielded with the ``Damage`` in the same chunk
    (``strict``: yielded without it, then ``CaptureError``) and framing stops.
    """
    name = stream.name
    limit = hdr.caplen_limit
    index = first_index
    want = chunk_bytes
    while True:
        arr = stream.refill(want)  # uint8 array
        size = arr.shape[0]
        base = stream.base
        cols = Columns.for_buffer(size)
        stop_rel = (1 << 62) if stop is None else stop - base
        pos = 0
        while True:
            n, pos, status = K.frame_pcap(
                arr, pos, stop_rel, hdr.big_endian, hdr.nanosecond, limit, base, index,
                cols.view("start"), cols.view("caplen"), cols.view("wirelen"), cols.view("ts"),
                cols.view("foff"), cols.view("index"),
            )
            cols.n += n
            index += n
            if status != K.FULL:
                break
            cols.grow()
        want = chunk_bytes
        damage = None
        done = False
        if status == K.BAD_CAPLEN:
            cl = _caplen_at(arr, pos, hdr.big_endian)
            damage = Damage(name, base + pos, f"record caplen {cl} is beyond the limit {limit} "
                                             f"(snaplen {hdr.snaplen}): not a record header")
        elif status == K.STOP:
            done = True
        elif status == K.NEED:
            rem = size - pos
            if stream.eof:
                done = True
                if rem and rem < RECORD_HEADER_LEN:
                    damage = Damage(name, base + pos, f"file ends inside a record header "
                                                     f"({rem} of 16 bytes)")
                elif rem:
                    cl = _caplen_at(arr, pos, hdr.big_endian)
                    damage = Damage(name, base + pos, f"record cut: caplen {cl} but the file "
                                                     f"ends {rem - 16} bytes into its data")
                if stream.error:
                    msg = stream.error if damage is None else f"{damage.message} ({stream.error})"
                    damage = Damage(name, base + (pos if damage else size), msg)
            elif rem >= RECORD_HEADER_LEN:
                need = RECORD_HEADER_LEN + _caplen_at(arr, pos, hdr.big_endian)
                want = max(chunk_bytes, need - rem)
        if cols.n or (damage and not strict):
            yield cols.chunk(arr, name, [damage] if damage and not strict else [], hdr.linktype)
        if damage:
            if strict:
                raise CaptureError(damage.path, damage.offset, damage.message)
            return
        if done:
            return
        stream.consume(arr, pos)
        # drop our references before the next refill: the consumer has had the chunk, so
        # the old buffer can be freed before the new one is allocated (one buffer alive)
        arr = cols = None


def _caplen_at(arr: np.ndarray, pos: int, big: bool) -> int:
    return struct.unpack((">" if big else "<") + "I", arr[pos + 8 : pos + 12].tobytes())[0]
