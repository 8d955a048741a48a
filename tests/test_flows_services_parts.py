"""service and server_name whatever way a capture is read: under a tiny memory budget (connections
and packets to disk and back), as byte ranges accumulated and merged, and by the one-pass driver,
the table equals one unlimited pass, every column.

The built capture puts FTP announcements and the data connections they name, TLS and HTTP
connections whose payload comes after an idle handshake (so a tight budget has sent them to
disk), on both sides of every cut.
"""
from __future__ import annotations

import struct
from functools import reduce

import dpkt
import pytest
import servicegen as g

import flowkit
from conftest import CORPUS, SAMPLES
from flowkit.capture.ranges import split_ranges
from flowkit.flows import FlowOptions, FlowState, accumulate
from flowkit.flows.stream import OPEN_BYTES
from pcapgen import write_pcap

TINIEST = 2 * 8 * OPEN_BYTES  # 8 open connections


def _delayed(frames, after: int, delay: float):
    """The frames with everything from index ``after`` on shifted by ``delay`` seconds."""
    return [(t + (delay if i >= after else 0.0), f) for i, (t, f) in enumerate(frames)]


def _built(path):
    frames = []
    for i in range(8):
        t = 1000.0 + 2.0 * i
        port = 50000 + i
        pasv = [(True, b"PASV\r\n"), (False, f"227 Entering Passive Mode (10,0,0,2,{port >> 8},{port & 255}).\r\n".encode())]
        frames += g.connection(g.ftp(pasv), f"10.0.1.{i + 1}", 40000 + i, "10.0.0.2", 21, t=t, step=0.05)
        frames += g.connection([(False, b"contents %d\n" % i)], f"10.0.1.{i + 1}", 41000 + i, "10.0.0.2", port,
                               t=t + 0.6, step=0.05)
    for j in range(12):  # handshake, 3 s of silence, then the ClientHello / request
        conv = [(True, g.client_hello(f"site{j}.example.com")), (False, g.server_hello())] if j % 2 else \
            g.http(f"host{j}.example.org")
        frames += _delayed(g.connection(conv, f"10.0.2.{j + 1}", 42000 + j, "10.0.0.3", 8443 + j % 2, t=1000.3 + j,
                                        step=0.01), 3, 3.0)
    # a control connection quiet for 6 s after its login, while others open: then its announcement
    pasv = [(True, b"PASV\r\n"), (False, b"227 Entering Passive Mode (10,0,0,4,195,80).\r\n")]
    frames += _delayed(g.connection(g.ftp(pasv), "10.0.1.99", 40099, "10.0.0.4", 21, t=1000.1, step=0.01), 8, 6.0)
    frames += g.connection([(False, b"late\n")], "10.0.1.99", 41099, "10.0.0.4", 195 * 256 + 80, t=1006.5)
    frames += _icmp_and_gre()
    frames.sort(key=lambda f: f[0])
    return write_pcap(path, frames)


def _icmp_and_gre():
    """An ICMP echo and a GRE packet whose payloads read like HTTP and TLS: no service."""
    import socket

    out = []
    echo = dpkt.icmp.ICMP(type=8, code=0, data=dpkt.icmp.ICMP.Echo(id=1, seq=1, data=g.http()[0][1]))
    gre = struct.pack("!HH", 0, 0x0800) + g.client_hello()
    for k, (proto, l4) in enumerate(((1, bytes(echo)), (47, gre))):
        ip = dpkt.ip.IP(src=socket.inet_aton("10.0.3.1"), dst=socket.inet_aton("10.0.3.2"), p=proto, ttl=64,
                        data=l4)
        ip.len = 20 + len(l4)
        out.append((1003.0 + k, bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=0x0800, data=ip))))
    return out


def _record_offsets(path) -> list[int]:
    data = path.read_bytes()
    at, out = 24, []
    while at + 16 <= len(data):
        out.append(at)
        at += 16 + struct.unpack_from("<I", data, at + 8)[0]
    return out


def _merged(path, cuts, roundtrip=False):
    size = path.stat().st_size
    edges = [0, *cuts, size]
    options = FlowOptions(memory=None)
    states = []
    for a, b in zip(edges, edges[1:]):
        s = accumulate(flowkit.PacketTable(str(path), byte_range=(a, b)), options)
        states.append(FlowState.from_arrow(s.to_arrow(), options) if roundtrip else s)
    return reduce(lambda x, y: x.merge(y), states).finalize().to_arrow()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    path = _built(tmp_path_factory.mktemp("parts") / "services.pcap")
    return path, flowkit.flows(str(path), memory=None).to_arrow()


