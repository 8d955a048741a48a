"""Tell what a capture is from its first bytes: compression, pcap/pcapng, byte order."""
from __future__ import annotations

import struct
from dataclasses import dataclass

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": (False, False),  # little-endian, microseconds
    b"\xa1\xb2\xc3\xd4": (True, False),  # big-endian, microseconds
    b"\x4d\x3c\xb2\xa1": (False, True),  # little-endian, nanoseconds
    b"\xa1\xb2\x3c\x4d": (True, True),  # big-endian, nanoseconds
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
PCAPNG_BOM = {b"\x4d\x3c\x2b\x1a": False, b"\x1a\x2b\x3c\x4d": True}


@dataclass(frozen=True)
class CaptureFormat:
    """What the first bytes say. ``kind``: "pcap", "pcapng", "empty" or "unknown"."""

    kind: str
    compression: str | None = None  # "gzip", "bzip2", "xz", "zstd" or None
    big_endian: bool | None = None  # pcap: file header; pcapng: first section
    nanosecond: bool | None = None  # pcap only
    linktype: int | None = None  # pcap only (FCS bits masked)
    snaplen: int | None = None  # pcap only
    head: bytes = b""  # first (decompressed) bytes, for messages

    def describe(self) -> str:
        comp = f"{self.compression}-compressed " if self.compression else ""
        if self.kind == "pcap":
            res = "ns" if self.nanosecond else "us"
            end = "big" if self.big_endian else "little"
            return f"{comp}pcap ({end}-endian, {res}, linktype {self.linktype})"
        if self.kind == "pcapng":
            return f"{comp}pcapng"
        if self.kind == "empty":
            return f"{comp}empty file"
        return f"{comp}not a capture (first bytes: {self.head[:8].hex(' ') or 'none'})"


def format_of_head(head: bytes, compression: str | None = None) -> CaptureFormat:
    """Classify from the first (up to 24) uncompressed bytes."""
    if not head:
        return CaptureFormat("empty", compression, head=head)
    magic = head[:4]
    if magic in PCAP_MAGICS:
        big, ns = PCAP_MAGICS[magic]
        lt = snap = None
        if len(head) >= 24:
            snap, lt = struct.unpack((">" if big else "<") + "II", head[16:24])
            lt &= 0xFFFF  # upper bits: FCS length and flags, not the link type
        return CaptureFormat("pcap", compression, big, ns, lt, snap, head)
    if magic == PCAPNG_SHB:
        return CaptureFormat("pcapng", compression, PCAPNG_BOM.get(head[8:12]), head=head)
    return CaptureFormat("unknown", compression, head=head)


def sniff_format(source) -> CaptureFormat:
    """Format of a path, ``"-"``-less file object, or bytes (decompressing the start if needed)."""
    from flowkit.capture.stream import compression_of, open_source, _read_full

    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        comp = compression_of(data[:6])
        if comp in ("gzip", "bzip2", "xz"):
            import io

            f, *_ = open_source(io.BytesIO(data))
            try:
                data = _read_full(f, 24)
            except Exception:  # a damaged compressed start still has a known format name
                data = b""
        elif comp == "zstd":
            return CaptureFormat("unknown", comp, head=data[:24])
        return format_of_head(data[:24], comp)
    try:
        f, _name, owned, comp = open_source(source)
    except Exception as e:
        from flowkit.errors import CaptureError

        if isinstance(e, CaptureError) and "zstd" in e.message:
            return CaptureFormat("unknown", "zstd")
        raise
    try:
        try:
            head = _read_full(f, 24)
        except Exception:
            head = b""
        return format_of_head(head, comp)
    finally:
        if owned is not None:
            owned.close()
