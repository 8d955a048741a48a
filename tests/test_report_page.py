"""The whole report from a capture this test writes with dpkt: every number checked against
how the capture was built (handshakes, RTTs, ports, a scan, a DNS exchange, ARP frames)."""
from __future__ import annotations

import re
import socket
from collections import Counter
from pathlib import Path

import dpkt
import pandas as pd
import pytest

import flowkit
from flowkit.report import SECTIONS, render_html, write_report
from test_report_html import external_refs, parse, section_text

T0 = 1_700_000_000.0
CLIENT, SERVER, DNS, SCANNER = "10.0.0.5", "10.0.0.80", "10.0.0.53", "10.0.0.66"
MAC_A, MAC_B = b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02"
RTT_SERVER, RTT_CLIENT = 0.020, 0.005
N_COMPLETE, N_REJECTED, N_UNANSWERED, N_DNS, SCAN_PORTS, N_ARP = 24, 3, 2, 4, 30, 3


class Capture:
    """Writes Ethernet frames and remembers what it wrote (the test's truth)."""

    def __init__(self, path: Path):
        self.f = open(path, "wb")
        self.w = dpkt.pcap.Writer(self.f, linktype=dpkt.pcap.DLT_EN10MB, nano=False)
        self.kinds = Counter()
        self.packets = []

    def ip(self, t, src, dst, l4, proto):
        ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=proto, ttl=64, data=l4)
        ip.len = len(bytes(ip))
        self.packets.append((t, dpkt.ethernet.Ethernet(src=MAC_A, dst=MAC_B, type=dpkt.ethernet.ETH_TYPE_IP, data=ip)))
        self.kinds["tcp" if proto == dpkt.ip.IP_PROTO_TCP else "udp"] += 1

    def tcp(self, t, src, sport, dst, dport, flags, seq=0, ack=0, payload=b""):
        seg = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, win=65535, data=payload)
        self.ip(t, src, dst, seg, dpkt.ip.IP_PROTO_TCP)

    def udp(self, t, src, sport, dst, dport, payload):
        dg = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
        dg.ulen = len(bytes(dg))
        self.ip(t, src, dst, dg, dpkt.ip.IP_PROTO_UDP)

    def arp(self, t):
        arp = dpkt.arp.ARP(sha=MAC_A, spa=socket.inet_aton(CLIENT), tha=b"\x00" * 6, tpa=socket.inet_aton(SERVER))
        self.packets.append((t, dpkt.ethernet.Ethernet(src=MAC_A, dst=b"\xff" * 6, type=dpkt.ethernet.ETH_TYPE_ARP, data=arp)))
        self.kinds["non_ip"] += 1

    def close(self):
        for t, frame in sorted(self.packets, key=lambda p: p[0]):
            self.w.writepkt(bytes(frame), ts=t)
        self.f.close()


S, A, F, R, P = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_FIN, dpkt.tcp.TH_RST, dpkt.tcp.TH_PUSH


def build_capture(path: Path) -> Counter:
    cap = Capture(path)
    port = 40000  # one global counter, +1 per connection: a "sequential" client by construction
    t = T0
    for _ in range(N_COMPLETE):
        cs, ss = 1000, 5000
        cap.tcp(t, CLIENT, port, SERVER, 80, S, seq=cs)
        cap.tcp(t + RTT_SERVER, SERVER, 80, CLIENT, port, S | A, seq=ss, ack=cs + 1)
        cap.tcp(t + RTT_SERVER + RTT_CLIENT, CLIENT, port, SERVER, 80, A, seq=cs + 1, ack=ss + 1)
        cap.tcp(t + 0.030, CLIENT, port, SERVER, 80, P | A, seq=cs + 1, ack=ss + 1, payload=b"G" * 100)
        cap.tcp(t + 0.050, SERVER, 80, CLIENT, port, P | A, seq=ss + 1, ack=cs + 101, payload=b"H" * 500)
        cap.tcp(t + 0.060, CLIENT, port, SERVER, 80, F | A, seq=cs + 101, ack=ss + 501)
        cap.tcp(t + 0.070, SERVER, 80, CLIENT, port, F | A, seq=ss + 501, ack=cs + 102)
        cap.tcp(t + 0.080, CLIENT, port, SERVER, 80, A, seq=cs + 102, ack=ss + 502)
        port += 1
        t += 1.0
    for _ in range(N_REJECTED):
        cap.tcp(t, CLIENT, port, SERVER, 23, S, seq=7)
        cap.tcp(t + 0.001, SERVER, 23, CLIENT, port, R | A, seq=0, ack=8)
        port += 1
        t += 1.0
    for _ in range(N_UNANSWERED):
        for retry in (0.0, 1.0, 3.0):  # the kernel's SYN retries: 3 SYNs, no reply
            cap.tcp(t + retry, CLIENT, port, SERVER, 8080, S, seq=9)
        port += 1
        t += 5.0
    for k in range(N_DNS):
        cap.udp(t, CLIENT, 53000 + k, DNS, 53, b"q" * 30)
        cap.udp(t + 0.002, DNS, 53, CLIENT, 53000 + k, b"a" * 60)
        t += 0.5
    for k in range(SCAN_PORTS):  # vertical scan: even ports closed (RST), odd ones filtered (silence)
        cap.tcp(t, SCANNER, 6666, SERVER, 1000 + k, S, seq=1)
        if k % 2 == 0:
            cap.tcp(t + 0.0005, SERVER, 1000 + k, SCANNER, 6666, R | A, ack=2)
        t += 0.01
    for k in range(N_ARP):
        cap.arp(T0 + 0.5 + k)
    cap.close()
    return cap.kinds


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> tuple[Path, Counter]:
    path = tmp_path_factory.mktemp("report") / "built.pcap"
    return path, build_capture(path)


