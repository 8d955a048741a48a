"""``flowkit.packets(source, engine=...)``: the packet table users and flows/ consume.

A ``PacketTable`` is lazy: nothing is read until it is iterated, and iterating streams
one ``pa.RecordBatch`` per capture chunk, so memory stays bounded by the chunk size
whatever the capture size. Every packet read is counted in the ledger (``.stats``)
before the optional filter drops any, so filtered packets are never lost silently.

It is the one way packets are read: ``flows()``, ``accumulate()``, batch pieces (byte
ranges) and the CLI's progress bar (a per-batch callback) all iterate a PacketTable, so
the ledger and the filter are applied here and nowhere else.
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from typing import BinaryIO, Union

import numpy as np
import pyarrow as pa

from flowkit.decode._arrow import to_numpy
from flowkit.decode.payload import Payload
from flowkit.decode.schema import PACKET_SCHEMA, Tunnel
from flowkit.errors import FlowkitError
from flowkit.ledger import Ledger

Source = Union[str, os.PathLike, BinaryIO]
BatchFilter = Callable[[pa.RecordBatch], np.ndarray]

# engine name -> module with ``decode_chunk(RecordChunk) -> pa.RecordBatch``
ENGINES = {
    "fast": "flowkit.decode.fast",
    "dpkt": "flowkit.decode.dpkt_engine",
    "pyshark": "flowkit.decode.pyshark_engine",
}
DEFAULT_CHUNK_BYTES = 4 << 20  # see docs/performance.md: peak RSS vs speed


def engine_module(engine: str):
    """The module of a named engine (one-line error for unknown names)."""
    if engine not in ENGINES:
        raise FlowkitError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    module = importlib.import_module(ENGINES[engine])
    check = getattr(module, "check_available", None)
    if check is not None:
        check()  # e.g. pyshark needs tshark: fail before reading anything
    return module


def engine_decoder(engine: str) -> Callable:
    """The ``decode_chunk`` function of a named engine (one-line error for unknown names)."""
    return engine_module(engine).decode_chunk


class _Stateless:
    """An engine without cross-chunk state (pyshark: tshark reassembles on its own)."""

    given_up = 0

    def __init__(self, decode_chunk: Callable):
        self.decode = decode_chunk

    def take_given_up(self) -> int:
        return 0

    def finish(self) -> int:
        return 0


def new_decoder(engine: str, decap: bool = True, reassemble: bool = True, verify_checksums: bool = False):
    """A decoder for consecutive chunks: ``.decode(chunk)``, ``.take_given_up()``, ``.finish()``."""
    module = engine_module(engine)
    if hasattr(module, "Decoder"):
        if verify_checksums:
            return module.Decoder(decap=decap, reassemble=reassemble, verify_checksums=True)
        return module.Decoder(decap=decap, reassemble=reassemble)
    if verify_checksums:
        raise FlowkitError(f"engine {engine!r} cannot verify checksums; use the fast or dpkt engine")
    return _Stateless(module.decode_chunk)


def _compile(filter: BatchFilter | str | None) -> BatchFilter | None:
    if filter is None or callable(filter):
        return filter
    if isinstance(filter, str):
        from flowkit.filter import compile_filter

        return compile_filter(filter)
    raise TypeError(f"filter must be a callable or a string, not {type(filter).__name__}")


def _quotes_follow_their_icmp(batch: pa.RecordBatch, mask: np.ndarray) -> np.ndarray:
    """The header an ICMP error quotes is part of that packet, not one of its own: its row (right
    after the ICMP row, in the same batch) is kept or dropped with the ICMP row, as tcpdump sees
    the error packet alone."""
    if "tunnel_type" not in batch.schema.names:
        return mask
    quote = np.flatnonzero(to_numpy(batch.column("tunnel_type")) == Tunnel.ICMP_QUOTE)
    if len(quote):
        mask = mask.copy()
        mask[quote] = mask[quote - 1]
    return mask


def _sources(source) -> list:
    if isinstance(source, (list, tuple)):
        return list(source)
    return [source]


class PacketTable:
    """Decoded packets of one or more captures, streamed as Arrow record batches.

    ``for batch in table`` yields ``pa.RecordBatch`` objects with ``PACKET_SCHEMA``;
    each iteration reads the source again (so a file object or stdin can be iterated
    only once). ``.stats`` is the ledger of the last complete iteration; reading it
    before any complete iteration consumes the source once to count.

    ``byte_range=(start, end)``: only the records whose header starts in [start, end) of
    one classic pcap (a batch piece). ``on_batch``: called with each decoded batch before
    the filter (every packet read, e.g. for a progress bar). ``PacketTable.of_batches``
    wraps batches already decoded (counted and filtered alike). ``decap``: also yield the
    packets inside tunnels (rows with ``tunnel_depth`` > 0); ``reassemble``: reassemble IP
    fragments (pending fragments span chunks and files). ``verify_checksums``: check them as
    Zeek without -C (status BAD_CHECKSUM for a wrong IPv4 header checksum, a ``bad_checksum``
    column for TCP/UDP/ICMP; the ledger counts both).
    """

    @property
    def schema(self) -> pa.Schema:
        """PACKET_SCHEMA, plus ``bad_checksum`` when checksums are verified."""
        from flowkit.decode.schema import BAD_CHECKSUM_FIELD

        return PACKET_SCHEMA.append(BAD_CHECKSUM_FIELD) if self.verify_checksums else PACKET_SCHEMA

    def __init__(
        self,
        source: Source | list[Source],
        engine: str = "fast",
        *,
        strict: bool = False,
        chunk_bytes: int | None = DEFAULT_CHUNK_BYTES,
        filter: BatchFilter | str | None = None,
        byte_range: tuple[int, int] | None = None,
        on_batch: Callable[[pa.RecordBatch], None] | None = None,
        decap: bool = True,
        reassemble: bool = True,
        verify_checksums: bool = False,
    ):
        self.sources = _sources(source)
        self.decap = decap
        self.verify_checksums = verify_checksums
        self.reassemble = reassemble
        self.engine = engine
        self.strict = strict
        self.chunk_bytes = chunk_bytes or DEFAULT_CHUNK_BYTES
        self.byte_range = byte_range
        self.on_batch = on_batch
        if engine is not None:
            engine_module(engine)  # an unknown or unavailable engine fails here, before reading
        self._decoder = None
        self._filter = _compile(filter)
        self._ledger: Ledger | None = None
        self._batches = None  # of_batches: decoded batches instead of sources

    @classmethod
    def of_batches(cls, batches, *, filter: BatchFilter | str | None = None,
                   on_batch: Callable[[pa.RecordBatch], None] | None = None) -> "PacketTable":
        """Packet batches already decoded (a RecordBatch, a Table, or an iterable of batches)."""
        table = cls([], engine=None, filter=filter, on_batch=on_batch)
        if isinstance(batches, pa.RecordBatch):
            batches = [batches]
        elif isinstance(batches, pa.Table):
            batches = batches.to_batches()
        table._batches = batches
        return table

    def __repr__(self) -> str:
        if self._batches is not None:
            return "PacketTable(<decoded batches>)"
        names = ", ".join(str(getattr(s, "name", s)) for s in self.sources)
        return f"PacketTable([{names}], engine={self.engine!r})"

    def chunks(self, source) -> Iterator:
        """Framed records of one source (of its byte range when one is given)."""
        from flowkit.capture import read_chunks  # imported late: capture/ imports nothing from here

        start, end = self.byte_range or (None, None)
        return read_chunks(source, chunk_bytes=self.chunk_bytes, strict=self.strict, start=start, end=end)

    _want_payload = False
    _last: tuple | None = None

    def _decoded(self, ledger: Ledger) -> Iterator[tuple[pa.RecordBatch, Payload | None]]:
        """Every decoded batch with its Payload (None unless asked for and the engine records
        it), before the filter; damage and bytes read into ``ledger``."""
        if self._batches is not None:
            for batch in self._batches:
                yield batch, None
            return
        self._decoder = new_decoder(self.engine, self.decap, self.reassemble, self.verify_checksums)
        # engines that also say where each row's payload is (flowkit.decode.payload)
        decode_payload = getattr(self._decoder, "decode_payload", None) if self._want_payload else None
        for source in self.sources:
            for chunk in self.chunks(source):
                ledger.damage.extend(chunk.damage)
                if len(chunk) == 0:
                    continue
                batch, where = decode_payload(chunk) if decode_payload else (self._decoder.decode(chunk), None)
                ledger.bytes_read += int(chunk.caplen.sum(dtype=np.int64))
                # the batch holds copies: let the chunk's buffer go before the next one is read
                # (a Payload keeps it while the pair is in use)
                chunk = None
                yield batch, where

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        ledger = Ledger()
        for batch, where in self._decoded(ledger):
            names = batch.schema.names
            depth = to_numpy(batch.column("tunnel_depth")) if "tunnel_depth" in names else None
            ledger.add_batch(to_numpy(batch.column("status")), to_numpy(batch.column("ip_proto")), depth)
            if "bad_checksum" in names:
                ledger.add_checksum_errors(to_numpy(batch.column("bad_checksum")), to_numpy(batch.column("ip_proto")))
            if self._decoder is not None:
                ledger.give_up_fragments(self._decoder.take_given_up())
            if self.on_batch is not None:
                self.on_batch(batch)
            if self._filter is not None:
                mask = np.asarray(self._filter(batch), dtype=bool)
                if mask.shape != (batch.num_rows,):
                    raise FlowkitError(f"filter returned a mask of shape {mask.shape} for {batch.num_rows} packets")
                mask = _quotes_follow_their_icmp(batch, mask)
                batch = batch.filter(pa.array(mask))
                where = where.filter(mask) if where is not None else None
            self._last = (batch, where)
            yield batch
        if self._decoder is not None:
            ledger.give_up_fragments(self._decoder.finish())
        self._ledger = ledger

    def with_payload(self) -> Iterator[tuple[pa.RecordBatch, Payload | None]]:
        """(batch, Payload) pairs: where each packet's captured payload is (flowkit.decode.payload).

        Engines that do not record it (and decoded batches given directly) yield None in place
        of the Payload. Goes through ``iter(self)``, so a subclass watching the batches still
        sees every one.
        """
        self._want_payload = True
        try:
            for batch in self:
                last = self._last
                yield batch, (last[1] if last is not None and last[0] is batch else None)
        finally:
            self._want_payload = False
            self._last = None

    @property
    def stats(self) -> Ledger:
        """Packet ledger (counts per category, damage); iterates the source once if needed."""
        if self._ledger is None:
            for _ in self:
                pass
        return self._ledger

    def to_arrow(self) -> pa.Table:
        return pa.Table.from_batches(list(self), schema=self.schema)

    def to_pandas(self):
        """DataFrame of all packets, addresses as strings (IPv4 dotted, IPv6 compressed)."""
        table = self.to_arrow()
        for name in ("src_ip", "dst_ip", "tunnel_src_ip", "tunnel_dst_ip"):
            i = table.schema.get_field_index(name)
            table = table.set_column(i, name, addresses_to_strings(table.column(name)))
        return table.to_pandas()


def addresses_to_strings(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """16-byte addresses as text (IPv4 dotted, IPv6 compressed)."""
    from flowkit.decode.addresses import to_strings

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], type=column.type)
    return to_strings(column)


def packets(
    source: Source | list[Source],
    engine: str = "fast",
    *,
    strict: bool = False,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    filter: BatchFilter | str | None = None,
    decap: bool = True,
    reassemble: bool = True,
    verify_checksums: bool = False,
) -> PacketTable:
    """Decoded packets of ``source`` (path, list of paths, ``"-"`` for stdin, or binary file).

    ``engine``: ``"fast"`` (C, default), ``"dpkt"`` (per-packet reference) or
    ``"pyshark"`` (Wireshark's dissectors via tshark). ``filter``: a callable
    ``batch -> bool mask`` or a tcpdump-style expression string, applied after counting.
    ``decap``: also yield the packets inside tunnels (rows with ``tunnel_depth`` > 0);
    False keeps one row per record. ``reassemble``: IP fragments are reassembled into one
    row with the datagram's full length (False: one row per fragment, as tcpdump sees them).
    ``verify_checksums``: as Zeek without -C (docs/packets.md: status BAD_CHECKSUM, column
    ``bad_checksum``).
    """
    return PacketTable(source, engine, strict=strict, chunk_bytes=chunk_bytes, filter=filter, decap=decap,
                       reassemble=reassemble, verify_checksums=verify_checksums)
