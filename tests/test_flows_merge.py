"""Split a capture anywhere, accumulate the parts, merge, finalize: same table as one pass."""
from __future__ import annotations

import random

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flowkit
from flowkit.flows import FlowOptions, FlowState, accumulate
from flowgen import Conversation, batch, batches, pkt


def mixed_capture(seed: int) -> list[dict]:
    """Interleaved TCP connections (complete, reset, reused, idle) and UDP exchanges."""
    rng = random.Random(seed)
    convs = []
    for i in range(6):
        c = Conversation(f"10.0.0.{i + 1}", 40000 + i, "10.0.9.9", rng.choice([80, 443, 22, 5000]),
                         t=1000.0 + rng.random(), step=rng.choice([0.01, 0.5, 2.0]))
        c.handshake()
        for _ in range(rng.randint(0, 4)):
            d = c.data(rng.random() < 0.5, rng.randint(1, 1400))
            if rng.random() < 0.3:
                c.retransmit(d)
        end = rng.random()
        if end < 0.4:
            c.close()
            if rng.random() < 0.5:  # the same five-tuple again after the close
                c.cseq += 77_777
                c.handshake()
                c.data(True, 10)
        elif end < 0.6:
            c.rst(True)
        elif end < 0.8:
            c.data(True, 5, dt=rng.choice([3.0, 7.0, 400.0]))  # idle gaps around the timers
        convs.append(c.packets)
    udp = [pkt(1000.0 + 3 * k, "10.0.0.50", 3000, "10.0.0.53", 53, proto="udp", payload=20) for k in range(8)]
    udp += [pkt(1001.0 + 70 * k, "10.0.0.53", 53, "10.0.0.50", 3000, proto="udp", payload=90) for k in range(3)]
    packets = [p for conv in convs for p in conv] + udp
    packets.sort(key=lambda p: p["ts"])  # capture order
    return packets


CAPTURES = [mixed_capture(s) for s in range(4)]


def one_pass(packets) -> pa.Table:
    return flowkit.flows([batch(packets)]).to_arrow()


def merged(packets, cuts, roundtrip=False) -> pa.Table:
    options = FlowOptions()
    edges = [0, *sorted(set(c for c in cuts if 0 < c < len(packets))), len(packets)]
    states = []
    for a, b in zip(edges, edges[1:]):
        s = accumulate([batch(packets[a:b], a)], options)
        if roundtrip:
            s = FlowState.from_arrow(s.to_arrow(), options)
        states.append(s)
    state = states[0]
    for s in states[1:]:
        state = state.merge(s)
    return state.finalize().to_arrow()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.integers(0, len(CAPTURES) - 1), cuts=st.lists(st.integers(1, 200), max_size=6),
       roundtrip=st.booleans())
def test_split_accumulate_merge_equals_one_pass(which, cuts, roundtrip):
    packets = CAPTURES[which]
    assert merged(packets, cuts, roundtrip).equals(one_pass(packets))


def test_merge_inside_handshake_and_between_fin_and_ack():
    c = Conversation("10.0.0.1", 40000, "10.0.0.2", 80).handshake()
    c.data(True, 100)
    c.close()
    packets = c.packets
    expect = one_pass(packets)
    assert expect.num_rows == 1
    for cut in range(1, len(packets)):  # every boundary, incl. after SYN and between FIN and last ACK
        assert merged(packets, [cut]).equals(expect), cut


def test_merge_is_associative():
    packets = CAPTURES[1]
    n = len(packets)
    a, b, c = (accumulate([batch(packets[i:j], i)]) for i, j in ((0, n // 3), (n // 3, 2 * n // 3), (2 * n // 3, n)))
    left = a.merge(b).merge(c).finalize().to_arrow()
    a, b, c = (accumulate([batch(packets[i:j], i)]) for i, j in ((0, n // 3), (n // 3, 2 * n // 3), (2 * n // 3, n)))
    right = a.merge(b.merge(c)).finalize().to_arrow()
    assert left.equals(right) and left.equals(one_pass(packets))


def test_streaming_batch_size_does_not_change_the_table():
    packets = CAPTURES[2]
    expect = one_pass(packets)
    for size in (1, 3, 17):
        cuts = list(range(size, len(packets), size))
        assert flowkit.flows(batches(packets, cuts)).to_arrow().equals(expect)


def test_ledger_is_merged():
    packets = CAPTURES[0]
    n = len(packets)
    s = accumulate([batch(packets[: n // 2])]).merge(accumulate([batch(packets[n // 2 :], n // 2)]))
    assert s.ledger.packets == n
    assert s.finalize().stats.packets == n


def test_idle_connections_are_evicted_while_streaming():
    # 200 short UDP exchanges, one per 2 minutes: at most one can be open at a time
    packets = [pkt(120.0 * i, "10.0.0.1", 2000 + i, "10.0.0.2", 53, proto="udp", payload=1) for i in range(200)]
    from flowkit.flows.keys import flow_packets
    from flowkit.flows.stream import StreamState

    from flowkit.flows.stream import OPEN_BYTES

    peak = peak_stream = 0
    # the one-pass state evicts lazily, and always before its budget (here 64 open rows) is reached
    state, stream = FlowState(FlowOptions()), StreamState(FlowOptions(memory=2 * 64 * OPEN_BYTES))
    for b in batches(packets, list(range(10, 200, 10))):
        state.advance(flow_packets(b, state.options.vlan_key))
        stream.advance_batch(b)
        peak = max(peak, len(state.C))
        peak_stream = max(peak_stream, len(stream.C))
    assert peak_stream <= 64
    assert stream.overflow is None  # expired connections are finished, never spilled
    assert len(stream.finalize()) == 200
    assert peak <= 10
    assert len(state.finalize()) == 200


def test_serialised_state_keeps_the_ledger():
    from flowkit.capture.records import Damage

    s = accumulate([batch(CAPTURES[0][:20])])
    s.ledger.damage.append(Damage("x.pcap", 1234, "record length 99999 exceeds snaplen"))
    back = FlowState.from_arrow(s.to_arrow(), FlowOptions())
    assert back.ledger.to_dict() == s.ledger.to_dict()
    assert back.finalize().to_arrow().equals(s.finalize().to_arrow())