@pytest.fixture(scope="module")
def report(capture, tmp_path_factory) -> tuple[str, Counter]:
    path, kinds = capture
    out = write_report(path, tmp_path_factory.mktemp("out") / "report.html")
    return out.read_text(encoding="utf-8"), kinds


def test_every_section_present_and_self_contained(report):
    html, _ = report
    doc = parse(html)
    assert [e["attrs"]["id"] for e in doc.find("section")] == [sid for sid, _ in SECTIONS]
    assert external_refs(html) == []
    assert not re.search(r"https?://", html)  # not even a namespace URL: nothing that looks fetchable
    assert 'id="problems"' not in html, section_text(html, "problems") if 'id="problems"' in html else ""
    assert doc.count("svg", "chart") >= 8


def test_overview_and_ledger_numbers_match_the_capture(report):
    html, kinds = report
    total = sum(kinds.values())
    doc = parse(html)
    ov = section_text(html, "overview")
    assert f"{total:,}" in ov
    flows = N_COMPLETE + N_REJECTED + N_UNANSWERED + N_DNS + SCAN_PORTS
    assert re.search(rf"flows\s+{flows:,}", ov)
    tips = dict(t.split(": ") for t in doc.titles_of("rect", "bar", section="ledger"))
    assert int(tips["tcp"]) == kinds["tcp"]
    assert int(tips["udp"]) == kinds["udp"]
    assert int(tips["non_ip"]) == kinds["non_ip"]
    assert sum(int(v) for v in tips.values()) == total
    assert "built.pcap" in section_text(html, "overview")


