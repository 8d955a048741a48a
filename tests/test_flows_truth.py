"""Truth table of the connection state machine, on captures written here with dpkt.

Every expected value comes from how the capture was built (which packets, which flags,
which sequence numbers, which segments were left out) and Zeek's documented rules
(``scripts/base/protocols/conn/main.zeek``: conn_state and history letters;
``TCP_Endpoint::Size``: payload bytes from sequence and acknowledgement numbers). Each
scenario runs through both drivers of the state machine: the one-pass ``flowkit.flows``
and the mergeable ``accumulate``/``finalize``, so a rule broken in either one fails here.

Where Zeek's own test suite has the situation, ``test_zeek_baseline_rows`` checks the
same conn_state and history on Zeek's trace against Zeek's baseline row.
"""
from __future__ import annotations

import gzip
import json

import pytest

import flowkit
from conftest import CORPUS
from flowgen import FLAG_BITS, Conversation, pkt, write_pcap
from flowkit.decode import packets
from flowkit.flows import accumulate

CLIENT, CPORT, SERVER, SPORT = "10.0.0.1", 41000, "10.0.0.2", 80


def rows(path):
    """The flow table of a capture from both drivers; they must agree, then one is returned."""
    one_pass = flowkit.flows(path).to_pandas()
    mergeable = accumulate(list(packets(str(path)))).finalize().to_pandas()
    assert one_pass.equals(mergeable), (one_pass, mergeable)
    return one_pass


def only_row(tmp_path, pkts):
    write_pcap(tmp_path / "c.pcap", pkts)
    df = rows(tmp_path / "c.pcap")
    assert len(df) == 1, df
    return df.iloc[0]


def conv(**kw) -> Conversation:
    return Conversation(CLIENT, CPORT, SERVER, SPORT, **kw)


# ------------------------------------------------------------------- conn_state
def _s0(c):
    c.syn()


def _s1(c):
    c.handshake()
    c.data(True, 10)
    c.data(False, 20)


def _sf(c):
    c.handshake()
    c.data(True, 120)
    c.ack(False)
    c.data(False, 1400)
    c.ack(True)
    c.close()


def _rej(c):
    c.syn()
    c.cseq += 1
    c.rst(False, "RA")


def _s2(c):
    c.handshake()
    c.fin(True)


def _s3(c):
    c.handshake()
    c.fin(False)


def _rsto(c):
    c.handshake()
    c.data(True, 5)
    c.rst(True)


def _rstr(c):
    c.handshake()
    c.data(True, 5)
    c.rst(False)


def _rstos0(c):
    c.syn()
    c.rst(True)


def _rstrh(c):
    c.synack()  # the client's SYN is not in the capture
    c.rst(False)


def _sh(c):
    c.syn()
    c.fin(True)


def _shr(c):
    c.synack()
    c.fin(False)


def _oth(c):
    c.data(True, 10)  # midstream: no SYN in either direction
    c.data(False, 30)


def _rsto_in_handshake(c):
    c.syn()
    c.synack()
    c.rst(True)  # the client aborts instead of completing the handshake


def _rstr_after_fin(c):
    c.handshake()
    c.fin(True)
    c.rst(False)


def _sf_responder_first(c):
    c.handshake()
    c.data(False, 7)
    c.fin(False)
    c.fin(True)


# state, builder, Zeek's history (upper case: originator), (orig_bytes, resp_bytes)
STATES = [
    ("S0", _s0, "S", (0, 0)),
    ("S1", _s1, "ShADd", (10, 20)),
    ("SF", _sf, "ShADadFf", (120, 1400)),
    ("REJ", _rej, "Sr", (0, 0)),
    ("S2", _s2, "ShAF", (0, 0)),
    ("S3", _s3, "ShAf", (0, 0)),
    ("RSTO", _rsto, "ShADR", (5, 0)),
    ("RSTR", _rstr, "ShADr", (5, 0)),
    ("RSTOS0", _rstos0, "SR", (0, 0)),
    ("RSTRH", _rstrh, "^hr", (0, 0)),  # first packet a SYN-ACK: Zeek flips the roles
    ("SH", _sh, "SF", (0, 0)),
    ("SHR", _shr, "^hf", (0, 0)),
    ("OTH", _oth, "Dd", (10, 30)),
    ("RSTO", _rsto_in_handshake, "ShR", (0, 0)),
    ("RSTR", _rstr_after_fin, "ShAFr", (0, 0)),
    ("SF", _sf_responder_first, "ShAdfF", (0, 7)),
]


