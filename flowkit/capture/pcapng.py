"""pcapng: sections, interfaces and packet blocks.

Packet blocks (EPB, SPB, PB) are framed by a C walk (_framing.c); Python handles only the
rare other blocks: SHB (new section: byte order, interfaces reset), IDB (link type,
snaplen, ``if_tsresol``, ``if_tsoffset``) and unknown blocks (skipped after their
lengths are checked).
"""
from __future__ import annotations

import struct
from typing import Iterator

import numpy as np

from flowkit.capture import _framing as K
from flowkit.capture._columns import Columns
from flowkit.capture.records import Damage, RecordChunk
from flowkit.capture.sniff import PCAPNG_BOM
from flowkit.capture.stream import ByteStream
from flowkit.errors import CaptureError

SHB, IDB = 0x0A0D0D0A, 1
# Non-packet blocks are held whole in memory to be parsed or skipped: bound them.
MAX_OTHER_BLOCK = 64 << 20


class _Interfaces:
    """Per-interface arrays the kernel reads (reset by every SHB)."""

    def __init__(self):
        self.rows: list[tuple[int, int, int, int, int, int, int]] = []
        self._arrays = None

    def add(self, linktype: int, snaplen: int, tsresol: int | None, tsoffset: int) -> None:
        kind, exp, mul, div = 0, 6, 1000, 1
        if tsresol is not None:
            if tsresol & 0x80:
                # 2^-exp; beyond 2^-63 is not a real clock, and shifts must stay < 64
                kind, exp = 1, min(tsresol & 0x7F, 63)
            else:
                exp = min(tsresol, 27)  # 10^-27 s units would overflow int64 anyway
                mul, div = (10 ** (9 - exp), 1) if exp <= 9 else (1, 10 ** (exp - 9))
        off = max(-(1 << 62), min(1 << 62, tsoffset * 1_000_000_000))
        self.rows.append((linktype, kind, exp, mul, div, off, snaplen))
        self._arrays = None

    def arrays(self):
        if self._arrays is None:
            rows = self.rows or [(0, 0, 6, 1000, 1, 0, 0)]
            cols = list(zip(*rows))
            self._arrays = (
                np.array(cols[0], np.uint16),
                *(np.array(c, np.int64) for c in cols[1:]),
            )
        return self._arrays


def frame_blocks(stream: ByteStream, chunk_bytes: int, strict: bool) -> Iterator[RecordChunk]:
    """All packets of a pcapng stream positioned at its first SHB."""
    name = stream.name
    big = False
    ifs = _Interfaces()
    prev_ts = 0
    index = 0
    want = chunk_bytes
    while True:
        arr = stream.refill(want)  # uint8 array
        size = arr.shape[0]
        base = stream.base
        cols = Columns.for_buffer(size)
        want = chunk_bytes
        pos = 0
        damage = None
        done = False
        while True:
            lt, kind, exp, mul, div, off, snap = ifs.arrays()
            n, pos, status, prev_ts, need = K.frame_pcapng(
                arr, pos, big, len(ifs.rows), lt, kind, exp, mul, div, off, snap, prev_ts,
                base, index, cols.view("start"), cols.view("caplen"), cols.view("wirelen"),
                cols.view("ts"), cols.view("foff"), cols.view("index"), cols.view("linktype"),
                cols.view("iface"),
            )
            cols.n += n
            index += n
            if status == K.OTHER_BLOCK:
                res = _other_block(arr, pos, big, ifs, name, base)
                if isinstance(res, Damage):
                    damage = res
                    break
                if res is None:  # incomplete: read more
                    need = _declared_len(arr, pos, big)
                    status = K.NEED
                else:
                    pos, big, section = res
                    if section:
                        ifs = _Interfaces()
                        prev_ts = 0
                    continue
            if status == K.NEED:
                rem = size - pos
                if stream.eof:
                    done = True
                    if rem:
                        damage = _cut_damage(arr, pos, big, name, base, rem)
                    if stream.error:
                        msg = stream.error if damage is None else f"{damage.message} ({stream.error})"
                        damage = Damage(name, base + (pos if damage else size), msg)
                elif need > rem:
                    want = max(chunk_bytes, need - rem)
                break
            if status == K.FULL:
                cols.grow()
                continue
            damage = _kernel_damage(status, arr, pos, big, name, base, len(ifs.rows))
            break
        if cols.n or (damage and not strict):
            yield cols.chunk(arr, name, [damage] if damage and not strict else [])
        if damage:
            if strict:
                raise CaptureError(damage.path, damage.offset, damage.message)
            return
        if done:
            return
        stream.consume(arr, pos)
        arr = cols = None  # free the old buffer before the next refill (see pcap.py)


def _u32(arr, p, big) -> int:
    return struct.unpack(">I" if big else "<I", arr[p : p + 4].tobytes())[0]


