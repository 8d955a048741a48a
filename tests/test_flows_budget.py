"""Memory by budget: past it, open connections go to disk and come back; the table is unchanged.

The reference is the same capture with no budget (``memory=None``): every column and
the row order must be equal, whatever went to disk (``stats.spilled`` says what did).
"""
from __future__ import annotations

import pytest

import flowkit
from conftest import CORPUS, SAMPLES, corpus_files
from flowgen import Conversation, pkt, write_pcap
from flowkit.flows.keyfilter import KEYS_PER_BLOCK
from flowkit.flows.stream import FINISHED_BYTES, OPEN_BYTES

TINY = 2 * 64 * OPEN_BYTES  # 64 open connections
TINIEST = 2 * 8 * OPEN_BYTES  # 8


def _same(path, memory=TINY, **opts):
    plain = flowkit.flows(str(path), memory=None, **opts)
    tight = flowkit.flows(str(path), memory=memory, **opts)
    assert plain.stats.spilled == {}
    assert tight.to_arrow().equals(plain.to_arrow()), path
    return tight.stats.spilled


def _scan_and_spray(path, n=3000, long_lived=30):
    """A SYN scan and a UDP spray, every packet a new five-tuple 10 µs apart, interleaved with
    long-lived TCP conversations and UDP streams whose packets come back after their
    connection was sent to disk (deferred packets), and with five-tuples reused after their
    connection ended (a key leaving the spilled set)."""
    packets = []
    for i in range(n):
        t = 1.0 + i * 1e-5
        packets.append(pkt(t, "198.51.100.7", 40000, f"10.0.{i // 250}.{i % 250 + 1}", 1 + i % 97, "S", seq=i * 7919))
        packets.append(pkt(t + 5e-6, f"172.16.{i // 250}.{i % 250 + 1}", 20000 + i % 64, "192.0.2.53", 9999,
                           proto="udp", payload=32))
    end = 1.0 + n * 1e-5
    for j in range(long_lived):
        c = Conversation(f"10.9.0.{j + 1}", 50000 + j, "10.9.1.1", 443, t=1.0 + j * 1e-4, step=(end - 1.0) / 12,
                         cseq=1000 * j)
        c.handshake()
        for _ in range(3):
            c.data(True, 100)
            c.data(False, 1000)
        c.close()
        packets += c.packets
        for k in range(6):  # a UDP stream: one packet every 1/6 of the capture
            packets.append(pkt(1.0 + j * 1e-4 + k * (end - 1.0) / 6, f"10.8.0.{j + 1}", 6000, "10.8.1.1", 53,
                               proto="udp", payload=20))
    # scan targets probed again after the 5 s attempt timeout: new connections on spilled keys
    for i in range(0, n, 50):
        packets.append(pkt(end + 6.0 + i * 1e-5, "198.51.100.7", 40000, f"10.0.{i // 250}.{i % 250 + 1}",
                           1 + i % 97, "S", seq=i * 7919 + 1))
    packets.sort(key=lambda p: p["ts"])
    write_pcap(path, packets)
    return path


def test_flow_heavy_capture_is_equal_with_a_tiny_budget(tmp_path):
    path = _scan_and_spray(tmp_path / "heavy.pcap")
    spilled = _same(path, chunk_bytes=1 << 14)
    assert spilled["open_connections"] > 1000
    assert spilled["deferred_packets"] > 100  # long-lived connections came back from disk
    assert spilled["finished_flows"] > 1000
    table = flowkit.flows(str(path), memory=TINY, chunk_bytes=1 << 14)
    assert len(table) == 3000 + 3000 + 30 + 30 + 3000 // 50
    # the long-lived conversations are whole: handshake, data both ways, close
    df = table.to_pandas()
    long = df[df.dst_port == 443]
    assert len(long) == 30 and (long.conn_state == "SF").all() and (long.src_pkts > 4).all()


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.pcap*")), ids=lambda p: p.name)
def test_sample_captures_are_equal_with_a_tiny_budget(path):
    _same(path, memory=TINIEST, chunk_bytes=1 << 14)


@pytest.mark.corpus
def test_corpus_is_equal_with_a_tiny_budget():
    # the largest traces below 4 MB: those with more than a handful of connections
    files = sorted((p for p in corpus_files() if p.stat().st_size < 4 << 20), key=lambda p: -p.stat().st_size)[:30]
    if not files:
        pytest.skip("../shared/corpus not present")
    spilled_somewhere = 0
    for path in files:
        try:
            flowkit.flows(str(path), memory=None)
        except flowkit.errors.FlowkitError:  # damaged on purpose: covered by the capture tests
            continue
        spilled_somewhere += bool(_same(path, memory=TINIEST, chunk_bytes=1 << 14))
    assert spilled_somewhere >= 10