def test_the_table_covers_all_of_zeeks_tcp_states():
    zeek = {"S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH"}
    assert {s[0] for s in STATES} == zeek


@pytest.mark.parametrize("state, build, history, size", STATES, ids=[s[1].__name__.strip("_") for s in STATES])
def test_conn_state(tmp_path, state, build, history, size):
    c = conv()
    build(c)
    row = only_row(tmp_path, c.packets)
    assert (row.conn_state, row.history) == (state, history)
    # the client is the originator in every scenario, also when the server's packet came first
    assert (row.src_ip, row.src_port, row.dst_ip, row.dst_port) == (CLIENT, CPORT, SERVER, SPORT)
    assert (row.src_payload_bytes, row.dst_payload_bytes) == size
    client = [p for p in c.packets if p["src_port"] == CPORT]
    server = [p for p in c.packets if p["src_port"] == SPORT]
    assert (row.src_pkts, row.dst_pkts) == (len(client), len(server))
    assert (row.src_ip_bytes, row.dst_ip_bytes) == (sum(p["ip_len"] for p in client), sum(p["ip_len"] for p in server))


@pytest.mark.parametrize(
    "sides, state, history",
    [("cs", "SF", "Dd"), ("c", "S0", "D"), ("s", "SHR", "^d")],  # server on 53 speaks first: flipped
)
def test_udp_states(tmp_path, sides, state, history):
    pk = []
    for i, who in enumerate(sides):
        a, ap, b, bp = (CLIENT, 33000, SERVER, 53) if who == "c" else (SERVER, 53, CLIENT, 33000)
        pk.append(pkt(1.0 + i, a, ap, b, bp, proto="udp", payload=30 + 10 * i))
    row = only_row(tmp_path, pk)
    assert (row.conn_state, row.history, row.src_ip, row.src_port) == (state, history, CLIENT, 33000)


# ------------------------------------------------------------------- TCP flags
def test_every_flag_is_counted_per_direction(tmp_path):
    """Each of the 8 flag bits, per direction, with counts that differ bit by bit."""
    c = conv()
    c.syn()
    c.packets[-1]["tcp_flags"] |= FLAG_BITS["E"] | FLAG_BITS["C"]  # ECN setup SYN (RFC 3168)
    c.synack()
    c.packets[-1]["tcp_flags"] |= FLAG_BITS["E"]  # ECN setup SYN-ACK
    c.ack()
    plan = [(True, "PA", 2), (True, "UA", 3), (True, "EA", 4), (True, "CA", 5),
            (False, "PA", 6), (False, "UPA", 1), (False, "EA", 2), (False, "CA", 4)]
    for from_client, flags, times in plan:
        for _ in range(times):
            p = c.data(from_client, 10)
            p["tcp_flags"] = sum(FLAG_BITS[f] for f in flags)
    c.fin(True)
    c.rst(False)
    row = only_row(tmp_path, c.packets)
    for prefix, port in (("src", CPORT), ("dst", SPORT)):
        sent = [p["tcp_flags"] for p in c.packets if p["src_port"] == port]
        for name, letter in zip(("syn", "fin", "rst", "ack", "psh", "urg", "ece", "cwr"), "SFRAPUEC"):
            want = sum(1 for f in sent if f & FLAG_BITS[letter])
            assert row[f"{prefix}_{name}"] == want, (prefix, name)
    # the scenario really distinguishes the bits: no two of psh/urg/ece/cwr share a count per side
    assert len({row.src_psh, row.src_urg, row.src_ece, row.src_cwr}) == 4
    assert len({row.dst_psh, row.dst_urg, row.dst_ece, row.dst_cwr}) == 4
    assert row.conn_state == "RSTR"


