"""Per-chunk buffers are reused only once nothing references them (flowkit/_reuse.py)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

import flowkit
from flowkit._reuse import Buffers
from pcapgen import write_pcap
import servicegen as g


def test_a_held_buffer_is_never_handed_out_again():
    pool = Buffers(keep=4)
    held = [pool.get(1000) for _ in range(6)]
    for i, a in enumerate(held):
        a[:] = i
    for i, a in enumerate(held):
        assert (a == i).all()
        assert not any(np.shares_memory(a, b) for b in held[i + 1:])


def test_a_released_buffer_is_reused_and_views_keep_it_held():
    pool = Buffers(keep=4)
    a = pool.get(1000)
    address = a.ctypes.data
    view = a[10:20]
    del a
    b = pool.get(1000)
    assert b.ctypes.data != address  # the view still holds the first buffer
    del b, view
    assert pool.get(1000).ctypes.data == address  # neither is held now: the first one again


def test_batches_kept_across_chunks_keep_their_values(tmp_path):
    # small chunks, every batch kept: each must still equal a decode of the whole file at once
    frames = [(1.0 + i / 100, g.frame(f"10.0.{i % 7}.1", 40000 + i, "10.0.0.2", 80 + i % 3, bytes([i % 251]) * (i % 90)))
              for i in range(3000)]
    path = write_pcap(tmp_path / "p.pcap", frames)
    kept = list(flowkit.packets(str(path), chunk_bytes=1 << 14))
    assert len(kept) > 20
    whole = list(flowkit.packets(str(path), chunk_bytes=1 << 30))
    assert len(whole) == 1
    assert pa.Table.from_batches(kept).equals(pa.Table.from_batches(whole))


def test_chunks_held_across_reads_keep_their_bytes(tmp_path):
    # read buffers of 16 KiB, every chunk kept: each record is still the bytes written
    from flowkit.capture import read_chunks
    from pcapgen import pcap_bytes

    frames = [(b"%06d" % i) * (1 + i % 200) for i in range(2000)]
    path = tmp_path / "c.pcap"
    path.write_bytes(pcap_bytes([(1.0 + i, f) for i, f in enumerate(frames)]))
    chunks = list(read_chunks(str(path), chunk_bytes=1 << 14))
    assert len(chunks) > 50
    assert [ch.data[s:s + c].tobytes() for ch in chunks for s, c in zip(ch.start, ch.caplen)] == frames
