"""Byte-range reading of one classic pcap: the ranges' union is exactly the whole-file read."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from flowkit.capture import read_chunks, split_ranges
from flowkit.errors import CaptureError
from pcapgen import pcap_bytes, pcap_record, pcapng_bytes, write_pcap

T0 = 1_650_000_000_000_000_000


def records(source, **kw):
    """(file_offset, ts, caplen, wirelen, bytes) of every record read."""
    out = []
    for c in read_chunks(source, **kw):
        assert c.damage == []
        for i in range(len(c)):
            out.append((int(c.file_offset[i]), int(c.ts[i]), int(c.caplen[i]), int(c.wirelen[i]),
                        c.packet_bytes(i)))
    return out


def adversarial_packets(n, nanosecond, big_endian, seed):
    """Packets whose payloads hold fake record headers and whole fake pcap record chains."""
    rng = np.random.default_rng(seed)
    pkts = []
    t = T0
    for i in range(n):
        t += int(rng.integers(0, 3_000_000))
        kind = i % 4
        if kind == 0:  # a chain of small, perfectly plausible fake records
            fake = b"".join(pcap_record(t // 10**9 * 10**9 + j, bytes(rng.integers(0, 256, 8, np.uint8)),
                                        nanosecond, big_endian) for j in range(int(rng.integers(1, 20))))
            body = bytes(rng.integers(0, 256, int(rng.integers(0, 30)), np.uint8)) + fake
        elif kind == 1:  # a whole embedded pcap file (header + records)
            body = pcap_bytes([(t + j, b"E" * 30) for j in range(12)], nanosecond=nanosecond,
                              big_endian=big_endian)
        elif kind == 2:  # random bytes of random size, sometimes large
            size = int(rng.choice([0, 1, 60, 1500, 9000]))
            body = bytes(rng.integers(0, 256, size, np.uint8))
        else:  # zeros: every offset looks like a caplen-0 header with time 0
            body = b"\0" * int(rng.integers(16, 400))
        pkts.append((t, body))
    return pkts


@pytest.mark.parametrize("nanosecond,big_endian", [(False, False), (True, True)])
def test_ranges_union_equals_whole_file(tmp_path, nanosecond, big_endian):
    pkts = adversarial_packets(1500, nanosecond, big_endian, seed=11)
    p = write_pcap(tmp_path / "big.pcap", pkts, nanosecond=nanosecond, big_endian=big_endian)
    whole = records(p)
    assert [r[4] for r in whole] == [d for _, d in pkts]
    size = p.stat().st_size
    for n in (1, 2, 3, 7, 16):
        ranges = split_ranges(p, n)
        assert ranges[0][0] == 0 and ranges[-1][1] == size
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        got = []
        for a, b in ranges:
            part = records(p, start=a, end=b, chunk_bytes=1 << 14)
            assert all(a <= r[0] < b for r in part)
            got += part
        assert got == whole, n
    # arbitrary split points, including inside fake headers and inside record headers
    rng = np.random.default_rng(3)
    cuts = sorted({0, size, *rng.integers(24, size, 40).tolist(), *[r[0] + k for r in whole[::97] for k in (1, 5)]})
    got = []
    for a, b in zip(cuts, cuts[1:]):
        got += records(p, start=a, end=b)
    assert got == whole


def test_range_boundaries_exact(tmp_path):
    pkts = [(T0 + i, bytes([i % 256]) * 50) for i in range(100)]
    p = write_pcap(tmp_path / "r.pcap", pkts, nanosecond=True)
    off = [24 + i * 66 for i in range(100)]
    # a range starting exactly on a header includes it, one byte later excludes it
    assert [r[0] for r in records(p, start=off[10], end=off[12])] == off[10:12]
    assert [r[0] for r in records(p, start=off[10] + 1, end=off[12] + 1)] == off[11:13]
    assert records(p, start=off[10] + 1, end=off[11]) == []
    idx = [int(i) for c in read_chunks(p, start=off[50], end=off[60]) for i in c.index]
    assert idx == list(range(10))  # index counts from 0 within a range


def test_ranges_refuse_compressed_and_pcapng(tmp_path):
    import gzip

    g = tmp_path / "x.pcap.gz"
    g.write_bytes(gzip.compress(pcap_bytes([(1.0, b"a")])))
    ng = tmp_path / "x.pcapng"
    ng.write_bytes(pcapng_bytes([(1, None)], [(0, 1.0, b"a")]))
    for p in (g, ng):
        with pytest.raises(CaptureError, match="uncompressed classic pcap"):
            split_ranges(p, 2)
        with pytest.raises(CaptureError):
            list(read_chunks(p, start=100, end=200))


def test_range_ending_in_cut_record_reports_damage(tmp_path):
    raw = pcap_bytes([(T0 + i, b"x" * 40) for i in range(300)], nanosecond=True)
    p = tmp_path / "cut.pcap"
    p.write_bytes(raw[:-10])
    (a, b), (c, d) = split_ranges(p, 2)
    first = list(read_chunks(p, start=a, end=b))
    last = list(read_chunks(p, start=c, end=d))
    n = sum(map(len, first)) + sum(map(len, last))
    assert n == 299
    assert [x.offset for ch in last for x in ch.damage] == [24 + 299 * 56]


def test_ranges_on_synthetic_whole_second_timestamps(tmp_path):
    """Timestamps 1, 2, 3 s and caplen == wirelen: the header shifted by 4 bytes
    (seconds = 0 us field, us = caplen, caplen = wirelen) is plausible forever, so ranges
    starting in the first bytes of a header must still find the real records."""
    rng = np.random.default_rng(5)
    pkts = [(float(1 + i), bytes(rng.integers(0, 256, int(rng.integers(40, 120)), np.uint8)))
            for i in range(6000)]
    p = write_pcap(tmp_path / "synthetic.pcap", pkts)
    whole = records(p)
    offs = [r[0] for r in whole]
    cuts = sorted({0, p.stat().st_size, *[offs[i] + k for i in range(100, 6000, 450) for k in (1, 2, 3, 4, 5)]})
    got = []
    for a, b in zip(cuts, cuts[1:]):
        got += records(p, start=a, end=b)
    assert got == whole