# ------------------------------------------------------------ payload from seq/ack
def test_missing_middle_segment_is_counted_from_sequence_numbers(tmp_path):
    c = conv().handshake()
    c.data(True, 100)
    gap = c.data(True, 100)  # lost before the capture point
    c.data(True, 100)
    c.ack(False)
    c.close()
    pk = [p for p in c.packets if p is not gap]
    row = only_row(tmp_path, pk)
    assert (row.src_payload_bytes, row.dst_payload_bytes) == (300, 0)
    # the server's ACK covers the 100 bytes never seen: a content gap of the originator (G)
    assert (row.missed_bytes, row.conn_state, row.history) == (100, "SF", "ShADaGFf")


def test_missing_last_segments_are_counted_from_the_peers_ack(tmp_path):
    """Zeek's size is max(last sequence number, peer's acknowledgement) from the start: data
    missing from the capture but ACKed still counts, even when nothing later from its sender
    was captured (Zeek's core.tcp.miss-end-data baseline: resp_bytes 2902 from 4 packets of
    172 IP bytes)."""
    c = conv().handshake()
    c.data(True, 100)
    lost = [c.data(False, 1000), c.data(False, 400)]  # the server's answer never reached the capture
    c.ack(True)  # ... but the client acknowledges all of it
    c.fin(True)
    row = only_row(tmp_path, [p for p in c.packets if not any(p is q for q in lost)])
    assert (row.src_payload_bytes, row.dst_payload_bytes) == (100, 1400)
    # the client's ACK reveals the responder's gap (g), as in Zeek's baseline ShADafgF
    assert (row.dst_pkts, row.missed_bytes, row.conn_state, row.history) == (1, 1400, "S2", "ShADgF")


def test_payload_bytes_across_sequence_wrap(tmp_path):
    c = conv(cseq=2**32 - 300, sseq=2**32 - 10).handshake()
    for _ in range(5):
        c.data(True, 100)  # the client's third segment crosses 2**32
        c.data(False, 50)  # the server's first segment crosses it
    c.close()
    for p in c.packets:
        p["seq"] &= 0xFFFFFFFF
        p["ack"] &= 0xFFFFFFFF
    row = only_row(tmp_path, c.packets)
    assert (row.src_payload_bytes, row.dst_payload_bytes) == (500, 250)
    assert (row.conn_state, row.history) == ("SF", "ShADdFf")


# ---------------------------------------------- retransmissions and zero windows
def test_retransmissions_letters_at_1st_and_10th_per_direction(tmp_path):
    c = conv().handshake()
    d = c.data(True, 100)
    for _ in range(12):
        c.retransmit(d)
    e = c.data(False, 50)
    c.retransmit(e)
    row = only_row(tmp_path, c.packets)
    # T at the 1st and 10th client retransmission (Zeek's ScaledHistoryEntry), t at the server's 1st
    assert row.history == "ShADTTdt"
    assert (row.src_payload_bytes, row.dst_payload_bytes) == (100, 50)  # retransmissions counted once
    assert (row.src_pkts, row.dst_pkts) == (2 + 1 + 12, 1 + 2)


@pytest.mark.parametrize("count, letters", [(9, 1), (10, 2), (99, 2), (100, 3)])
def test_retransmission_letters_at_powers_of_ten(tmp_path, count, letters):
    # Zeek's ScaledHistoryEntry: a letter at the 1st, 10th, 100th, 1000th... occurrence
    c = conv().handshake()
    d = c.data(True, 100)
    for _ in range(count):
        c.retransmit(d)
    row = only_row(tmp_path, c.packets)
    assert row.history == "ShAD" + "T" * letters


def test_zero_window_letters_per_direction(tmp_path):
    c = conv().handshake()
    c.data(True, 100)
    for _ in range(10):
        c.ack(False)["window"] = 0  # 1st and 10th zero window: w twice
    c.data(False, 20)
    c.ack(True)["window"] = 0
    row = only_row(tmp_path, c.packets)
    assert row.history == "ShADawwdW"
    assert row.conn_state == "S1"


def test_zero_window_on_a_reset_is_not_a_letter(tmp_path):
    c = conv().handshake()
    c.data(True, 100)
    c.rst(False)["window"] = 0
    row = only_row(tmp_path, c.packets)
    assert (row.history, row.conn_state) == ("ShADr", "RSTR")


