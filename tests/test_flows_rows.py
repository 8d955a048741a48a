"""Connection rows to Arrow (flows/rows.py, _rows.c): null marks, text widths, local networks.

Rows come from captures written here (what was on the wire) or are filled by hand through
the row layout (flows/layout.py): the expected values are how they were made.
"""
from __future__ import annotations

import pandas as pd
import pyarrow as pa

import flowkit
from flowgen import Conversation, batch, pkt
from flowkit.flows.layout import conn, empty_rows, key
from flowkit.flows.local import LocalNets
from flowkit.flows.rows import STATE_SCHEMA, rows_to_arrow

HANDSHAKE = ["syn_ts", "syn_last_ts", "synack_ts", "ack_ts"]


def arrow_of(packets) -> pa.Table:
    return flowkit.flows([batch(packets)]).to_arrow().sort_by("src_port")


def test_handshake_times_are_null_without_their_packets():
    answered = Conversation("10.0.0.1", 40010, "10.0.0.2", 80, step=0.5)
    s, sa = answered.syn(), answered.synack()  # no ACK
    lone = Conversation("10.0.0.1", 40011, "10.0.0.3", 80, t=1100.0)
    s2 = lone.syn()
    udp = [pkt(1200.0, "10.0.0.1", 40012, "10.0.0.4", 53, proto="udp", payload=20)]
    t = arrow_of(answered.packets + lone.packets + udp)
    ns = lambda p: pd.Timestamp(p["ts"], unit="ns", tz="UTC")  # noqa: E731
    rows = {name: t.column(name).to_pylist() for name in HANDSHAKE}
    assert [rows[n][0] for n in HANDSHAKE] == [ns(s), ns(s), ns(sa), None]
    assert [rows[n][1] for n in HANDSHAKE] == [ns(s2), ns(s2), None, None]
    assert [rows[n][2] for n in HANDSHAKE] == [None] * 4
    assert [t.column(n).null_count for n in HANDSHAKE] == [1, 1, 2, 3]
    assert t.column("ts_start").null_count == 0 and t.column("ts_end").null_count == 0
    assert t.column("icmp_error_type").null_count == 3 and t.column("icmp_error_src").null_count == 3


def _hand_rows(n):
    C, H, K = empty_rows(n)
    c, k = conn(C), key(K)
    c["proto"], k["proto"], k["ipver"] = 6, 6, 4
    return C, H, K, c, k


def test_history_and_server_name_use_their_whole_width():
    C, H, K, c, k = _hand_rows(3)
    letters = (b"ShADadFfTtWwGgCc" * 4)[:H.shape[1]]
    H[0] = list(letters)  # every byte a letter: no NUL
    H[1, :3] = list(b"Sh\0")
    width = c["name"].shape[1]
    c["name"][0] = list(b"n" * (width - 1) + b"\0")
    c["name"][1, :12] = list(b"example.org\0")
    t = rows_to_arrow(C, H, K)
    assert t.column("history").to_pylist() == [letters.decode(), "Sh", ""]
    assert t.column("server_name").to_pylist() == ["n" * (width - 1), "example.org", ""]


def test_times_from_zero_are_valid_negative_ones_null():
    C, H, K, c, k = _hand_rows(3)
    c["ts0"] = [0, -1, 5]
    t = rows_to_arrow(C, H, K)
    assert t.schema == STATE_SCHEMA
    assert t.column("ts_start").cast(pa.int64()).to_pylist() == [0, None, 5]
    assert t.column("ts_end").cast(pa.int64()).to_pylist() == [0, 0, 0]  # the rows' end time is 0


def test_local_networks_of_both_roles():
    C, H, K, c, k = _hand_rows(3)
    v4 = lambda a, b, c_, d: (0xFFFF << 32) | (a << 24) | (b << 16) | (c_ << 8) | d  # noqa: E731  ::ffff:a.b.c.d
    k["alo"] = [v4(10, 1, 2, 3), v4(11, 0, 0, 1), 0]
    k["ahi"] = [0, 0, 0xFD00 << 48]  # fd00::
    k["blo"] = [v4(8, 8, 8, 8), v4(10, 255, 0, 1), 1]
    k["bhi"] = [0, 0, 0x2001_0DB8 << 32]  # 2001:db8::1
    c["orig"] = 0  # side a originates
    k["ipver"] = [4, 4, 6]
    nets = LocalNets(["10.0.0.0/8", "fc00::/7"])
    t = rows_to_arrow(C, H, K, nets)
    assert t.column("src_ip").to_pylist() == ["10.1.2.3", "11.0.0.1", "fd00::"]
    assert t.column("dst_ip").to_pylist() == ["8.8.8.8", "10.255.0.1", "2001:db8::1"]
    assert t.column("local_orig").to_pylist() == [True, False, True]
    assert t.column("local_resp").to_pylist() == [False, True, False]
    # the same networks through LocalNets itself (output.py's path)
    assert nets.contains_words(k["ahi"], k["alo"]).tolist() == [True, False, True]
