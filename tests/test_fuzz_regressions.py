"""Fuzzer inputs replayed through both engines: saved crashes (fuzz/regressions/) and the seeds.

The harness format (fuzz/decode_fuzzer.c): a flags byte (1 follow tunnels, 2 reassemble),
then records of link selector, 2-byte little-endian length and bytes; records 100 s apart,
wire length = captured length (+64 with the selector's high bit). Each input must decode
identically in ``fast`` and ``dpkt`` with one outer row per record.
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from flowkit.capture.records import RecordChunk
from flowkit.decode import dpkt_engine, fast
from conftest import ROOT

sys.path.insert(0, str(ROOT / "fuzz"))
from make_seeds import LINKS, main as make_seeds  # noqa: E402

REGRESSIONS = sorted(p for p in (ROOT / "fuzz" / "regressions").glob("*") if p.suffix != ".md")


def parse(data: bytes) -> tuple[int, RecordChunk]:
    flags, pos, packets, links, wires = data[0], 1, [], [], []
    while pos + 3 <= len(data) and len(packets) < 32:
        sel, length = data[pos], struct.unpack_from("<H", data, pos + 1)[0]
        pos += 3
        body = data[pos : pos + length]
        pos += len(body)
        packets.append(body)
        links.append(LINKS[(sel & 0x7F) % len(LINKS)])
        wires.append(len(body) + (64 if sel & 0x80 else 0))
    n = len(packets)
    caplen = np.array([len(p) for p in packets], np.uint32)
    chunk = RecordChunk(
        data=np.frombuffer(b"".join(packets), np.uint8).copy(),
        start=np.concatenate([[0], np.cumsum(caplen[:-1], dtype=np.int64)]).astype(np.int64) if n else np.zeros(0, np.int64),
        caplen=caplen, wirelen=np.array(wires, np.uint32), ts=np.arange(n, dtype=np.int64) * 100 * 10**9,
        linktype=np.array(links, np.uint16), iface=np.zeros(n, np.uint16), file_offset=np.zeros(n, np.int64),
        index=np.arange(n, dtype=np.int64),
    )
    return flags, chunk


def replay(data: bytes) -> None:
    flags, chunk = parse(data)
    if not len(chunk):
        return
    kw = dict(decap=bool(flags & 1), reassemble=bool(flags & 2), frag_max_bytes=64 << 10)
    a = fast.Decoder(**kw).decode(chunk)
    b = dpkt_engine.Decoder(**kw).decode(chunk)
    assert a.equals(b)
    depth = a.column("tunnel_depth").to_numpy()
    assert (a.column("index").to_numpy()[depth == 0] == chunk.index).all()


@pytest.mark.parametrize("path", REGRESSIONS or [None], ids=[p.name for p in REGRESSIONS] or ["none-saved"])
def test_saved_crashes_decode_alike(path):
    if path is None:
        pytest.skip("no fuzzer crash saved in fuzz/regressions")
    replay(path.read_bytes())


def test_seeds_decode_alike_in_both_engines(tmp_path):
    make_seeds(tmp_path)
    seeds = sorted(tmp_path.iterdir())
    assert len(seeds) > 100
    for path in seeds[::7] + seeds[-8:]:  # a spread of the mix, every tunnel case, the fragment sequences
        replay(path.read_bytes())
