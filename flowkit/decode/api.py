"""``flowkit.packets(source, engine=...)``: the packet table users and flows/ consume.

A ``PacketTable`` is lazy: nothing is read until it is iterated, and iterating streams
one ``pa.RecordBatch`` per capture chunk, so memory stays bounded by the chunk size
whatever the capture size. Every packet read is counted in the ledger (``.stats``)
before the optional filter drops any, so filtered packets are never lost silently.
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from typing import BinaryIO, Union

import numpy as np
import pyarrow as pa

from flowkit.decode._arrow import to_numpy
from flowkit.decode.schema import PACKET_SCHEMA
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


def engine_decoder(engine: str) -> Callable:
    """The ``decode_chunk`` function of a named engine (one-line error for unknown names)."""
    if engine not in ENGINES:
        raise FlowkitError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    module = importlib.import_module(ENGINES[engine])
    check = getattr(module, "check_available", None)
    if check is not None:
        check()  # e.g. pyshark needs tshark: fail before reading anything
    return module.decode_chunk


def _compile(filter: BatchFilter | str | None) -> BatchFilter | None:
    if filter is None or callable(filter):
        return filter
    if isinstance(filter, str):
        try:
            module = importlib.import_module("flowkit.filter")
        except ImportError:
            raise FlowkitError("string filters need flowkit.filter, which is not available") from None
        return module.compile_filter(filter)
    raise TypeError(f"filter must be a callable or a string, not {type(filter).__name__}")


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
    """

    schema = PACKET_SCHEMA

    def __init__(
        self,
        source: Source | list[Source],
        engine: str = "fast",
        *,
        strict: bool = False,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        filter: BatchFilter | str | None = None,
    ):
        self.sources = _sources(source)
        self.engine = engine
        self.strict = strict
        self.chunk_bytes = chunk_bytes
        self._decode = engine_decoder(engine)
        self._filter = _compile(filter)
        self._ledger: Ledger | None = None

    def __repr__(self) -> str:
        names = ", ".join(str(getattr(s, "name", s)) for s in self.sources)
        return f"PacketTable([{names}], engine={self.engine!r})"

    def chunks(self, source) -> Iterator:
        """Framed records of one source (a subclass may frame differently, e.g. a byte range)."""
        from flowkit.capture import read_chunks  # imported late: capture/ imports nothing from here

        return read_chunks(source, chunk_bytes=self.chunk_bytes, strict=self.strict)

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        ledger = Ledger()
        for source in self.sources:
            for chunk in self.chunks(source):
                ledger.damage.extend(chunk.damage)
                if len(chunk) == 0:
                    continue
                batch = self._decode(chunk)
                ledger.add_batch(
                    to_numpy(batch.column("status")),
                    to_numpy(batch.column("ip_proto")),
                )
                ledger.bytes_read += int(chunk.caplen.sum(dtype=np.int64))
                # the batch holds copies: let the chunk's buffer go before the next one is read
                chunk = None
                if self._filter is not None:
                    mask = np.asarray(self._filter(batch), dtype=bool)
                    if mask.shape != (batch.num_rows,):
                        raise FlowkitError(
                            f"filter returned a mask of shape {mask.shape} for {batch.num_rows} packets"
                        )
                    batch = batch.filter(pa.array(mask))
                yield batch
        self._ledger = ledger

    @property
    def stats(self) -> Ledger:
        """Packet ledger (counts per category, damage); iterates the source once if needed."""
        if self._ledger is None:
            for _ in self:
                pass
        return self._ledger

    def to_arrow(self) -> pa.Table:
        return pa.Table.from_batches(list(self), schema=PACKET_SCHEMA)

    def to_pandas(self):
        """DataFrame of all packets, ``src_ip``/``dst_ip`` as strings (IPv4 dotted, IPv6 compressed)."""
        table = self.to_arrow()
        for name in ("src_ip", "dst_ip"):
            i = table.schema.get_field_index(name)
            table = table.set_column(i, name, addresses_to_strings(table.column(name)))
        return table.to_pandas()


def addresses_to_strings(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """16-byte addresses as text, using the shared converter when present."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], type=column.type)
    try:
        from flowkit.decode.addresses import to_strings
    except ImportError:
        return _to_strings_slow(column)
    return to_strings(column)


def _to_strings_slow(column: pa.Array) -> pa.Array:
    import ipaddress

    values = column.to_pylist()
    unique = {}
    for v in values:
        if v not in unique:
            a = ipaddress.IPv6Address(v)
            unique[v] = str(a.ipv4_mapped) if a.ipv4_mapped else str(a)
    return pa.array([unique[v] for v in values], type=pa.string())


def packets(
    source: Source | list[Source],
    engine: str = "fast",
    *,
    strict: bool = False,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    filter: BatchFilter | str | None = None,
) -> PacketTable:
    """Decoded packets of ``source`` (path, list of paths, ``"-"`` for stdin, or binary file).

    ``engine``: ``"fast"`` (C, default), ``"dpkt"`` (per-packet reference) or
    ``"pyshark"`` (Wireshark's dissectors via tshark). ``filter``: a callable
    ``batch -> bool mask`` or a tcpdump-style expression string, applied after counting.
    """
    return PacketTable(source, engine, strict=strict, chunk_bytes=chunk_bytes, filter=filter)
