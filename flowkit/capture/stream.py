"""Open a capture source as one uncompressed byte stream, read in bounded buffers.

Compression is recognised by magic bytes (never by file name) and decompressed
while streaming, so memory stays bounded whatever the capture size.
"""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import sys
import zlib
from pathlib import Path

import numpy as np

from flowkit._reuse import Buffers
from flowkit.errors import CaptureError

COMPRESSION_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),  # recognised for the message only
)


def compression_of(head: bytes) -> str | None:
    for magic, name in COMPRESSION_MAGIC:
        if head.startswith(magic):
            return name
    return None


def display_name(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        s = os.fspath(source)
        return "<stdin>" if s == "-" else s
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else "<stream>"


class _Prefixed(io.RawIOBase):
    """A raw stream that first returns ``prefix`` (bytes already peeked), then ``f``."""

    def __init__(self, prefix: bytes, f):
        self._prefix = prefix
        self._f = f

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._prefix:
            n = min(len(b), len(self._prefix))
            b[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        readinto = getattr(self._f, "readinto", None)
        if readinto is not None:
            return readinto(b) or 0
        data = self._f.read(len(b))
        n = len(data)
        b[:n] = data
        return n


def _read_full(f, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        b = f.read(n - got)
        if not b:
            break
        parts.append(b)
        got += len(b)
    return b"".join(parts)


def open_source(source):
    """Return ``(fileobj, name, owned, compression)``: an uncompressed binary stream."""
    name = display_name(source)
    owned = False
    if isinstance(source, (str, os.PathLike)):
        if os.fspath(source) == "-":
            raw = sys.stdin.buffer
        else:
            try:
                raw = open(Path(source), "rb")
            except OSError as e:
                raise CaptureError(name, None, f"cannot open: {e.strerror or e}") from None
            owned = True
    else:
        raw = source
    head = _read_full(raw, 6)
    comp = compression_of(head)
    base = _Prefixed(head, raw)
    if comp is None:
        return base, name, raw if owned else None, None
    if comp == "zstd":
        raise CaptureError(name, 0, "zstd-compressed capture: decompress it first (zstd -d)")
    buffered = io.BufferedReader(base, 1 << 16)
    if comp == "gzip":
        f = gzip.GzipFile(fileobj=buffered, mode="rb")
    elif comp == "bzip2":
        f = bz2.BZ2File(buffered, "rb")
    else:
        f = lzma.LZMAFile(buffered, "rb")
    return f, name, raw if owned else None, comp


DECOMPRESS_ERRORS = (EOFError, OSError, zlib.error, lzma.LZMAError, ValueError)


class ByteStream:
    """Bounded buffers over a stream; tracks the stream offset of every buffer.

    ``refill(want)`` returns a fresh uint8 array holding the unconsumed tail of the
    previous buffer plus up to ``want`` new bytes; ``consume(buf, pos)`` marks
    ``buf[:pos]`` done. A buffer is handed out again only once nothing references it, so
    chunks may keep theirs.
    """

    def __init__(self, f, name: str, compression: str | None = None):
        self.f = f
        self.name = name
        self.compression = compression
        self.tail = b""
        self.base = 0  # stream offset of tail[0] (and of buf[0] after refill)
        self.eof = False
        self.error: str | None = None  # decompression failure, reported as damage
        self._pool = Buffers()

    def _readinto(self, view) -> int:
        """Fill some of ``view``; 0 at end of stream or on a decompression error."""
        if self.eof:
            return 0
        try:
            # readinto1 on decompressors: at most one underlying read, so a corrupt or cut
            # compressed stream loses nothing that was decompressed before the error
            n = self.f.readinto1(view) if self.compression else self.f.readinto(view)
        except DECOMPRESS_ERRORS as e:
            self.eof = True
            self.error = f"{self.compression or 'read'} error: {e}"
            return 0
        if not n:
            self.eof = True
        return n or 0

    def refill(self, want: int) -> np.ndarray:
        # uninitialised: every byte handed out is read into it first (a zero-filled
        # bytearray cost a 357 MB memset on the benchmark capture); reused once no chunk
        # references it (flowkit._reuse: no fresh pages to fault in, and still in cache)
        k = len(self.tail)
        buf = self._pool.get(k + want)
        buf[:k] = np.frombuffer(self.tail, np.uint8)
        filled = k
        with memoryview(buf) as view:
            while filled < len(buf) and not self.eof:
                filled += self._readinto(view[filled:])
        self.tail = b""
        return buf[:filled] if filled < len(buf) else buf

    def consume(self, buf, pos: int) -> None:
        self.tail = bytes(buf[pos:])
        self.base += pos
