"""Byte ranges of one big classic pcap, for reading it in parallel.

``split_ranges(path, n)`` cuts the file into ``n`` byte ranges; ``read_chunks(path,
start=, end=)`` yields exactly the records whose header begins in ``[start, end)``.
The first record boundary at or after ``start`` is found by resynchronising
(``_kernels.resync_pcap``): a candidate offset is accepted when the chain of record
headers from it is plausible (caplen within limits, sub-second field in range,
wirelen consistent, timestamps not going back more than a day, nor more than a day
before the file's first record) for at least 8 records
*and* at least one maximal record length, so that it leaves any packet whose payload
the candidate might sit in; or when the chain ends exactly at the end of the file.
Resynchronisation starts two maximal record lengths before ``start`` and the chain
must stay plausible until one maximal record length past ``start``; it is then
followed to ``start``. A fake chain that leads exactly onto real boundaries has
merged with the real chain by then, and fake chains that drift through real records
(e.g. out of a run of zero bytes, shifted by a few bytes) break the timestamp or
length checks over that distance, so neighbouring ranges agree.
"""
from __future__ import annotations

import os
import struct
from typing import Iterator

import numpy as np

from flowkit.capture import _kernels as K
from flowkit.capture import pcap
from flowkit.capture.records import RecordChunk
from flowkit.capture.sniff import format_of_head
from flowkit.capture.stream import ByteStream, compression_of, display_name
from flowkit.errors import CaptureError

CHAIN = 8
BACK_TOLERANCE_NS = 86_400 * 1_000_000_000
SCAN_STEP = 1 << 20  # candidates examined per window


def _header(path) -> tuple[pcap.PcapHeader, int]:
    name = display_name(path)
    if not isinstance(path, (str, os.PathLike)) or os.fspath(path) == "-":
        raise CaptureError(name, None, "byte ranges need a capture file path (not a stream)")
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError as e:
        raise CaptureError(name, None, f"cannot open: {e.strerror or e}") from None
    comp = compression_of(head)
    fmt = format_of_head(head, comp)
    if comp or fmt.kind != "pcap":
        raise CaptureError(name, 0, f"byte ranges need an uncompressed classic pcap, "
                                    f"this is {fmt.describe()}")
    if len(head) < 24:
        raise CaptureError(name, 0, f"file ends inside the pcap file header ({len(head)} of 24 bytes)")
    return pcap.parse_header(head), size


def split_ranges(path, n: int) -> list[tuple[int, int]]:
    """``n`` (or fewer, never empty) contiguous byte ranges covering the whole file."""
    if n < 1:
        raise ValueError("n must be >= 1")
    _hdr, size = _header(path)
    body = max(size - pcap.HEADER_LEN, 0)
    n = max(1, min(n, body // 4096 or 1))
    cuts = [pcap.HEADER_LEN + body * i // n for i in range(n + 1)]
    cuts[0], cuts[-1] = 0, size
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]


def find_boundary(path, hdr: pcap.PcapHeader, size: int, start: int, end: int) -> int | None:
    """First record boundary in ``[start, end)``, or None.

    Resynchronises at ``start - LOOKBACK`` (or uses the first record when that is
    before it), then follows record lengths to ``start``. A fake chain hidden in a
    payload that happens to lead exactly onto real record boundaries merges with the
    real chain within one maximal record, so by ``start`` both agree.
    """
    limit = hdr.caplen_limit
    lookback = 2 * (limit + 16)
    if start - lookback <= pcap.HEADER_LEN:
        anchor = pcap.HEADER_LEN
    else:
        anchor = _resync(path, hdr, size, start - lookback, end, start + limit + 16)
        if anchor is None:
            return None
    if anchor >= start:
        return anchor if anchor < end else None
    with open(path, "rb") as f:
        f.seek(anchor)
        arr = np.frombuffer(f.read(start - anchor + limit + 32), np.uint8)
    found = K.walk_chain(arr, 0, start - anchor, hdr.big_endian, limit)
    if found < 0 or anchor + found >= min(end, size):
        return None
    return anchor + found


def _min_ts(f, hdr: pcap.PcapHeader) -> int:
    """Earliest plausible timestamp: the first record's, less the tolerance.

    Chains shifted by a few bytes inside real records read a caplen or microsecond
    field as seconds (1970); real records are not that far before the first one.
    """
    pos = f.tell()
    f.seek(pcap.HEADER_LEN)
    head = f.read(8)
    f.seek(pos)
    if len(head) < 8:
        return -(1 << 62)
    sec, frac = struct.unpack((">" if hdr.big_endian else "<") + "II", head)
    return sec * 1_000_000_000 + frac * (1 if hdr.nanosecond else 1000) - BACK_TOLERANCE_NS


def _resync(path, hdr: pcap.PcapHeader, size: int, start: int, end: int,
            reach: int) -> int | None:
    """First offset in ``[start, end)`` where a plausible chain of records begins
    and stays plausible up to offset ``reach`` at least."""
    limit = hdr.caplen_limit
    span = limit + 16
    extra = max(span, reach - start) + CHAIN * (limit + 16)
    pos = start
    with open(path, "rb") as f:
        while pos < end:
            ncand = min(end - pos, SCAN_STEP)
            f.seek(pos)
            while True:
                arr = np.frombuffer(f.read(ncand + extra), np.uint8)
                at_eof = pos + arr.shape[0] >= size
                found = K.resync_pcap(arr, 0, ncand, at_eof, hdr.big_endian, hdr.nanosecond,
                                      limit, CHAIN, span, BACK_TOLERANCE_NS, reach - pos,
                                      _min_ts(f, hdr))
                if found != -2:
                    break
                extra *= 2  # cannot happen with the bound above; stay correct anyway
                f.seek(pos)
            if found >= 0:
                return pos + found
            pos += ncand
    return None


def read_range(path, start: int, end: int | None, *, chunk_bytes: int,
               strict: bool) -> Iterator[RecordChunk]:
    """Records whose header begins in ``[start, end)``; ``index`` counts from 0 in the range."""
    hdr, size = _header(path)
    name = display_name(path)
    end = size if end is None else min(end, size)
    start = max(start, pcap.HEADER_LEN)
    if start >= end:
        return
    first = start if start == pcap.HEADER_LEN else find_boundary(path, hdr, size, start, end)
    if first is None:
        return
    with open(path, "rb") as f:
        f.seek(first)
        stream = ByteStream(f, name)
        stream.base = first
        yield from pcap.frame_records(stream, hdr, chunk_bytes, strict, 0, stop=end)