def test_handshake_outcomes_and_rtts(report):
    html, _ = report
    doc = parse(html)
    tips = doc.titles_of("rect", "bar", section="handshakes")
    outcomes = dict(t.split(": ") for t in tips if t.split(":")[0] in ("complete", "rejected", "unanswered"))
    assert outcomes == {"complete": str(N_COMPLETE),
                        "rejected": str(N_REJECTED + SCAN_PORTS // 2),
                        "unanswered": str(N_UNANSWERED + SCAN_PORTS // 2)}
    # RTT histograms: 24 server RTTs in the bin holding 20 ms, 24 client RTTs at 5 ms
    bins = [t for t in tips if t[0].isdigit()]
    counts = [(t, int(t.rsplit(": ", 1)[1])) for t in bins]
    assert sum(c for _, c in counts) == 2 * N_COMPLETE
    text = section_text(html, "handshakes")
    assert "20 ms" in text and "5 ms" in text
    assert f"{N_UNANSWERED} of {N_COMPLETE + N_REJECTED + N_UNANSWERED + SCAN_PORTS} TCP flows retried" in text


def test_ports_services_exposure_and_scan(report):
    html, _ = report
    doc = parse(html)
    svc = [t.split(":")[0] for t in doc.titles_of("rect", "bar", section="services")]
    assert svc[0].startswith("80/tcp")  # most flows: the 24 HTTP connections
    assert any(s.startswith("53/udp") for s in svc)
    exp = dict(t.split(": ") for t in doc.titles_of("rect", "bar", section="exposure"))
    # 10.0.0.80: open 80; closed 23 and 15 scanned ports; filtered 8080 and 15 scanned ports
    assert exp[f"{SERVER} / open"] == "1"
    assert exp[f"{SERVER} / closed"] == str(1 + SCAN_PORTS // 2)
    assert exp[f"{SERVER} / filtered"] == str(1 + SCAN_PORTS // 2)
    assert exp[f"{DNS} / open"] == "1"
    scans = section_text(html, "scans")
    assert SCANNER in scans and "vertical" in scans and str(SCAN_PORTS) in scans


def test_ephemeral_panel_shows_the_sequential_client(report):
    html, _ = report
    doc = parse(html)
    text = section_text(html, "ephemeral")
    n = N_COMPLETE + N_REJECTED + N_UNANSWERED
    assert f"{CLIENT}: {n} connections" in text
    assert "sequential" in text
    panels = [e for e in doc.find("svg", "scatter", section="ephemeral")]
    assert len(panels) >= 1
    # the client's panel (its <svg> title names it) has one point per connection, at its source port
    mine = [e["title"] for e in doc.find("circle", "pt", section="ephemeral")
            if (e["parent"]["title"] or "").startswith(f"{CLIENT}:")]
    ports = sorted(int(m) for m in re.findall(r"port (\d+) at", " ".join(mine)))
    assert ports == list(range(40000, 40000 + n))
    # coloured by destination: port 80, 23 and 8080 of the server
    assert {t.split(" port")[0] for t in mine} == {f"{SERVER}:80", f"{SERVER}:23", f"{SERVER}:8080"}


def test_report_from_a_flow_table_and_a_dataframe_agree(capture, tmp_path):
    path, kinds = capture
    table = flowkit.flows(path)
    a = render_html(table, ledger=table.stats, title="t", sources=["built.pcap"])
    b = render_html(table.to_pandas(), ledger=table.stats.to_dict(), title="t", sources=["built.pcap"])
    strip = lambda h: re.sub(r"made by flowkit .*? on [^<]*", "", h)  # noqa: E731
    assert strip(a) == strip(b)
    out = write_report(table, tmp_path / "r.html")
    assert f"{sum(kinds.values()):,}" in section_text(out.read_text(), "overview")


def test_report_from_a_dataframe_without_ledger_says_so(capture):
    path, _ = capture
    df = flowkit.flows(path).to_pandas()
    html = render_html(df)
    assert "no packet ledger" in section_text(html, "ledger")
    assert isinstance(df, pd.DataFrame)


def test_report_from_a_batch_dataset_directory(capture, tmp_path):
    path, kinds = capture
    flowkit.batch([str(path)], tmp_path / "ds")
    assert (tmp_path / "ds" / "manifest.json").is_file()
    html = write_report(tmp_path / "ds", tmp_path / "ds.html").read_text()
    doc = parse(html)
    # the dataset's per-capture ledger is read back: same categories as the capture
    tips = dict(t.split(": ") for t in doc.titles_of("rect", "bar", section="ledger"))
    assert {k: int(v) for k, v in tips.items() if int(v)} == dict(kinds)
    flows = N_COMPLETE + N_REJECTED + N_UNANSWERED + N_DNS + SCAN_PORTS
    assert re.search(rf"flows\s+{flows:,}", section_text(html, "overview"))
    assert "built.pcap" in section_text(html, "overview")
    assert 'id="problems"' not in html


def record_offsets(data: bytes) -> list[int]:
    """Byte offset of each record header of a little-endian classic pcap (as dpkt writes it)."""
    offsets, off = [], 24
    while off + 16 <= len(data):
        offsets.append(off)
        off += 16 + int.from_bytes(data[off + 8:off + 12], "little")
    return offsets


def test_damaged_capture_shows_its_damage_line(capture, tmp_path):
    path, kinds = capture
    data = path.read_bytes()
    last = record_offsets(data)[-1]
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:last + 16 + 10])  # the last record stops 10 bytes into its data
    html = write_report(cut, tmp_path / "cut.html").read_text()
    ledger = section_text(html, "ledger")
    assert "Damage" in ledger and f"offset {last}" in ledger and "cut.pcap" in ledger
    # the packets before the damage are kept and counted
    assert f"{sum(kinds.values()) - 1:,}" in section_text(html, "overview")


def test_two_captures_make_one_report(capture, tmp_path):
    path, kinds = capture
    other = tmp_path / "dns_only.pcap"
    cap = Capture(other)
    for k in range(5):
        cap.udp(T0 + 100 + k, "10.0.1.9", 55000 + k, DNS, 53, b"q" * 20)
    cap.close()
    html = write_report([path, other], tmp_path / "both.html").read_text()
    ov = section_text(html, "overview")
    assert "built.pcap" in ov and "dns_only.pcap" in ov
    assert f"{sum(kinds.values()) + 5:,}" in ov
    tips = dict(t.split(": ") for t in parse(html).titles_of("rect", "bar", section="ledger"))
    assert int(tips["udp"]) == kinds["udp"] + 5