def _declared_len(arr, p, big) -> int:
    if _u32(arr, p, False) == SHB:
        bom = arr[p + 8 : p + 12].tobytes()
        big = PCAPNG_BOM.get(bom, big)
    return _u32(arr, p + 4, big)


def _other_block(arr, pos, big, ifs, name, base):
    """Handle a non-packet block at ``pos`` (its 12 first bytes are present).

    Returns ``(next_pos, big, new_section)``, ``None`` if the block is incomplete,
    or a ``Damage``.
    """
    size = arr.shape[0]
    btype = _u32(arr, pos, big)
    where = base + pos
    section = btype == SHB
    if section:
        bom = arr[pos + 8 : pos + 12].tobytes()
        if bom not in PCAPNG_BOM:
            return Damage(name, where, f"section header with bad byte-order magic {bom.hex(' ')}")
        big = PCAPNG_BOM[bom]
    blen = _u32(arr, pos + 4, big)
    minlen = {SHB: 28, IDB: 20}.get(btype, 12)
    if blen % 4 or blen < minlen:
        return Damage(name, where, f"block type 0x{btype:x} has bad length {blen} "
                                   f"(must be a multiple of 4 and >= {minlen})")
    if blen > MAX_OTHER_BLOCK:
        return Damage(name, where, f"block type 0x{btype:x} length {blen} is absurd "
                                   f"(> {MAX_OTHER_BLOCK})")
    if pos + blen > size:
        return None
    trailer = _u32(arr, pos + blen - 4, big)
    if trailer != blen:
        return Damage(name, where, f"block type 0x{btype:x}: trailing length {trailer} "
                                   f"differs from leading length {blen}")
    if btype == IDB:
        e = ">" if big else "<"
        linktype, _res, snaplen = struct.unpack(e + "HHI", arr[pos + 8 : pos + 16].tobytes())
        tsresol, tsoffset = _idb_options(arr[pos + 16 : pos + blen - 4].tobytes(), e)
        ifs.add(linktype, snaplen, tsresol, tsoffset)
    return pos + blen, big, section


def _idb_options(opts: bytes, e: str):
    """``if_tsresol`` (code 9) and ``if_tsoffset`` (code 14); malformed options end the list."""
    tsresol, tsoffset = None, 0
    p = 0
    while p + 4 <= len(opts):
        code, length = struct.unpack(e + "HH", opts[p : p + 4])
        if code == 0 or p + 4 + length > len(opts):
            break
        val = opts[p + 4 : p + 4 + length]
        if code == 9 and length >= 1:
            tsresol = val[0]
        elif code == 14 and length >= 8:
            tsoffset = struct.unpack(e + "q", val[:8])[0]
        p += 4 + length + (-length % 4)
    return tsresol, tsoffset


def _cut_damage(arr, pos, big, name, base, rem) -> Damage:
    if rem < 12:
        return Damage(name, base + pos, f"file ends inside a block header ({rem} of 12 bytes)")
    blen = _declared_len(arr, pos, big)
    btype = _u32(arr, pos, big)
    return Damage(name, base + pos, f"block type 0x{btype:x} of length {blen} runs past the end "
                                    f"of the file ({rem} bytes left)")


def _kernel_damage(status, arr, pos, big, name, base, n_if) -> Damage:
    btype = _u32(arr, pos, big)
    blen = _u32(arr, pos + 4, big)
    what = {2: "PB", 3: "SPB", 6: "EPB"}.get(btype, f"block 0x{btype:x}")
    where = base + pos
    if status == K.BAD_BLOCK_LEN:
        return Damage(name, where, f"{what} has bad length {blen} "
                                   f"(must be a multiple of 4 and >= {16 if btype == 3 else 32})")
    if status == K.ABSURD_BLOCK_LEN:
        return Damage(name, where, f"{what} length {blen} is absurd (> {K.MAX_PACKET_BLOCK})")
    if status == K.BAD_TRAILER:
        trailer = _u32(arr, pos + blen - 4, big)
        return Damage(name, where, f"{what}: trailing length {trailer} differs from leading length {blen}")
    if status == K.BAD_IFACE:
        ifc = 0 if btype == 3 else (_u32(arr, pos + 8, big) if btype == 6 else
                                    struct.unpack(">H" if big else "<H", arr[pos + 8 : pos + 10].tobytes())[0])
        return Damage(name, where, f"{what} refers to interface {ifc} but the section "
                                   f"describes {n_if}")
    if status == K.BAD_BLOCK_CAPLEN:
        cl = _u32(arr, pos + 20, big)
        return Damage(name, where, f"{what} caplen {cl} does not fit its block length {blen} "
                                   f"(or exceeds {K.MAX_CAPLEN})")
    return Damage(name, where, f"unexpected framing status {status}")
