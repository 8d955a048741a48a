"""The ``fast`` decode engine: a RecordChunk into a packet batch, decoded in C.

_decode.c walks every packet once, link layer to TCP options, and on into tunnels, and
fills numpy columns allocated here; no Python object is created per packet and the GIL
is released while it runs. Every byte read is guarded by the packet's captured length: a
packet that ends inside a header gets status TRUNCATED with the columns read so far.
Column meanings: docs/packets.md.

A ``Decoder`` keeps what must outlive a chunk: IP fragments waiting for the rest of
their datagram. A record gives one row, plus one per tunnel found inside it, so a
chunk's batch can have more rows than records (``rec`` maps rows back to records).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from flowkit._reuse import Buffers
from flowkit.capture.records import RecordChunk
from flowkit.decode import _decode
from flowkit.decode.fast_bytes import Columns
from flowkit.decode.payload import Payload
from flowkit.decode.schema import BAD_CHECKSUM_FIELD, PACKET_SCHEMA

__all__ = ["Decoder", "decode_chunk", "decode_chunk_payload", "decode_columns"]

_FIELDS = [(field.name, field.type) for field in PACKET_SCHEMA]
_RECORD_COLUMNS = ("index", "ts", "caplen", "wirelen", "iface", "linktype")
FRAG_TIMEOUT_NS = 300 * 10**9  # 5 minutes without completion: the datagram is given up
FRAG_MAX_BYTES = 64 << 20  # pending fragment memory; past it the oldest datagrams are given up


class Decoder:
    """Decodes consecutive chunks of one capture (or of files read as one), keeping pending
    fragments between them.

    ``decap``: follow tunnels (one extra row per layer). ``reassemble``: False leaves every
    fragment a row of its own (status FRAGMENT), as tcpdump sees them. After the last chunk, ``finish()``
    gives up the datagrams still incomplete. ``given_up`` counts the depth-0 fragment
    records of every datagram given up so far (timeout, memory bound, end): the ledger
    moves them from ``fragment`` to ``fragment_incomplete``. ``verify_checksums``: as Zeek
    without -C: IPv4 header checksum wrong -> status BAD_CHECKSUM; the batches get the
    ``bad_checksum`` column (TCP/UDP/ICMP checksum wrong).
    """

    def __init__(self, decap: bool = True, reassemble: bool = True, frag_timeout_ns: int = FRAG_TIMEOUT_NS,
                 frag_max_bytes: int = FRAG_MAX_BYTES, verify_checksums: bool = False):
        self.decap = decap
        self.verify_checksums = bool(verify_checksums)
        self._rows_per_record = 1.0  # of the last chunk: sizes the next one's columns
        self._state = _decode.new_state(bool(decap), bool(reassemble), int(frag_timeout_ns), int(frag_max_bytes),
                                        self.verify_checksums)
        self._pool = Buffers()  # column memory of chunks the caller has let go, reused
        self.given_up = 0

    def take_given_up(self) -> int:
        """Records given up since the last call."""
        n, _, _ = _decode.take_given_up(self._state)
        self.given_up += n
        return n

    def finish(self) -> int:
        """Give up every pending datagram; returns the records given up since the last take."""
        n = _decode.finish(self._state)
        self.given_up += n
        return n

    def columns(self, chunk: RecordChunk) -> Columns:
        n = len(chunk)
        data = np.ascontiguousarray(chunk.data, dtype=np.uint8)
        start = np.ascontiguousarray(chunk.start, dtype=np.int64)
        caplen = np.ascontiguousarray(chunk.caplen, dtype=np.uint32)
        wirelen = np.ascontiguousarray(chunk.wirelen, dtype=np.uint32)
        linktype = np.ascontiguousarray(chunk.linktype, dtype=np.uint16)
        ts = np.ascontiguousarray(chunk.ts, dtype=np.int64)
        parts, recs, first = [], [], 0
        guess = self._rows_per_record * 1.02 + 1 / 16 if self.decap else 1.0
        cap = int(n * guess) + _decode.ROWS_PER_RECORD
        while True:
            cols = Columns(cap, self._pool)
            rec = np.empty(cap, np.int64)
            first_before = first
            first, rows = _decode.decode(self._state, data, start, caplen, wirelen, linktype, ts,
                                         tuple(cols[name] for name in _decode.COLUMNS), rec, first,
                                         cols["payload_start"], cols["payload_caplen"],
                                         cols["bad_checksum"] if self.verify_checksums else None)
            parts.append((cols, rows))
            recs.append(rec[:rows])
            if first >= n:
                break
            # more rows per record than guessed (a tunnel-heavy capture): size the rest alike
            per_record = rows / max(first - first_before, 1)
            cap = int((n - first) * per_record * 1.1) + _decode.ROWS_PER_RECORD * 2
        rec = recs[0] if len(recs) == 1 else np.concatenate(recs)
        self._rows_per_record = len(rec) / n
        out = parts[0][0] if len(parts) == 1 else _concat(parts)
        out.n = len(rec)
        out.arrays = {name: values[: out.n] for name, values in out.arrays.items()}  # rows past n are not zeroed
        identity = out.n == n  # one row per record: the record columns copy straight
        for name in _RECORD_COLUMNS:
            values = getattr(chunk, name)
            out[name][: out.n] = values if identity else np.asarray(values)[rec]
        return out

    def decode(self, chunk: RecordChunk) -> pa.RecordBatch:
        if len(chunk) == 0:
            return to_batch(Columns(0), self.verify_checksums)
        return to_batch(self.columns(chunk), self.verify_checksums)

    def decode_payload(self, chunk: RecordChunk) -> tuple[pa.RecordBatch, Payload]:
        """``decode`` plus where each row's captured payload is in the chunk's buffer."""
        cols = self.columns(chunk) if len(chunk) else Columns(0)
        return to_batch(cols, self.verify_checksums), _payload(chunk, cols)


def _payload(chunk: RecordChunk, cols: Columns) -> Payload:
    data = np.ascontiguousarray(chunk.data, dtype=np.uint8)
    n = cols.n
    return Payload(data, cols["payload_start"][:n], cols["payload_caplen"][:n])


def _concat(parts: list) -> Columns:
    total = sum(rows for _, rows in parts)
    out = Columns(total)
    for name in out.arrays:
        at = 0
        for cols, rows in parts:
            out[name][at : at + rows] = cols[name][:rows]
            at += rows
    return out


def decode_columns(chunk: RecordChunk, decap: bool = True) -> Columns:
    """Decode one chunk on its own (fragments reassembled within it) into numpy columns."""
    dec = Decoder(decap)
    if len(chunk) == 0:
        return Columns(0)
    cols = dec.columns(chunk)
    dec.finish()
    return cols


def decode_chunk(chunk: RecordChunk, decap: bool = True) -> pa.RecordBatch:
    """Decode every packet of ``chunk`` into a batch with exactly ``PACKET_SCHEMA``."""
    return to_batch(decode_columns(chunk, decap))


def decode_chunk_payload(chunk: RecordChunk, decap: bool = True) -> tuple[pa.RecordBatch, Payload]:
    """``decode_chunk`` plus where each row's captured payload is in the chunk's buffer."""
    cols = decode_columns(chunk, decap)
    return to_batch(cols), _payload(chunk, cols)


def to_batch(cols: Columns, bad_checksum: bool = False) -> pa.RecordBatch:
    """Wrap the first ``cols.n`` rows as Arrow arrays without copying them (PACKET_SCHEMA, plus
    the ``bad_checksum`` column when checksums were verified)."""
    n, values = cols.n, cols.arrays
    fields = [*_FIELDS, (BAD_CHECKSUM_FIELD.name, BAD_CHECKSUM_FIELD.type)] if bad_checksum else _FIELDS
    arrays = [pa.Array.from_buffers(kind, n, [None, pa.py_buffer(values[name][:n])]) for name, kind in fields]
    return pa.RecordBatch.from_arrays(arrays, names=[name for name, _ in fields])
