"""Damaged captures: packets before the damage kept, damage reported with file and offset, strict raises."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowkit.capture import read_chunks
from flowkit.errors import CaptureError
from pcapgen import (
    pcap_bytes,
    pcap_header,
    pcap_record,
    pcapng_block,
    pcapng_bytes,
    pcapng_epb,
    pcapng_idb,
    pcapng_shb,
)

GOOD = [(1_600_000_000 + i, bytes([i]) * (20 + i)) for i in range(5)]


def good_pcap() -> bytes:
    return pcap_bytes(GOOD)


def check(tmp_path, raw: bytes, n_good: int, offset: int, words: str, name="d.pcap"):
    """Non-strict: ``n_good`` packets then one Damage at ``offset``; strict: CaptureError."""
    p = tmp_path / name
    p.write_bytes(raw)
    chunks = list(read_chunks(p))
    pkts = [c.packet_bytes(i) for c in chunks for i in range(len(c))]
    damage = [d for c in chunks for d in c.damage]
    assert pkts == [d for _, d in GOOD[:n_good]]
    assert len(damage) == 1, damage
    d = damage[0]
    assert (d.path, d.offset) == (str(p), offset), str(d)
    assert words in d.message, d.message
    assert chunks[-1].damage == [d]  # reported in the chunk where it happened
    with pytest.raises(CaptureError) as ei:
        list(read_chunks(p, strict=True))
    assert (ei.value.path, ei.value.offset) == (str(p), offset)
    assert str(p) in str(ei.value) and f"offset {offset}" in str(ei.value)
    # tiny chunks find the same damage at the same offset
    small = [d for c in read_chunks(p, chunk_bytes=7) for d in c.damage]
    assert [(x.offset, x.message) for x in small] == [(d.offset, d.message)]
    return d


def rec_offset(i: int) -> int:
    return 24 + sum(16 + len(d) for _, d in GOOD[:i])


def test_pcap_cut_inside_record_header(tmp_path):
    raw = good_pcap() + pcap_record(1_600_000_010, b"x" * 30)[:9]
    check(tmp_path, raw, 5, rec_offset(5), "inside a record header")


def test_pcap_cut_inside_record_data(tmp_path):
    raw = good_pcap()[: rec_offset(4) + 16 + 5]
    check(tmp_path, raw, 4, rec_offset(4), "record cut")


def test_pcap_caplen_absurd(tmp_path):
    raw = bytearray(good_pcap())
    struct.pack_into("<I", raw, rec_offset(3) + 8, 0xFFFFFFF0)  # would be 4 GiB
    check(tmp_path, bytes(raw), 3, rec_offset(3), "caplen 4294967280")


def test_pcap_caplen_far_beyond_snaplen(tmp_path):
    raw = pcap_bytes(GOOD, snaplen=128) + pcap_record(1_600_000_009, b"y" * 70_000)
    check(tmp_path, raw, 5, rec_offset(5), "snaplen 128")


def test_pcap_record_length_beyond_file(tmp_path):
    raw = good_pcap() + pcap_record(1_600_000_009, b"z" * 10, caplen=5000)
    check(tmp_path, raw, 5, rec_offset(5), "caplen 5000")


def test_pcap_cut_inside_file_header(tmp_path):
    p = tmp_path / "h.pcap"
    p.write_bytes(pcap_header()[:13])
    chunks = list(read_chunks(p))
    assert sum(map(len, chunks)) == 0
    assert [(d.offset, "file header" in d.message) for c in chunks for d in c.damage] == [(0, True)]
    with pytest.raises(CaptureError):
        list(read_chunks(p, strict=True))


def test_truncated_gzip(tmp_path):
    raw = gzip.compress(pcap_bytes([(1.0 + i, b"p" * 100) for i in range(200)]))
    p = tmp_path / "cut.pcap.gz"
    p.write_bytes(raw[: len(raw) // 2])
    chunks = list(read_chunks(p))
    n = sum(map(len, chunks))
    damage = [d for c in chunks for d in c.damage]
    assert 0 < n < 200 and len(damage) == 1
    assert damage[0].offset == 24 + n * 116  # the first record not complete
    with pytest.raises(CaptureError):
        list(read_chunks(p, strict=True))


# ------------------------------------------------------------------- pcapng
NG_GOOD = [(0, 1_600_000_000 + i, bytes([i]) * (20 + i)) for i in range(5)]


def ng_prefix(n: int) -> bytes:
    return pcapng_shb() + pcapng_idb(1) + b"".join(pcapng_epb(*p) for p in NG_GOOD[:n])


@pytest.mark.parametrize(
    "case,words",
    [
        ("len_not_mult4", "multiple of 4"),
        ("len_too_small", "bad length 20"),
        ("trailer", "trailing length"),
        ("beyond_file", "past the end"),
        ("absurd", "absurd"),
        ("iface", "interface 7"),
        ("caplen_vs_block", "does not fit"),
        ("unknown_trailer", "trailing length"),
        ("cut_header", "inside a block header"),
    ],
)
def test_pcapng_block_damage(tmp_path, case, words):
    good = ng_prefix(3)
    bad = bytearray(pcapng_epb(0, 1_600_000_100, b"q" * 40))
    if case == "len_not_mult4":
        struct.pack_into("<I", bad, 4, len(bad) + 2)
    elif case == "len_too_small":
        struct.pack_into("<I", bad, 4, 20)
    elif case == "trailer":
        struct.pack_into("<I", bad, len(bad) - 4, 8)
    elif case == "beyond_file":
        struct.pack_into("<I", bad, 4, len(bad) + 400)
    elif case == "absurd":
        struct.pack_into("<I", bad, 4, 0xFFFFFFFC)
    elif case == "iface":
        struct.pack_into("<I", bad, 8, 7)
    elif case == "caplen_vs_block":
        struct.pack_into("<I", bad, 20, 41)
    elif case == "unknown_trailer":
        bad = bytearray(pcapng_block(0x0BAD, b"u" * 16))
        struct.pack_into("<I", bad, len(bad) - 4, 4)
    elif case == "cut_header":
        bad = bad[:7]
    global GOOD
    saved = GOOD
    GOOD = [(t, d) for _, t, d in NG_GOOD]
    try:
        after = b"" if case == "cut_header" else pcapng_epb(0, 1_600_000_200, b"after")
        check(tmp_path, good + bytes(bad) + after, 3, len(good),
              words, name="d.pcapng")
    finally:
        GOOD = saved


def test_pcapng_huge_unknown_block_does_not_allocate(tmp_path):
    raw = ng_prefix(2) + struct.pack("<II", 0x0BAD, 60 << 20) + b"\0" * 100
    p = tmp_path / "huge.pcapng"
    p.write_bytes(raw)
    chunks = list(read_chunks(p))
    assert sum(map(len, chunks)) == 2
    assert max(c.data.nbytes for c in chunks) < 1 << 20
    assert [d.offset for c in chunks for d in c.damage] == [len(ng_prefix(2))]


def test_pcapng_bad_byte_order_magic(tmp_path):
    raw = bytearray(ng_prefix(2))
    second = pcapng_shb()
    raw += second[:8] + b"\x01\x02\x03\x04" + second[12:]
    p = tmp_path / "bom.pcapng"
    p.write_bytes(bytes(raw))
    chunks = list(read_chunks(p))
    assert sum(map(len, chunks)) == 2
    assert [d.offset for c in chunks for d in c.damage] == [len(ng_prefix(2))]


# --------------------------------------------------------------- properties
def _consistent(chunks):
    for c in chunks:
        n = len(c)
        for col in (c.caplen, c.wirelen, c.ts, c.linktype, c.iface, c.file_offset, c.index):
            assert len(col) == n
        if n:
            assert int((c.start.astype(np.int64) + c.caplen).max()) <= c.data.shape[0]
            assert c.start.min() >= 0


def _read_or_error(raw: bytes, tmp_path, chunk_bytes):
    p = tmp_path / "fuzz.bin"
    p.write_bytes(raw)
    try:
        chunks = list(read_chunks(p, chunk_bytes=chunk_bytes))
    except CaptureError as e:
        assert "\n" not in str(e) and str(p) in str(e)
        return None
    _consistent(chunks)
    idx = np.concatenate([c.index for c in chunks] or [np.zeros(0, np.int64)])
    assert idx.tolist() == list(range(len(idx)))
    return chunks


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(st.binary(max_size=400), st.sampled_from([1, 64, 1 << 16]))
def test_any_bytes_give_records_or_capture_error(tmp_path, raw, chunk_bytes):
    _read_or_error(raw, tmp_path, chunk_bytes)


SEEDS = [good_pcap(), pcap_bytes(GOOD, nanosecond=True, big_endian=True),
         pcapng_bytes([(1, 9), (113, None)], [(i % 2, 1.5 + i, b"k" * i) for i in range(6)]),
         gzip.compress(good_pcap())]


@FUZZ
@given(st.sampled_from(range(len(SEEDS))), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)),
                                                     max_size=6), st.integers(0, 10_000),
       st.sampled_from([1, 50, 1 << 16]))
def test_mutated_captures_give_records_or_capture_error(tmp_path, seed, flips, cut, chunk_bytes):
    raw = bytearray(SEEDS[seed])
    for pos, val in flips:
        raw[pos % len(raw)] = val
    _read_or_error(bytes(raw[: max(cut, 1)] if cut < len(raw) else raw), tmp_path, chunk_bytes)
