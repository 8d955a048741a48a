"""Record counts at the column-capacity boundaries: every record written is read back.

The framing kernel fills preallocated columns and reports FULL when they are; the
reader grows them and calls again. A buffer whose records end exactly where the
columns fill must still yield every record (a regression once dropped such chunks
whole). The truth is how many records each file was built with; record sizes and
counts sweep the boundaries for whole-file buffers and for small read buffers.
"""
from __future__ import annotations

import pytest

from flowkit.capture import read_chunks
from pcapgen import pcap_bytes, pcapng_bytes

DATA_SIZES = (14, 44, 60, 112, 200, 1500)


def _count(path, **kw):
    chunks = list(read_chunks(str(path), **kw))
    idx = [int(i) for ch in chunks for i in ch.index]
    return sum(len(ch) for ch in chunks), idx, [d for ch in chunks for d in ch.damage]


def _frame(i: int, size: int) -> bytes:
    return bytes([i & 0xFF]) * size


@pytest.mark.parametrize("size", DATA_SIZES)
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_every_record_count_reads_back(tmp_path, fmt, size):
    path = tmp_path / f"c.{fmt}"
    for k in range(0, 130):
        pkts = [(1.0 + i, _frame(i, size)) for i in range(k)]
        if fmt == "pcap":
            path.write_bytes(pcap_bytes(pkts))
        else:
            path.write_bytes(pcapng_bytes([(1, None)], [(0, t, d) for t, d in pkts]))
        n, idx, damage = _count(path)
        assert (n, damage) == (k, []), f"{fmt} {k} records of {size} bytes read as {n}"
        assert idx == list(range(k))


@pytest.mark.parametrize("chunk_bytes", [256, 1000, 4096])
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_small_read_buffers_lose_nothing(tmp_path, fmt, chunk_bytes):
    path = tmp_path / f"c.{fmt}"
    for size in (14, 60, 97):
        for k in (1, 17, 31, 32, 33, 64, 65, 200, 513):
            pkts = [(1.0 + i, _frame(i, size)) for i in range(k)]
            if fmt == "pcap":
                path.write_bytes(pcap_bytes(pkts))
            else:
                path.write_bytes(pcapng_bytes([(1, None)], [(0, t, d) for t, d in pkts]))
            n, idx, damage = _count(path, chunk_bytes=chunk_bytes)
            assert (n, damage) == (k, []), f"{fmt} {k}x{size} B, buffer {chunk_bytes}: {n}"
            assert idx == list(range(k))