# ------------------------------------------------- the same states in Zeek's traces
# (state, Zeek test, originator address and port, Zeek's history in the baseline)
BASELINE_ROWS = [
    ("SF", "core.pbb", "10.199.249.11", 49601, "ShADFaf"),
    ("S1", "scripts.base.protocols.http.http-connect-with-header", "::1", 52522, "ShAaDd"),
    ("S0", "scripts.base.protocols.ssh.half-duplex-client", "192.168.1.79", 51880, "SAD"),
    ("SH", "scripts.base.protocols.ssh.half-duplex-client", "192.168.2.1", 57191, "SADF"),
    ("SHR", "scripts.base.protocols.ssh.half-duplex-server", "192.168.2.1", 57189, "^hadf"),
    ("RSTO", "scripts.base.protocols.pop3.bad-list-retr-crafted", "127.0.0.1", 58854, "ShAdDaFR"),
    ("RSTR", "scripts.base.protocols.ssh.basic", "192.168.2.1", 55179, "ShADadFr"),
    ("OTH", "scripts.base.protocols.redis.django-cloud", "192.168.1.4", 50044, "DdA"),
    # retransmissions both ways: t at the responder's 1st, T at the originator's 1st and 10th
    ("SF", "core.pppoe-over-qinq", "1.1.1.1", 20394, "ShADdtaTTtFf"),
]


def _baseline(test: str) -> list[dict]:
    path = CORPUS / "zeek" / "baselines" / test / "conn.log"
    fields, out = None, []
    for line in path.read_text().splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif not line.startswith("#") and fields:
            out.append(dict(zip(fields, line.split("\t"))))
    return out


@pytest.mark.corpus
@pytest.mark.parametrize("state, test, orig_h, orig_p, history", BASELINE_ROWS,
                         ids=[f"{b[0]}-{b[1].rsplit('.', 1)[-1]}" for b in BASELINE_ROWS])
def test_zeek_baseline_rows(corpus, state, test, orig_h, orig_p, history):
    entry = json.loads((corpus / "zeek" / "conformance.json").read_text())[test]
    zeek = [r for r in _baseline(test) if r["id.orig_h"] == orig_h and int(r["id.orig_p"]) == orig_p]
    assert (state, history) in [(r["conn_state"], r["history"]) for r in zeek]  # the citation is right
    trace = corpus / "zeek" / "traces" / entry["trace"]
    source = gzip.open(trace) if trace.name.endswith(".gz") else trace
    df = flowkit.flows(source).to_pandas()
    resp = (zeek[0]["id.resp_h"], int(zeek[0]["id.resp_p"]))
    mine = df[(df.src_ip == orig_h) & (df.src_port == orig_p) & (df.dst_ip == resp[0]) & (df.dst_port == resp[1])]
    # every connection Zeek logged on this five-tuple (a reused tuple has several)
    fields = ("conn_state", "history", "orig_pkts", "resp_pkts", "orig_bytes", "resp_bytes")
    want = sorted((r["conn_state"], r["history"], *(int(r[f]) for f in fields[2:])) for r in zeek)
    got = sorted(zip(mine.conn_state, mine.history, *(mine[c].astype(int) for c in (
        "src_pkts", "dst_pkts", "src_payload_bytes", "dst_payload_bytes"))))
    assert got == want


@pytest.mark.corpus
def test_zeek_counts_acked_data_missing_from_the_capture(corpus):
    """Zeek's core.tcp.miss-end-data: the server's data is not in the trace (4 packets, 172 IP
    bytes) but the client ACKs it, and Zeek logs resp_bytes 2902 (orig_bytes 538)."""
    (z,) = _baseline("core.tcp.miss-end-data")
    assert (z["orig_bytes"], z["resp_bytes"], z["resp_pkts"], z["resp_ip_bytes"]) == ("538", "2902", "4", "172")
    df = flowkit.flows(corpus / "zeek" / "traces" / "tcp" / "miss_end_data.pcap").to_pandas()
    assert len(df) == 1
    row = df.iloc[0]
    assert (row.src_payload_bytes, row.dst_payload_bytes, row.dst_pkts, row.dst_ip_bytes) == (538, 2902, 4, 172)
    assert (row.missed_bytes, row.history) == (int(z["missed_bytes"]), z["history"])