def test_budget_takes_sizes_and_reports_nothing_when_it_suffices(tmp_path):
    path = _scan_and_spray(tmp_path / "small.pcap", n=200, long_lived=2)
    table = flowkit.flows(str(path), memory="64M")
    assert table.stats.spilled == {}
    assert table.stats.to_dict().get("spilled") is None
    with pytest.raises(ValueError):
        flowkit.flows(str(path), memory="lots")
    assert FINISHED_BYTES > 0


def test_active_timeout_is_equal_with_a_tiny_budget(tmp_path):
    # connections cut by the active timeout hand their originator to the next connection on
    # their key (Zeek's successor keeps the orientation): a spilled row cut that way must
    # still be at hand when that next packet comes
    path = _scan_and_spray(tmp_path / "active.pcap")
    spilled = _same(path, chunk_bytes=1 << 14, active_timeout=0.004)
    assert spilled["open_connections"] > 1000


def test_the_open_half_of_the_budget_bounds_what_open_connections_hold(tmp_path):
    # rows, hash table and the filter of spilled keys (it grows with every key sent to disk),
    # measured on the arrays themselves after every batch
    from flowkit.decode.api import PacketTable
    from flowkit.flows.state import FlowOptions
    from flowkit.flows.stream import StreamState

    path = _scan_and_spray(tmp_path / "heavy.pcap", n=30000, long_lived=4)
    memory = 2 * 2048 * OPEN_BYTES
    state = StreamState(FlowOptions(memory=memory))
    most = 0
    for batch in PacketTable(str(path), chunk_bytes=1 << 16):
        state.advance_batch(batch)
        held = sum(a.nbytes for a in (*state._rows, *state._tab)) + state.keys.nbytes
        most = max(most, held)
        assert held <= memory // 2
    assert state.overflow.rows > 50000 and state.keys.most > 150_000  # the filter took its share
    assert most > memory // 2 * 0.8  # the budget was used, not merely respected


def _long_spray(path, periods=12, per_period=3000, timeout=1.0):
    """One-packet UDP connections, ``per_period`` per UDP timeout for ``periods`` timeouts (their
    spilled rows settle while spilling goes on); one key in 40 comes back half a timeout later
    (deferred: it joins its spilled connection) and again just after the first deadline (it
    still joins: the second packet moved the deadline), one in 40 only after its timeout (a
    new connection on a spilled key, deferred or not). One TCP connection a timeout is idle
    for 4.5 timeouts after its handshake (under its own, far longer timeout: its row holds
    its layer of the filter) and then exchanges data and closes."""
    packets, step = [], timeout / per_period
    for i in range(periods * per_period):
        t = 1.0 + i * step
        key = (f"172.{16 + i // 64000}.{(i // 250) % 256}.{i % 250 + 1}", 20000 + i % 64, "192.0.2.53", 9999)
        packets.append(pkt(t, *key, proto="udp", payload=32))
        if i % 40 == 0:
            packets.append(pkt(t + 0.5 * timeout, *key, proto="udp", payload=16))
            packets.append(pkt(t + (1.05 + (i % 400) / 1000) * timeout, *key, proto="udp", payload=8))
        elif i % 40 == 20:
            packets.append(pkt(t + (1.2 + (i % 800) / 400) * timeout, *key, proto="udp", payload=8))
    for j in range(periods):
        c = Conversation(f"10.7.0.{j + 1}", 40000 + j, "10.7.1.1", 443, t=1.25 + j * timeout, step=1e-3,
                         cseq=1000 * j)
        c.handshake()
        c.data(True, 100, dt=4.5 * timeout)
        c.data(False, 1000)
        c.close()
        packets += c.packets
    packets.sort(key=lambda p: p["ts"])
    write_pcap(path, packets)
    return path


def test_spilled_keys_leave_the_filter_once_settled(tmp_path):
    periods, per_period = 12, 3000
    path = _long_spray(tmp_path / "long.pcap", periods, per_period)
    spilled = _same(path, chunk_bytes=1 << 14, udp_timeout=1.0)
    table = flowkit.flows(str(path), memory=None, udp_timeout=1.0).to_pandas()
    n = periods * per_period
    assert len(table) == n + n // 40 + periods  # the late returns are new connections, the early ones join
    assert (table.src_pkts + table.dst_pkts).value_counts().to_dict() == {1: n, 3: n // 40, 8: periods}
    assert (table[table.proto == "tcp"].conn_state == "SF").all()
    assert spilled["open_connections"] > 0.9 * n and spilled["deferred_packets"] > n // 40
    # a Bloom filter of 64 bytes per KEYS_PER_BLOCK keys, each layer at most twice what it
    # holds: enough for the keys spilled within three timeouts and the keys that came back
    per_key = 64 / KEYS_PER_BLOCK
    returning = 2 * (n // 40)
    assert spilled["filter_bytes"] <= 2 * (3 * per_period + returning) * per_key + 3 * 4096
    # not every key ever spilled: half of them at most (they settle period by period; the
    # layer a spill opens may be sized for two periods' keys when the budget is this small)
    assert spilled["filter_bytes"] * 2 < spilled["open_connections"] * per_key
