"""Numba kernels: the sequential record-header walks, one call per buffer.

Each kernel walks record headers in a uint8 buffer and fills caller-allocated
column arrays, returning ``(n, pos, status, ...)``. Python only looks at the
status: it never touches individual records. Kernels never raise: every bad
value becomes a status the caller turns into a ``Damage``.
"""
from __future__ import annotations

import numba
import numpy as np

from flowkit.capture import _jit

_jit.start()  # before any kernel loads: skips numba's SciPy import (see _jit)

# Largest caplen accepted (libpcap's and Wireshark's maximum snapshot length).
MAX_CAPLEN = 262144
# Largest pcapng packet block: the largest packet plus generous room for options.
MAX_PACKET_BLOCK = MAX_CAPLEN + 65536

# Kernel statuses.
NEED = 0  # the next record/block is not complete in the buffer (read more, or EOF damage)
FULL = 1  # output arrays full
STOP = 2  # reached the stop offset (byte-range reading)
OTHER_BLOCK = 3  # pcapng: a block Python must handle (SHB, IDB, unknown)
BAD_CAPLEN = 4  # pcap: caplen beyond the limit
BAD_BLOCK_LEN = 5  # pcapng: length not a multiple of 4 / below the minimum
ABSURD_BLOCK_LEN = 6  # pcapng: packet block longer than MAX_PACKET_BLOCK
BAD_TRAILER = 7  # pcapng: trailing length differs from the leading one
BAD_IFACE = 8  # pcapng: packet names an interface no IDB described
BAD_BLOCK_CAPLEN = 9  # pcapng: caplen does not fit in its block or is absurd


@numba.njit(cache=True, inline="always")
def _u32(buf, p, big):
    if big:
        return (
            (np.int64(buf[p]) << 24)
            | (np.int64(buf[p + 1]) << 16)
            | (np.int64(buf[p + 2]) << 8)
            | np.int64(buf[p + 3])
        )
    return (
        np.int64(buf[p])
        | (np.int64(buf[p + 1]) << 8)
        | (np.int64(buf[p + 2]) << 16)
        | (np.int64(buf[p + 3]) << 24)
    )


@numba.njit(cache=True, inline="always")
def _u16(buf, p, big):
    if big:
        return (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])
    return np.int64(buf[p]) | (np.int64(buf[p + 1]) << 8)


@numba.njit(cache=True)
def frame_pcap(buf, pos, stop, big, nanosecond, limit, base, first_index,
               start, caplen, wirelen, ts, foff, index):
    """Classic pcap records from ``pos``; no record whose header starts at/after ``stop``.

    Returns ``(n, pos, status)``; ``pos`` is the header of the first record not taken.
    """
    n = 0
    cap = start.shape[0]
    size = buf.shape[0]
    mult = 1 if nanosecond else 1000
    status = NEED
    while True:
        if pos >= stop:
            status = STOP
            break
        if n >= cap:
            status = FULL
            break
        if pos + 16 > size:
            status = NEED
            break
        cl = _u32(buf, pos + 8, big)
        if cl > limit:
            status = BAD_CAPLEN
            break
        if pos + 16 + cl > size:
            status = NEED
            break
        sec = _u32(buf, pos, big)
        frac = _u32(buf, pos + 4, big)
        start[n] = pos + 16
        caplen[n] = cl
        wirelen[n] = _u32(buf, pos + 12, big)
        ts[n] = sec * 1_000_000_000 + frac * mult
        foff[n] = base + pos
        index[n] = first_index + n
        n += 1
        pos += 16 + cl
    return n, pos, status


@numba.njit(cache=True, inline="always")
def _units_to_ns(units, kind, exp, mul, div):
    """Interface time units to ns: kind 0 = 10^-exp (via mul/div), 1 = 2^-exp."""
    if kind == 0:
        return units * mul // div
    if exp > 32:
        units = units >> (exp - 32)
        exp = 32
    whole = units >> exp
    frac = units & ((np.int64(1) << exp) - 1)
    return whole * 1_000_000_000 + ((frac * 1_000_000_000) >> exp)


