"""Nothing surprising in silence: no flow made, time going backwards, options that cannot apply."""
from __future__ import annotations

import socket

import dpkt
import pytest

from conftest import SAMPLES
from pcapgen import write_pcap
from test_cli_stdout import udp_frame

HTTP = SAMPLES / "http.pcap"
DNS = SAMPLES / "dns.pcap"


def icmp_frame(src: str, dst: str) -> bytes:
    icmp = dpkt.icmp.ICMP(type=8, code=0, data=dpkt.icmp.ICMP.Echo(id=1, seq=1, data=b"ping"))
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=dpkt.ip.IP_PROTO_ICMP, data=icmp, ttl=64)
    ip.len = len(ip)
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=dpkt.ethernet.ETH_TYPE_IP, data=ip))


def notes(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("flowkit: ")]


def test_unsupported_link_type_says_why_no_flow(run, tmp_path):
    # 1,333 records of link type 230 (IEEE 802.15.4), which flowkit does not decode
    path = write_pcap(tmp_path / "wpan.pcap", [(1000.0 + i / 1000, b"\x00" * 60) for i in range(1333)], linktype=230)
    rc, out, err = run("flows", path)
    assert rc == 0 and out.strip().splitlines()[-1] == "0 of 0 flows"
    assert notes(err) == ["flowkit: 1,333 packets, none in a flow: 1,333 unsupported link type 230"]


def test_icmp_makes_flows_and_packet_filter_says_why(run, tmp_path):
    # every IP protocol makes flows: three pings are one ICMP connection, nothing to explain
    path = write_pcap(tmp_path / "ping.pcap", [(1000.0 + i, icmp_frame("10.0.0.1", "10.0.0.2")) for i in range(3)])
    rc, out, err = run("flows", path)
    assert rc == 0 and notes(err) == [] and out.strip().splitlines()[-1] == "1 of 1 flows"
    # dns.pcap (sample_pcaps/README.md): 31 UDP packets and 1 ICMP port unreachable, no TCP
    rc, _, err = run("flows", DNS, "--packet-filter", "tcp")
    assert notes(err) == ["flowkit: 32 packets, none in a flow: 32 not matching --packet-filter 'tcp'"]


def test_arp_only_says_why(run, tmp_path):
    arp = bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\xff" * 6, type=dpkt.ethernet.ETH_TYPE_ARP,
                                       data=dpkt.arp.ARP()))
    path = write_pcap(tmp_path / "arp.pcap", [(1000.0 + i, arp) for i in range(4)])
    rc, _, err = run("flows", path)
    assert notes(err) == ["flowkit: 4 packets, none in a flow: 4 not IP (ARP, LLDP, ...)"]


def test_flow_filter_matching_nothing_says_so(run):
    rc, _, err = run("flows", HTTP, "--filter", "port 9")
    assert notes(err) == ["flowkit: 6 flows, none matching --filter 'port 9'"]


def test_quiet_and_ordinary_runs_say_nothing(run, tmp_path):
    path = write_pcap(tmp_path / "wpan.pcap", [(1000.0, b"\x00" * 60)], linktype=230)
    assert run("flows", path, "--quiet")[2] == ""
    assert run("flows", HTTP)[2] == ""


def two_captures(tmp_path, first_start: float, second_start: float):
    a = write_pcap(tmp_path / "a.pcap", [(first_start + i, udp_frame("10.0.0.1", 5000, "10.0.0.2", 53))
                                         for i in range(3)])  # ends at first_start + 2
    b = write_pcap(tmp_path / "b.pcap", [(second_start + i, udp_frame("10.0.0.3", 5000, "10.0.0.2", 53))
                                         for i in range(3)])
    return a, b


def test_time_going_backwards_between_captures_is_a_warning(run, tmp_path):
    a, b = two_captures(tmp_path, 2000.0, 1000.0)  # b starts 1,002 s before a ends
    rc, out, err = run("flows", a, b)
    assert rc == 0 and len(notes(err)) == 1
    assert notes(err)[0].startswith(f"flowkit: warning: time goes backwards: {b} starts at "
                                    "1970-01-01T00:16:40.000000000Z, 1,002.000000 s before " + str(a) + " ends")
    rc, _, err = run("packets", a, b)  # packets reads them as one too
    assert len(notes(err)) == 1 and "time goes backwards" in err
    assert "time goes backwards" not in run("flows", b, a)[2]  # in time order: nothing to say


@pytest.mark.parametrize("options, named", [
    (["--packet-filter", "tcp"], "--packet-filter"),
    (["--tcp-timeout", "5", "--udp-timeout", "5"], "--tcp-timeout, --udp-timeout"),
    (["--idle-timeout", "5"], "--tcp-timeout"),  # the older name is the same option
    (["--engine", "dpkt", "--strict"], "--engine, --strict"),
])
def test_capture_options_on_a_saved_table_are_named(run, tmp_path, options, named):
    saved = tmp_path / "flows.parquet"
    assert run("flows", HTTP, "-o", saved)[0] == 0
    rc, _, err = run("exposure", saved, *options)
    assert rc == 0
    assert notes(err) == [f"flowkit: warning: {named} appl{'ies' if ',' not in named else 'y'} to captures, "
                          "not to saved flow tables: ignored"]
    assert run("exposure", saved, "--filter", "tcp")[2] == ""  # the flow filter does apply


def test_capture_options_on_a_dataset_report_are_named(run, tmp_path):
    assert run("batch", HTTP, "-o", tmp_path / "dataset", "-q")[0] == 0
    rc, _, err = run("report", tmp_path / "dataset", "-o", tmp_path / "r.html", "--tcp-timeout", "5")
    assert rc == 0
    assert notes(err)[0] == ("flowkit: warning: --tcp-timeout applies to captures, not to saved flow tables: "
                             "ignored")


def test_fragments_never_completed_say_so(run, tmp_path):
    # two first fragments (MF set, offset 0) of datagrams whose rest never comes: reassembly
    # gives them up at the end, so they are not "counted in the datagram they completed"
    from pcapgen import write_ip_pcap

    def first_fragment(ident: int) -> dpkt.ip.IP:
        udp = dpkt.udp.UDP(sport=5000, dport=53, data=b"x" * 40)
        udp.ulen = len(udp)
        ip = dpkt.ip.IP(src=socket.inet_aton("10.0.0.1"), dst=socket.inet_aton("10.0.0.2"), p=dpkt.ip.IP_PROTO_UDP,
                        id=ident, data=bytes(udp)[:24], ttl=64)
        ip.mf = 1
        ip.len = len(ip)
        return ip

    path = write_ip_pcap(tmp_path / "frag.pcap", [first_fragment(1), first_fragment(2)])
    rc, _, err = run("flows", path)
    assert rc == 0
    assert notes(err) == ["flowkit: 2 packets, none in a flow: 2 IP fragments of datagrams never completed"]
