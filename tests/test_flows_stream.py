"""The one-pass StreamState (C hash table) gives the same flows as the mergeable FlowState."""
from __future__ import annotations

import random

import pyarrow as pa
import pytest

from conftest import SAMPLES, corpus_files
from flowgen import Conversation, batch, batches, pkt
from flowkit.decode import packets
from flowkit.flows import FlowOptions, FlowState, accumulate
from flowkit.flows.keys import packet_columns
from flowkit.flows.stream import StreamState


def reference(batch_list, options=None) -> pa.Table:
    """One pass through the mergeable state (the sorted-key path)."""
    return accumulate(batch_list, options or FlowOptions()).finalize().to_arrow()


def streamed(batch_list, options=None, capacity=4096) -> pa.Table:
    state = StreamState(options or FlowOptions(), capacity=capacity)
    for b in batch_list:
        state.advance_batch(b)
    return state.finalize().to_arrow()


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.pcap*")), ids=lambda p: p.name)
def test_sample_captures_match_the_mergeable_path(path):
    got = streamed(list(packets(str(path), chunk_bytes=1 << 14)))
    want = reference(list(packets(str(path), chunk_bytes=1 << 14)))
    assert got.num_rows > 0
    assert got.equals(want)


@pytest.mark.corpus
def test_corpus_traces_match_the_mergeable_path():
    files = corpus_files("zeek")[:60]
    if not files:
        pytest.skip("../shared/corpus/zeek not present")
    compared = 0
    for path in files:
        try:
            bs = list(packets(str(path)))
        except Exception:  # damaged on purpose: covered by the capture tests
            continue
        assert streamed(bs).equals(reference(bs)), path.name
        compared += 1
    assert compared > 20


def reused_rows_capture(seed: int) -> list[dict]:
    """Many short connections, mostly on a few five-tuples: rows are freed and reused."""
    rng = random.Random(seed)
    out = []
    t = 1000.0
    for i in range(400):
        port = 40000 + rng.randrange(6)
        c = Conversation("10.1.0.1", port, "10.1.0.2", rng.choice([80, 5000]), t=t, step=0.001, cseq=1000 + 7919 * i)
        c.handshake()
        if rng.random() < 0.5:
            c.data(True, rng.randint(1, 100))
        (c.close if rng.random() < 0.7 else lambda: c.rst(rng.random() < 0.5))()
        out += c.packets
        t += rng.choice([0.01, 6.0, 400.0])  # within, past the close delay, past the idle timeout
        if rng.random() < 0.2:
            out.append(pkt(t, "10.1.0.9", 3000 + i, "10.1.0.53", 53, proto="udp", payload=30))
    out.sort(key=lambda p: p["ts"])
    return out


@pytest.mark.parametrize("seed", range(3))
def test_row_reuse_growth_and_rehash_keep_every_letter(seed):
    pk = reused_rows_capture(seed)
    cuts = sorted(random.Random(seed).sample(range(1, len(pk)), 12))
    got = streamed(list(batches(pk, cuts)), capacity=4)  # grows from 4 rows, rebuilds the table
    want = reference([batch(pk)])
    assert got.num_rows > 100
    assert got.equals(want)
    assert not any("dd" in h or h.count("S") > 3 for h in got.column("history").to_pylist())


def test_timeouts_and_active_timeout_match():
    pk = reused_rows_capture(7)
    options = FlowOptions(tcp_timeout=2.0, udp_timeout=1.0, active_timeout=0.002)
    assert streamed([batch(pk)], options).equals(reference([batch(pk)], options))


def test_stream_state_cannot_merge():
    s = StreamState()
    with pytest.raises(ValueError):
        s.merge(FlowState())


def test_keys_match_packet_columns():
    """The hash and orientation computed in C agree with keys.packet_columns."""
    bs = list(packets(str(SAMPLES / "mixed.pcap")))
    state = StreamState()
    for b in bs:
        state.advance_batch(b)
    open_keys = set(state.K[:, 0].view("u8").tolist())
    finished = state.table().column("_key").to_pylist()
    hashes = set()
    for b in bs:
        cols = packet_columns(b)
        if cols is not None:
            hashes.update(cols["hash"].tolist())
    assert open_keys | set(finished) == hashes


def test_wider_integer_columns_and_sliced_tables_give_the_same_flows():
    table = packets(str(SAMPLES / "mixed.pcap")).to_arrow()
    want = streamed(table.to_batches())
    wide = pa.table([c.cast(pa.int64()) if pa.types.is_integer(c.type) else c for c in table.columns],
                    names=table.schema.names)
    assert streamed(wide.to_batches()).equals(want)
    sliced = table.slice(7)  # arrays with a non-zero offset
    assert streamed(sliced.to_batches()).equals(reference(sliced.to_batches()))
