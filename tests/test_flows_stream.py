"""The one-pass StreamState (C hash table) gives the same flows as the mergeable FlowState."""
from __future__ import annotations

import random

import pyarrow as pa
import pytest

from conftest import SAMPLES, corpus_files
from flowgen import Conversation, batch, batches, pkt
from flowkit.decode import packets
from flowkit.flows import FlowOptions, FlowState, accumulate
from flowkit.flows.keys import flow_packets
from flowkit.flows.layout import key_hashes
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
    for path in files:  # damaged traces included: they must read (damage is in the ledger)
        bs = list(packets(str(path)))
        assert streamed(bs).equals(reference(bs)), path.name
        compared += 1
    assert compared == len(files) > 20


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


def test_stream_state_is_not_mergeable():
    """The one-pass state keeps no per-key bookkeeping: it offers no merge at all."""
    assert not hasattr(StreamState(), "merge")
    assert hasattr(FlowState(), "merge")


# Zeek's ICMP4_counterpart / ICMP6_counterpart (src/packet_analysis/protocol/icmp/ICMP.cc)
ICMP4_PAIRS = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17}
ICMP6_PAIRS = {128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135, 130: 131, 131: 130, 139: 140,
               140: 139, 144: 145, 145: 144}


def test_keys_are_the_unordered_five_tuples():
    """Both drivers key a connection by its unordered endpoint pair, protocol and VLANs:
    as many keys as distinct such tuples among the IP packets (counted here with ipaddress
    on the decoded columns; ICMP as Zeek keys it, other protocols without ports), and the
    same keys on both paths."""
    import ipaddress

    bs = list(packets(str(SAMPLES / "mixed.pcap")))
    state = StreamState()
    for b in bs:
        state.advance_batch(b)
    stream_keys = set(key_hashes(state.K).tolist()) | set(state.table().column("_key").to_pylist())
    merge_keys = set()
    tuples = set()
    for b in bs:
        cols = flow_packets(b)
        if cols is not None:
            merge_keys.update(cols["hash"].tolist())
        d = b.to_pydict()
        for i in range(b.num_rows):
            if d["status"][i] != 0 or d["ip_version"][i] == 0:
                continue
            proto = d["ip_proto"][i]
            sport, dport, one_way = (d["src_port"][i], d["dst_port"][i], False) if proto in (6, 17) else (0, 0, False)
            if proto in (1, 58):  # Zeek's ICMP keys: type -> counterpart type, or the code (one-way)
                pairs = ICMP4_PAIRS if proto == 1 else ICMP6_PAIRS
                sport = d["icmp_type"][i]
                one_way = sport not in pairs
                dport = d["icmp_code"][i] if one_way else pairs[sport]
            a = (ipaddress.IPv6Address(d["src_ip"][i]), sport)
            z = (ipaddress.IPv6Address(d["dst_ip"][i]), dport)
            ends = (a, z) if one_way else frozenset([a, z])
            tuples.add((ends, proto, d["vlan"][i], d["inner_vlan"][i]))
    assert len(tuples) > 10
    assert stream_keys == merge_keys
    assert len(stream_keys) == len(tuples)


def test_wider_integer_columns_and_sliced_tables_give_the_same_flows():
    table = packets(str(SAMPLES / "mixed.pcap")).to_arrow()
    want = streamed(table.to_batches())
    wide = pa.table([c.cast(pa.int64()) if pa.types.is_integer(c.type) else c for c in table.columns],
                    names=table.schema.names)
    assert streamed(wide.to_batches()).equals(want)
    sliced = table.slice(7)  # arrays with a non-zero offset
    assert streamed(sliced.to_batches()).equals(reference(sliced.to_batches()))


def _flow_count_in_child(path, queue):
    import flowkit

    queue.put(len(flowkit.flows(path)))


def test_a_forked_child_builds_flows_too():
    # finished rows convert in a pool of worker threads; a child forked after the parent used
    # it has none of those threads, so it must start its own (else it waits forever)
    import multiprocessing

    import flowkit

    path = SAMPLES / "http.pcap"
    expected = len(flowkit.flows(path))
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_flow_count_in_child, args=(path, queue))
    child.start()
    child.join(120)  # a guard against a hang, not a timing assertion
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive, "the forked child never finished its flows"
    assert queue.get(timeout=5) == expected


def test_each_open_row_keeps_its_times_for_the_spill():
    """The kernel keeps every open row's last packet time (`last`, which the spill chooses its
    rows by: a stale one would send active connections to disk), first packet time (`start`,
    the order of spilled segments) and deadline (`deadline`, when eviction finishes it and a
    spilled one settles: a UDP row's is its last packet plus the UDP timeout) in columns."""
    from flowkit.flows.layout import key

    rng = random.Random(11)
    sent, t = [], 100.0
    for _ in range(600):  # 40 UDP conversations to port 53, packets in random order, 10 ms apart
        sport = 30000 + rng.randrange(40)
        sent.append(pkt(t, "10.2.0.1", sport, "10.2.0.2", 53, proto="udp", payload=20))
        t += 0.01
    options = FlowOptions()
    state = StreamState(options, capacity=64)
    latest: dict[int, int] = {}
    first: dict[int, int] = {}
    for at in range(0, len(sent), 100):
        part = sent[at:at + 100]
        state.advance_batch(batch(part, at))
        for p in part:
            latest[p["src_port"]] = p["ts"]
            first.setdefault(p["src_port"], p["ts"])
        rows = state._open_rows()
        k = key(state._rows[2][rows])
        ports = [int(a if b == 53 else b) for a, b in zip(k["aport"], k["bport"])]
        assert sorted(ports) == sorted(latest)
        times = state._rows[5][rows]  # last, first packet and deadline
        assert [int(v) for v in times[:, 0]] == [latest[p] for p in ports]
        assert [int(v) for v in times[:, 1]] == [first[p] for p in ports]
        assert [int(v) for v in times[:, 2]] == [latest[p] + options.udp_ns for p in ports]
