"""Byte ranges of one big classic pcap, for reading it in parallel.

``split_ranges(path, n)`` cuts the file into ``n`` byte ranges; ``read_chunks(path,
start=, end=)`` yields exactly the records whose header begins in ``[start, end)``.
The first record boundary at or after ``start`` is found by resynchronising
(``_framing.resync_pcap``, C): a candidate offset is accepted when the chain of record
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

from flowkit.capture import _framing as K
from flowkit.capture import pcap
from flowkit.capture.records import RecordChunk
from flowkit.capture.sniff import format_of_head
from flowkit.capture.stream import ByteStream, compression_of, display_name
from flowkit.errors import CaptureError

CHAIN = 8
BACK_TOLERANCE_NS = 86_400 * 1_000_000_000
SCAN_STEP = 1 << 20  # candidates examined per window
WALK_BLOCK = 16 << 20  # bytes read per step when following record lengths


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

    Resynchronises at ``start - 2 maximal records`` (or uses the first record when that
    is before it), then follows record lengths to ``start``. A fake chain hidden in a
    payload that leads exactly onto real record boundaries merges with the real chain
    within one maximal record, so by ``start`` both agree. When another plausible chain
    runs in parallel a few bytes away without ever meeting the chosen one (synthetic
    files whose shifted headers stay plausible), the range cannot be decided locally and
    the boundary is found by walking the record lengths from the start of the file.
    """
    limit = hdr.caplen_limit
    rec_max = limit + 16
    start_scan = start - 2 * rec_max
    if start_scan <= pcap.HEADER_LEN:
        return _walk(path, hdr, size, pcap.HEADER_LEN, start, end)
    reach = start + rec_max
    with open(path, "rb") as f:
        min_ts = _min_ts(f, hdr)
        anchor = _resync(f, hdr, size, start_scan, end, reach, min_ts)
        if anchor is None:
            return None
        if anchor < start and _ambiguous(f, hdr, size, anchor, reach, min_ts):
            anchor = pcap.HEADER_LEN
    return _walk(path, hdr, size, anchor, start, end)


def _walk(path, hdr: pcap.PcapHeader, size: int, pos: int, start: int, end: int) -> int | None:
    """Follow record lengths from the boundary ``pos`` to the first header >= ``start``."""
    limit = hdr.caplen_limit
    with open(path, "rb") as f:
        while pos < start:
            f.seek(pos)
            want = min(start - pos, WALK_BLOCK) + limit + 16
            arr = np.frombuffer(f.read(want), np.uint8)
            p, status = K.walk_chain(arr, 0, start - pos, hdr.big_endian, limit)
            if status == -1 or (status == -2 and (arr.shape[0] < want or p == 0)):
                return None  # damage or end of file before start: nothing from here
            pos += p
    return pos if pos < min(end, size) else None


def _min_ts(f, hdr: pcap.PcapHeader) -> int:
    """Earliest plausible timestamp: the first record's, less the tolerance.

    Chains shifted by a few bytes inside real records read a caplen or microsecond
    field as seconds (1970); real records are not that far before the first one.
    """
    f.seek(pcap.HEADER_LEN)
    head = f.read(8)
    if len(head) < 8:
        return -(1 << 62)
    sec, frac = struct.unpack((">" if hdr.big_endian else "<") + "II", head)
    return sec * 1_000_000_000 + frac * (1 if hdr.nanosecond else 1000) - BACK_TOLERANCE_NS


def _chain_ok(arr, at: int, at_eof: bool, hdr, reach_rel: int, min_ts: int) -> bool:
    limit = hdr.caplen_limit
    return K.resync_pcap(arr, at, at + 1, at_eof, hdr.big_endian, hdr.nanosecond, limit, CHAIN,
                         limit + 16, BACK_TOLERANCE_NS, reach_rel, min_ts) == at


def _resync(f, hdr: pcap.PcapHeader, size: int, start: int, end: int, reach: int,
            min_ts: int) -> int | None:
    """First offset in ``[start, end)`` where a plausible chain of records begins
    and stays plausible up to offset ``reach`` at least."""
    limit = hdr.caplen_limit
    span = limit + 16
    extra = max(span, reach - start) + CHAIN * (limit + 16)
    pos = start
    while pos < end:
        ncand = min(end - pos, SCAN_STEP)
        while True:
            f.seek(pos)
            arr = np.frombuffer(f.read(ncand + extra), np.uint8)
            at_eof = pos + arr.shape[0] >= size
            found = K.resync_pcap(arr, 0, ncand, at_eof, hdr.big_endian, hdr.nanosecond,
                                  limit, CHAIN, span, BACK_TOLERANCE_NS, reach - pos, min_ts)
            if found != -2:
                break
            extra *= 2  # cannot happen with the bound above; stay correct anyway
        if found >= 0:
            return pos + found
        pos += ncand
    return None


def _ambiguous(f, hdr: pcap.PcapHeader, size: int, anchor: int, reach: int, min_ts: int) -> bool:
    """Another plausible chain starts within 15 bytes of ``anchor`` and never meets it."""
    limit = hdr.caplen_limit
    lo = max(pcap.HEADER_LEN, anchor - 15)
    f.seek(lo)
    want = reach - lo + (CHAIN + 2) * (limit + 16)
    arr = np.frombuffer(f.read(want), np.uint8)
    at_eof = lo + arr.shape[0] >= size
    a = anchor - lo
    for k in range(-15, 16):
        b = a + k
        if k == 0 or b < 0:
            continue
        if _chain_ok(arr, b, at_eof, hdr, reach - lo, min_ts) and not K.chains_meet(
            arr, a, b, reach - lo, hdr.big_endian, limit
        ):
            return True
    return False


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