def test_the_built_capture_names_what_it_holds(built):
    _path, ref = built
    df = ref.to_pandas()
    assert (df[df.dst_port == 21].service == "ftp").sum() == 9
    assert (df[df.dst_port >= 49000].service == "ftp-data").sum() == 9
    assert set(df[df.dst_port == 8444].server_name) == {f"site{j}.example.com" for j in range(1, 12, 2)}
    assert set(df[df.dst_port == 8443].service) == {"http"}
    assert list(df[df.proto != "tcp"].service) == ["", ""]  # ICMP and GRE: Zeek names none


def test_a_tiny_budget_equals_the_unlimited_run(built):
    path, ref = built
    tight = flowkit.flows(str(path), memory=TINIEST, chunk_bytes=1 << 12)
    assert tight.stats.spilled["deferred_packets"] > 0  # payload came back from disk
    assert tight.to_arrow().equals(ref)


@pytest.mark.parametrize("connections, chunk, spill_rows", [(4, 1 << 12, None), (4, 1 << 13, 4), (7, 1 << 13, 9),
                                                        (10, 1 << 12, None), (12, 1 << 12, 16), (15, 1 << 14, None),
                                                        (25, 1 << 14, None)])
def test_budgets_that_spill_control_connections_before_their_first_line_equal_the_unlimited_run(
        built, connections, chunk, spill_rows):
    # the FTP control connections spilled during their handshake read their PASV replies only
    # at the replay, after the data connections they name: those are named afterwards, in
    # memory, in the sorted runs of finished flows on disk (spill_rows) or among the spilled
    # rows kept on disk as they are (15 connections: overflow.py's final segments)
    path, ref = built
    tight = flowkit.flows(str(path), memory=2 * connections * OPEN_BYTES, chunk_bytes=chunk, spill_rows=spill_rows)
    assert tight.stats.spilled["deferred_packets"] > 0
    assert tight.to_arrow().equals(ref)


def test_two_parts_cut_at_every_fifth_record_equal_one_pass(built):
    path, ref = built
    offsets = _record_offsets(path)
    for k, cut in enumerate(offsets[1::5]):
        assert _merged(path, [cut], roundtrip=k % 2 == 1).equals(ref), cut


def test_many_parts_equal_one_pass(built):
    path, ref = built
    offsets = _record_offsets(path)
    for step in (3, 7, 19):
        assert _merged(path, offsets[step::step], roundtrip=True).equals(ref), step


def test_the_mergeable_driver_alone_equals_one_pass(built):
    path, ref = built
    assert accumulate(flowkit.PacketTable(str(path)), FlowOptions(memory=None)).finalize().to_arrow().equals(ref)


REAL = [SAMPLES / "http.pcap", SAMPLES / "mixed.pcap", CORPUS / "zeek/traces/ftp/ipv4.pcap",
        CORPUS / "zeek/traces/ftp/ipv6.pcap", CORPUS / "zeek/traces/ftp/cwd-navigation.pcap",
        CORPUS / "zeek/traces/ssl-and-ssh-using-sslh.pcap",
        CORPUS / "zeek/traces/tls/chrome-1250-tls-x25519-kyber.pcap", CORPUS / "zeek/traces/http/http-to-ssh.pcap",
        CORPUS / "nfstream/ftp.pcap", CORPUS / "nfstream/http_ipv6.pcap", CORPUS / "nfstream/wechat.pcap", CORPUS / "nfstream/waze.pcap",
        CORPUS / "nfstream/starcraft_battle.pcap", CORPUS / "nfstream/anyconnect-vpn.pcap", CORPUS / "nfstream/rdp.pcap"]


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_captures_equal_one_pass_however_read(path):
    if not path.exists():
        pytest.skip(f"{path} not present")
    ref = flowkit.flows(str(path), memory=None).to_arrow()
    assert any(ref.column("service").to_pylist())  # something to compare
    assert flowkit.flows(str(path), memory=TINIEST, chunk_bytes=1 << 14).to_arrow().equals(ref)
    for n in (2, 5):
        assert _merged(path, [a for a, _ in split_ranges(path, n)[1:]]).equals(ref), n


@pytest.mark.parametrize("connections, spill_rows", [(4, 4), (7, 9), (12, 16)])
def test_runs_named_a_record_batch_at_a_time_equal_the_unlimited_run(built, monkeypatch, connections, spill_rows):
    # runs written in record batches of 3 rows: the data connections named late (at their
    # control connection's replay) sit beyond the first batch of their run, and the runs are
    # read and rewritten one batch at a time
    from flowkit.flows import spill

    monkeypatch.setattr(spill, "BLOCK", 3)
    path, ref = built
    tight = flowkit.flows(str(path), memory=2 * connections * OPEN_BYTES, chunk_bytes=1 << 13, spill_rows=spill_rows)
    assert tight.stats.spilled["finished_flows"] > spill_rows  # more than one run
    assert tight.to_arrow().equals(ref)
