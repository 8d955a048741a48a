"""Capture formats: pcap (byte orders, us/ns), pcapng (sections, interfaces, blocks), compression, sources."""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import struct
import subprocess
import sys

import numpy as np
import pytest

from flowkit.capture import read_chunks, sniff_format
from pcapgen import (
    pcap_bytes,
    pcapng_block,
    pcapng_bytes,
    pcapng_epb,
    pcapng_idb,
    pcapng_pb,
    pcapng_shb,
    pcapng_spb,
    write_pcap,
    write_pcapng,
)

COLS = ("start", "caplen", "wirelen", "ts", "linktype", "iface", "file_offset", "index")


def read_all(source, **kw):
    """Concatenated columns, packet bytes and damage of a whole read."""
    chunks = list(read_chunks(source, **kw))
    cols = {c: np.concatenate([getattr(ch, c) for ch in chunks] or [np.zeros(0, np.int64)]) for c in COLS}
    pkts = [ch.packet_bytes(i) for ch in chunks for i in range(len(ch))]
    damage = [d for ch in chunks for d in ch.damage]
    return cols, pkts, damage, chunks


def payloads(n, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, int(rng.integers(0, 200)), dtype=np.uint8).tobytes() for _ in range(n)]


TS0 = 1_700_000_000_123_456_789  # ns


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path, big_endian, nanosecond):
    data = payloads(50)
    ts = [TS0 + i * 1_234_567 for i in range(50)]
    pkts = [(t, d, len(d) + 7) for t, d in zip(ts, data)]
    path = write_pcap(tmp_path / "x.pcap", pkts, linktype=101, nanosecond=nanosecond, big_endian=big_endian)
    cols, got, damage, _ = read_all(path)
    assert damage == []
    assert got == data
    expected_ts = [t if nanosecond else t // 1000 * 1000 for t in ts]
    assert cols["ts"].tolist() == expected_ts
    assert cols["wirelen"].tolist() == [len(d) + 7 for d in data]
    assert cols["caplen"].tolist() == [len(d) for d in data]
    assert set(cols["linktype"].tolist()) == {101}
    assert cols["index"].tolist() == list(range(50))
    # file_offset: header of record i = 24 + sum of previous (16 + len)
    offs = 24 + np.concatenate([[0], np.cumsum([16 + len(d) for d in data])[:-1]])
    assert cols["file_offset"].tolist() == offs.tolist()
    fmt = sniff_format(path)
    assert (fmt.kind, fmt.big_endian, fmt.nanosecond, fmt.linktype) == ("pcap", big_endian, nanosecond, 101)


def test_pcap_linktype_fcs_bits_masked(tmp_path):
    raw = bytearray(pcap_bytes([(1.0, b"abc")], linktype=1))
    struct.pack_into("<I", raw, 20, 1 | (1 << 26) | (4 << 28))  # F bit + FCS length 4
    p = tmp_path / "fcs.pcap"
    p.write_bytes(bytes(raw))
    cols, got, damage, _ = read_all(p)
    assert cols["linktype"].tolist() == [1] and got == [b"abc"] and damage == []


def test_header_only_is_a_capture_with_no_packets(tmp_path):
    # (a zero-byte file is an error: tests/test_empty_capture.py)
    hdr = write_pcap(tmp_path / "hdr.pcap", [])
    ng = tmp_path / "hdr.pcapng"
    ng.write_bytes(pcapng_shb() + pcapng_idb(1))
    for p in (hdr, ng):
        cols, got, damage, _ = read_all(p)
        assert got == [] and damage == [], p


def test_pcapng_sections_interfaces_and_resolutions(tmp_path):
    # section 1 (little-endian): us, ns, 2^-20 and 10^-3 + offset; section 2 (big-endian): two more
    s1_ifaces = [(1, None, None), (113, 9, None), (101, ("2", 20), None), (1, 3, 100)]
    s1 = [(0, TS0, b"a" * 10), (1, TS0 + 1, b"b" * 11), (2, TS0 + 1907, b"c"),
          (3, TS0 + 5_000_000, b"dddd"), (1, TS0 + 999, b"e" * 63)]
    s2_ifaces = [(228, 9, None), (1, 6, None)]
    s2 = [(1, TS0 + 10_000, b"f" * 5), (0, TS0 + 20_001, b"g" * 1500)]
    raw = pcapng_bytes(s1_ifaces, s1) + pcapng_bytes(s2_ifaces, s2, big_endian=True)
    p = tmp_path / "multi.pcapng"
    p.write_bytes(raw)
    cols, got, damage, _ = read_all(p)
    assert damage == []
    assert got == [d for _, _, d in s1] + [d for _, _, d in s2]
    assert cols["iface"].tolist() == [0, 1, 2, 3, 1, 1, 0]
    assert cols["linktype"].tolist() == [1, 113, 101, 1, 113, 1, 228]
    t2 = TS0 + 1907
    # truth from the resolution each interface has: us truncates, ms truncates, 2^-20 rounds down
    units_2 = (t2 << 20) // 10**9
    ns_2 = (units_2 >> 20) * 10**9 + (((units_2 & (2**20 - 1)) * 10**9) >> 20)
    expected = [TS0 // 1000 * 1000, TS0 + 1, ns_2, (TS0 + 5_000_000) // 10**6 * 10**6 + 100 * 10**9,
                TS0 + 999, (TS0 + 10_000) // 1000 * 1000, TS0 + 20_001]
    assert cols["ts"].tolist() == expected
    assert abs(ns_2 - t2) < 1000
    assert cols["index"].tolist() == list(range(7))


@pytest.mark.parametrize("big_endian", [False, True])
def test_pcapng_pb_and_spb(tmp_path, big_endian):
    raw = (pcapng_shb(big_endian) + pcapng_idb(1, 9, big_endian=big_endian, snaplen=8)
           + pcapng_pb(0, TS0, b"x" * 8, 9, big_endian)
           + pcapng_spb(b"y" * 8, big_endian, wirelen=100)  # truncated by snaplen 8
           + pcapng_spb(b"z" * 6, big_endian))  # padded to 8 in the block, wirelen 6
    p = tmp_path / "spb.pcapng"
    p.write_bytes(raw)
    cols, got, damage, _ = read_all(p)
    assert damage == []
    assert got == [b"x" * 8, b"y" * 8, b"z" * 6]
    assert cols["wirelen"].tolist() == [8, 100, 6]
    # SPB has no timestamp: it takes the previous packet's
    assert cols["ts"].tolist() == [TS0, TS0, TS0]
    assert sniff_format(p).big_endian is big_endian  # the section's byte order was read, not assumed


def test_pcapng_unknown_blocks_skipped(tmp_path):
    raw = (pcapng_shb() + pcapng_block(0x0BAD, b"q" * 37) + pcapng_idb(1)
           + pcapng_block(5, b"\0" * 20)  # interface statistics
           + pcapng_epb(0, TS0, b"hello") + pcapng_block(0x40000BAD, b"custom" * 100)
           + pcapng_epb(0, TS0 + 1000, b"world"))
    p = tmp_path / "unk.pcapng"
    p.write_bytes(raw)
    cols, got, damage, _ = read_all(p)
    assert got == [b"hello", b"world"] and damage == []
    epb1 = raw.index(pcapng_epb(0, TS0, b"hello"))
    assert cols["file_offset"][0] == epb1


@pytest.mark.parametrize("comp", ["gzip", "bzip2", "xz"])
def test_compressed_by_magic_not_name(tmp_path, comp):
    data = payloads(300, seed=3)
    raw = pcap_bytes([(TS0 + i, d) for i, d in enumerate(data)], nanosecond=True)
    packed = {"gzip": gzip.compress, "bzip2": bz2.compress, "xz": lzma.compress}[comp](raw)
    p = tmp_path / "misleading.pcapng"  # the name lies on purpose
    p.write_bytes(packed)
    cols, got, damage, _ = read_all(p, chunk_bytes=1000)
    assert got == data and damage == []
    assert cols["ts"].tolist() == [TS0 + i for i in range(300)]
    assert sniff_format(p).compression == comp and sniff_format(p).kind == "pcap"
    assert sniff_format(packed).compression == comp


def test_pcapng_gzip(tmp_path):
    raw = pcapng_bytes([(1, 9)], [(0, TS0 + i, bytes([i]) * i) for i in range(20)])
    p = tmp_path / "x.gz"
    p.write_bytes(gzip.compress(raw))
    _, got, damage, _ = read_all(p, chunk_bytes=64)
    assert got == [bytes([i]) * i for i in range(20)] and damage == []


def test_file_object_and_stdin(tmp_path):
    data = payloads(100, seed=5)
    raw = pcap_bytes([(TS0 + i * 1000, d) for i, d in enumerate(data)])
    _, got, _, chunks = read_all(io.BytesIO(raw))
    assert got == data
    p = tmp_path / "in.pcap"
    p.write_bytes(gzip.compress(raw))
    code = ("import sys; from flowkit.capture import read_chunks\n"
            "n = 0; s = 0\n"
            "for c in read_chunks('-', chunk_bytes=512):\n"
            "    n += len(c); s += int(c.caplen.sum()); assert c.path == '<stdin>'\n"
            "print(n, s)")
    with open(p, "rb") as f:
        out = subprocess.run([sys.executable, "-c", code], stdin=f, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(len(data)), str(sum(map(len, data)))]


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_tiny_chunks_give_identical_columns(tmp_path, kind):
    data = payloads(200, seed=7)
    if kind == "pcap":
        p = write_pcap(tmp_path / "c.pcap", [(TS0 + i, d) for i, d in enumerate(data)], nanosecond=True)
    else:
        p = write_pcapng(tmp_path / "c.pcapng", [(1, 9), (105, 6)],
                         [(i % 2, TS0 + i * 1000, d) for i, d in enumerate(data)])
    whole, got_w, _, chunks_w = read_all(p)
    assert len(chunks_w) == 1
    for cb in (1, 17, 300, 4096):
        cols, got, damage, chunks = read_all(p, chunk_bytes=cb)
        assert damage == [] and got == got_w == data
        for c in COLS:
            if c != "start":  # start is relative to each chunk's buffer
                assert cols[c].tolist() == whole[c].tolist(), (cb, c)
        # bounded memory: every buffer is about chunk_bytes (plus at most one record)
        assert max(ch.data.nbytes for ch in chunks) <= cb + 16 + 200 + 64


def test_not_a_capture(tmp_path):
    from flowkit.errors import CaptureError

    p = tmp_path / "notes.pcap"
    p.write_bytes(b"hello world, not a capture")
    with pytest.raises(CaptureError) as ei:
        list(read_chunks(p))
    msg = str(ei.value)
    assert "notes.pcap" in msg and "68 65 6c 6c 6f" in msg and "\n" not in msg
    assert sniff_format(p).kind == "unknown"
    with pytest.raises(CaptureError, match="cannot open"):
        list(read_chunks(tmp_path / "missing.pcap"))


@pytest.mark.parametrize("compress", [False, True])
def test_memory_bounded_by_chunk_bytes(tmp_path, compress):
    """Reading a capture many times larger than chunk_bytes keeps peak memory near chunk_bytes."""
    import tracemalloc

    rng = np.random.default_rng(9)
    block = pcap_bytes([(TS0 + i, rng.integers(0, 256, 1000, np.uint8).tobytes()) for i in range(2000)])
    body = block[24:]
    p = tmp_path / "big.pcap"
    with open(p, "wb") as f:
        f.write(block[:24])
        for _ in range(12):  # ~24 MB, 24000 records
            f.write(body)
    if compress:
        p.write_bytes(gzip.compress(p.read_bytes(), compresslevel=1))
    chunk_bytes = 1 << 20
    list(read_chunks(io.BytesIO(gzip.compress(block))))  # load the compiled kernels first
    tracemalloc.start()
    try:
        n = 0
        for c in read_chunks(p, chunk_bytes=chunk_bytes):
            n += len(c)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == 24000
    # two chunks alive (the caller's and the one being built), columns, decompressor state
    assert peak < 5 * chunk_bytes, peak


@pytest.mark.parametrize("kind", ["pcap", "pcapng-spb", "pcapng-epb"])
def test_many_tiny_records_in_one_buffer(tmp_path, kind):
    """Records far smaller than the column estimate: columns grow, nothing lost."""
    n = 5000
    if kind == "pcap":
        p = write_pcap(tmp_path / "t.pcap", [(TS0 + i, b"") for i in range(n)], nanosecond=True)
        step, first = 16, 24
    else:
        block = kind.split("-")[1]
        p = write_pcapng(tmp_path / "t.pcapng", [(1, 9)], [(0, TS0 + i, b"") for i in range(n)], block=block)
        step = 16 if block == "spb" else 32
        first = p.stat().st_size - n * step
    cols, got, damage, chunks = read_all(p)
    assert len(chunks) == 1 and damage == [] and got == [b""] * n
    assert cols["file_offset"].tolist() == [first + i * step for i in range(n)]
    if kind != "pcapng-spb":
        assert cols["ts"].tolist() == [TS0 + i for i in range(n)]
