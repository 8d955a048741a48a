"""Every corpus capture frames completely, and agrees with tshark packet for packet."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from conftest import CORPUS, corpus_files, require_tool
from flowkit.capture import read_chunks, sniff_format

pytestmark = pytest.mark.corpus

FILES = corpus_files("zeek/traces") + corpus_files("nfstream")


def _read(path, **kw):
    chunks = list(read_chunks(path, **kw))
    return chunks, [d for c in chunks for d in c.damage]


def _tshark(path, *fields):
    tshark = require_tool("tshark")
    args = [tshark, "-r", str(path), "-T", "fields"]
    for f in fields:
        args += ["-e", f]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    return [line.split("\t") for line in out.stdout.splitlines()]


def _epoch_ns(text: str) -> int:
    """tshark's frame.time_epoch ("sec.fraction") as exact integer nanoseconds."""
    sec, _, frac = text.partition(".")
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


def _sample():
    """The smallest file of each kind (format, compression, byte order, resolution),
    then of each link type, so every reader path is compared yet the test stays fast."""
    by_size = sorted(FILES, key=lambda p: p.stat().st_size)
    formats = {p: sniff_format(p) for p in by_size}
    picked, kinds = [], set()
    for p, f in formats.items():
        key = (f.kind, f.compression, f.big_endian, f.nanosecond)
        if key not in kinds:
            kinds.add(key)
            picked.append(p)
    links = set()
    for p, f in formats.items():
        if len(picked) >= 12:
            break
        if f.linktype is not None and f.linktype not in links and p not in picked:
            links.add(f.linktype)
            picked.append(p)
    return picked


def test_corpus_present_and_reads_without_damage(corpus):
    assert len(FILES) > 100
    total = 0
    for p in FILES:
        chunks, damage = _read(p)
        assert damage == [], damage
        for c in chunks:
            assert c.path == str(p)
            if len(c):
                assert int((c.start + c.caplen).max()) <= c.data.shape[0]
        total += sum(map(len, chunks))
    assert total > 10_000


@pytest.mark.parametrize("path", _sample(), ids=lambda p: str(p.relative_to(CORPUS)))
def test_corpus_sample_matches_tshark_fields(corpus, path):
    """Count, exact ns timestamps, lengths and interface of each packet equal tshark's."""
    rows = _tshark(path, "frame.time_epoch", "frame.len", "frame.cap_len", "frame.interface_id")
    chunks, damage = _read(path, chunk_bytes=1 << 14)
    assert damage == []
    ts = np.concatenate([c.ts for c in chunks]).tolist()
    assert len(ts) == len(rows)
    assert ts == [_epoch_ns(r[0]) for r in rows]
    assert np.concatenate([c.wirelen for c in chunks]).tolist() == [int(r[1]) for r in rows]
    assert np.concatenate([c.caplen for c in chunks]).tolist() == [int(r[2]) for r in rows]
    iface = [int(r[3]) if r[3] else 0 for r in rows]
    assert np.concatenate([c.iface for c in chunks]).tolist() == iface


@pytest.mark.slow
@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CORPUS)))
def test_corpus_packet_count_matches_tshark(corpus, path):
    n_tshark = len(_tshark(path, "frame.number"))
    chunks, damage = _read(path)
    assert sum(map(len, chunks)) == n_tshark


def test_corpus_byte_ranges_union_equals_whole_read(corpus):
    """Real traffic: random byte ranges of the largest uncompressed pcaps read back the whole file."""
    pcaps = [p for p in FILES if sniff_format(p).kind == "pcap" and sniff_format(p).compression is None]
    rng = np.random.default_rng(1)
    for p in sorted(pcaps, key=lambda p: -p.stat().st_size)[:3]:
        def recs(**kw):
            return [(int(c.file_offset[i]), int(c.ts[i]), int(c.caplen[i]))
                    for c in read_chunks(p, **kw) for i in range(len(c))]

        whole = recs()
        size = p.stat().st_size
        cuts = sorted({0, size, *rng.integers(24, size, 12).tolist()})
        got = [r for a, b in zip(cuts, cuts[1:]) for r in recs(start=a, end=b)]
        assert got == whole, p