@numba.njit(cache=True)
def frame_pcapng(buf, pos, big, n_if, if_link, if_kind, if_exp, if_mul, if_div, if_off,
                 if_snap, prev_ts, base, first_index,
                 start, caplen, wirelen, ts, foff, index, linktype, iface):
    """pcapng packet blocks (EPB, SPB, PB) from ``pos`` until any other block.

    Returns ``(n, pos, status, prev_ts, need)``; ``need`` is the full length of the
    block at ``pos`` when status is NEED and its header was readable, else 12.
    SPB carries no timestamp: it gets the previous packet's (``prev_ts``).
    """
    n = 0
    cap = start.shape[0]
    size = buf.shape[0]
    status = NEED
    need = 12
    while True:
        if n >= cap:
            status = FULL
            break
        if pos + 12 > size:
            status = NEED
            need = 12
            break
        btype = _u32(buf, pos, big)
        if btype != 6 and btype != 3 and btype != 2:
            status = OTHER_BLOCK
            break
        blen = _u32(buf, pos + 4, big)
        minlen = 16 if btype == 3 else 32
        if blen % 4 != 0 or blen < minlen:
            status = BAD_BLOCK_LEN
            break
        if blen > MAX_PACKET_BLOCK:
            status = ABSURD_BLOCK_LEN
            break
        if pos + blen > size:
            status = NEED
            need = blen
            break
        if _u32(buf, pos + blen - 4, big) != blen:
            status = BAD_TRAILER
            break
        if btype == 3:
            if n_if == 0:
                status = BAD_IFACE
                break
            ifc = 0
            wl = _u32(buf, pos + 8, big)
            cl = min(wl, blen - 16)
            if if_snap[0] > 0:
                cl = min(cl, if_snap[0])
            data = pos + 12
            t = prev_ts
        else:
            if btype == 6:
                ifc = _u32(buf, pos + 8, big)
                hi = _u32(buf, pos + 12, big)
                lo = _u32(buf, pos + 16, big)
                cl = _u32(buf, pos + 20, big)
                wl = _u32(buf, pos + 24, big)
            else:
                ifc = _u16(buf, pos + 8, big)
                hi = _u32(buf, pos + 12, big)
                lo = _u32(buf, pos + 16, big)
                cl = _u32(buf, pos + 20, big)
                wl = _u32(buf, pos + 24, big)
            if ifc >= n_if:
                status = BAD_IFACE
                break
            if cl > blen - 32 or cl > MAX_CAPLEN:
                status = BAD_BLOCK_CAPLEN
                break
            data = pos + 28
            t = _units_to_ns((hi << 32) | lo, if_kind[ifc], if_exp[ifc], if_mul[ifc],
                             if_div[ifc]) + if_off[ifc]
        start[n] = data
        caplen[n] = cl
        wirelen[n] = wl
        ts[n] = t
        foff[n] = base + pos
        index[n] = first_index + n
        linktype[n] = if_link[ifc]
        iface[n] = ifc
        prev_ts = t
        n += 1
        pos += blen
    return n, pos, status, prev_ts, need


@numba.njit(cache=True, inline="always")
def _plausible(buf, p, big, nanosecond, limit):
    """Header at ``p`` could be a real record header (caller checked p + 16 <= size)."""
    frac = _u32(buf, p + 4, big)
    if frac >= (1_000_000_000 if nanosecond else 1_000_000):
        return False
    cl = _u32(buf, p + 8, big)
    if cl > limit:
        return False
    wl = _u32(buf, p + 12, big)
    # wirelen below caplen happens in real files only with tiny or zero wirelen
    if wl < cl and wl >= 64:
        return False
    return True


@numba.njit(cache=True)
def resync_pcap(buf, first, last, at_eof, big, nanosecond, limit, chain, span, back_tol, reach,
                min_ts):
    """First offset in ``[first, last)`` where a chain of plausible headers begins.

    A candidate is accepted when its chain of headers (each plausible, timestamps
    non-decreasing within ``back_tol`` ns, none before ``min_ts``) reaches exactly the end of the file, or
    holds at least ``chain`` records and covers at least ``span`` bytes (so it leaves
    any packet the candidate could sit inside) and reaches offset ``reach``, or holds
    ``chain`` records and then
    meets a record cut by the end of the file. ``buf`` must extend far enough past
    ``last`` for that (the caller reads ``span + chain * (limit + 16)`` more bytes);
    ``at_eof`` says whether ``buf`` ends at the end of the file.
    Returns the offset, ``-1`` if no candidate in range, ``-2`` if more bytes are needed.
    """
    size = buf.shape[0]
    mult = 1 if nanosecond else 1000
    for cand in range(first, last):
        p = cand
        count = 0
        prev = np.int64(-(1 << 62))
        ok = False
        while True:
            if p == size and at_eof:
                ok = count > 0
                break
            if p + 16 > size:
                if not at_eof:
                    return -2
                ok = count >= chain
                break
            if not _plausible(buf, p, big, nanosecond, limit):
                break
            t = _u32(buf, p, big) * 1_000_000_000 + _u32(buf, p + 4, big) * mult
            if t < prev - back_tol or t < min_ts:
                break
            prev = max(prev, t)
            cl = _u32(buf, p + 8, big)
            if p + 16 + cl > size:
                if not at_eof:
                    return -2
                ok = count >= chain
                break
            count += 1
            p += 16 + cl
            if count >= chain and p - cand >= span and p >= reach:
                ok = True
                break
        if ok:
            return cand
    return -1


@numba.njit(cache=True)
def walk_chain(buf, pos, target, big, limit):
    """Follow record lengths from ``pos`` to the first header at/after ``target``.

    Returns ``(pos, status)``: status 0 = ``pos`` is that header, -1 = impossible
    caplen at ``pos``, -2 = ``buf`` ends inside the record at ``pos``.
    """
    size = buf.shape[0]
    while pos < target:
        if pos + 16 > size:
            return pos, -2
        cl = _u32(buf, pos + 8, big)
        if cl > limit:
            return pos, -1
        if pos + 16 + cl > size and pos + 16 + cl < target:
            return pos, -2
        pos += 16 + cl
    return pos, 0


@numba.njit(cache=True)
def chains_meet(buf, a, b, stop, big, limit):
    """Whether the record chains from ``a`` and ``b`` share a boundary before ``stop``."""
    size = buf.shape[0]
    while a != b:
        if a > b:
            a, b = b, a
        if a >= stop or a + 16 > size:
            return False
        cl = _u32(buf, a + 8, big)
        if cl > limit:
            return False
        a += 16 + cl
    return a < stop
