"""The command in a real terminal (tmux at 80, 120 and 160 columns) and its progress line."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time

import dpkt
import pytest

from conftest import ROOT, SAMPLES
from flowkit import progress
from pcapgen import write_pcap
from test_cli_stdout import udp_frame
from test_cli_tables import FLOWS_DROP_ORDER

MIXED = SAMPLES / "mixed.pcap"
HTTP = SAMPLES / "http.pcap"  # sample_pcaps/README.md: 70 packets, 6 TCP flows
PHASES = ("reading", "finishing", "writing")  # how a progress line starts


class Terminal:
    """A tmux window of a given width on a private server, running commands in the checkout."""

    def __init__(self, width: int):
        self.width = width
        self.socket = f"flowkit-test-{os.getpid()}-{width}"
        self.tmux("new-session", "-d", "-s", "t", "-x", str(width), "-y", "50", "-c", str(ROOT))
        self.tmux("set-option", "-g", "history-limit", "5000")

    def tmux(self, *args) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30,
                              check=True).stdout

    def run(self, command: str, *, watch=None, timeout: float = 180) -> list[str]:
        """Type ``command``, wait until it ends; the screen's logical lines (wrapped ones joined).
        ``watch(lines)`` is called with each screen seen while it runs."""
        self.tmux("send-keys", "-t", "t", f"clear; tmux -L {self.socket} clear-history; {command}; echo __END__$?",
                  "Enter")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.screen()
            if any(line.startswith("__END__") for line in lines):
                return lines[:next(i for i, line in enumerate(lines) if line.startswith("__END__")) + 1]
            if watch is not None:
                watch(lines)
            time.sleep(0.1)
        raise AssertionError(f"{command!r} did not finish in the terminal")

    def screen(self) -> list[str]:
        text = self.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "t")
        lines = [line.rstrip() for line in text.splitlines()]
        start = max((i for i, line in enumerate(lines) if "__END__$?" in line), default=-1) + 1
        return [line for line in lines[start:] if line]

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30)
        # the server is gone, its socket file is not: remove it so runs leave nothing in /tmp
        path = os.path.join(os.environ.get("TMUX_TMPDIR", "/tmp"), f"tmux-{os.getuid()}", self.socket)
        if os.path.exists(path):
            os.unlink(path)


def _terminal(width: int):
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (CI installs it with apt-get)")
    term = Terminal(width)
    yield term
    term.close()


@pytest.fixture(params=[80, 120, 160], ids=lambda w: f"{w}cols")
def terminal(request):
    yield from _terminal(request.param)


@pytest.fixture
def terminal80():
    yield from _terminal(80)


def flowkit(*args) -> str:
    return " ".join([shlex.quote(sys.executable), "-m", "flowkit", *map(shlex.quote, map(str, args))])


def endpoints(path) -> tuple[set[str], set[str]]:
    """Addresses and ports of the TCP/UDP packets of a capture, read with dpkt (the truth)."""
    import ipaddress

    addresses, ports = set(), set()
    with open(path, "rb") as f:
        for _, buf in dpkt.pcap.Reader(f):
            ip = dpkt.ethernet.Ethernet(buf).data
            if isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)) and isinstance(ip.data, (dpkt.tcp.TCP, dpkt.udp.UDP)):
                addresses |= {str(ipaddress.ip_address(ip.src)), str(ipaddress.ip_address(ip.dst))}
                ports |= {str(ip.data.sport), str(ip.data.dport)}
    return addresses, ports


# docs/cli.md: the short header names a narrow table uses
SHORT = {"sport": "src_port", "dport": "dst_port", "state": "conn_state", "spkts": "src_pkts", "dpkts": "dst_pkts",
         "sbytes": "src_payload_bytes", "dbytes": "dst_payload_bytes", "dur": "duration", "start": "ts_start"}


def test_flow_table_fits_and_keeps_whole_addresses_and_ports(terminal):
    lines = terminal.run(flowkit("flows", MIXED, "-n", "8", "--sort", "-src_pkts"))
    assert lines[-1] == "__END__0"
    assert all(len(line) <= terminal.width for line in lines)  # nothing wrapped
    columns = [SHORT.get(h, h) for h in lines[0].split()]
    addresses, ports = endpoints(MIXED)
    for line in lines[1:9]:
        row = line.split()
        # a date-less time is one word, a full timestamp two
        cells = dict(zip(columns, row if len(row) == len(columns) else [" ".join(row[:2]), *row[2:]]))
        assert {cells["src_ip"], cells["dst_ip"]} <= addresses
        assert {cells["src_port"], cells["dst_port"]} <= ports
    gone = [c for c in FLOWS_DROP_ORDER if c not in columns]
    assert gone == FLOWS_DROP_ORDER[:len(gone)]  # what went, went in the documented order
    # mixed.pcap's addresses are 9 characters at most: at 120 columns short names and times fit all
    assert (gone == []) == (terminal.width >= 120)
    assert any(line.startswith("not shown at") for line in lines) == bool(gone)


def test_wide_keeps_every_column_even_past_the_edge(terminal):
    lines = terminal.run(flowkit("flows", MIXED, "-n", "3", "--wide"))
    assert lines[0].split()[:3] == ["ts_start", "proto", "src_ip"] and "dst_payload_bytes" in lines[0]
    assert (max(map(len, lines)) > terminal.width) == (terminal.width < 185)  # the full width is 185 here


def test_analysis_tables_fit(terminal):
    for command in ("exposure", "handshakes", "ephemeral", "scans", "ports"):
        lines = terminal.run(flowkit(command, MIXED, "-n", "5"))
        assert lines[-1] == "__END__0", lines
        assert all(len(line) <= terminal.width for line in lines if not line.startswith("/")), (command, lines)


def test_short_run_draws_no_bar_and_ends_with_a_summary(terminal):
    # FLOWKIT_PROGRESS_DELAY=30: far longer than this run; the line is drawn only after it
    lines = terminal.run("FLOWKIT_PROGRESS_DELAY=30 " + flowkit("flows", HTTP, "-o", "/dev/null", "--format", "csv"),
                         watch=lambda lines: not any(line.startswith(PHASES) for line in lines) or pytest.fail(str(lines)))
    assert lines[-3] == "wrote 6 flows to /dev/null (csv)"
    assert re.fullmatch(r"read 70 packets into 6 flows in \d+\.\d s \(\d+k? packets/s while reading\)", lines[-2])


@pytest.fixture(scope="module")
def slow_capture(tmp_path_factory):
    """20,000 UDP flows of 2 packets, read with the dpkt engine (pure Python): seconds of work."""
    path = tmp_path_factory.mktemp("slow") / "slow.pcap"
    packets = []
    for i in range(20000):
        t = 1_000_000_000_000 + i * 1_000_000
        packets += [(t, udp_frame("10.3.0.1", 1024 + i % 60000, f"10.3.{1 + i // 60000}.2", 53)),
                    (t + 1000, udp_frame(f"10.3.{1 + i // 60000}.2", 53, "10.3.0.1", 1024 + i % 60000))]
    return write_pcap(path, packets, nanosecond=True)


@pytest.mark.slow
def test_progress_line_never_wraps_and_the_summary_counts(terminal80, slow_capture, tmp_path):
    terminal = terminal80
    seen = []

    def watch(lines):
        seen.extend(line for line in lines if line.startswith(PHASES))

    out = tmp_path / "flows.jsonl"
    lines = terminal.run("FLOWKIT_PROGRESS_DELAY=0 " + flowkit("flows", slow_capture, "--engine", "dpkt", "-o", out),
                         watch=watch)
    assert lines[-1] == "__END__0"
    assert seen, "no progress line was seen during a run of seconds"
    assert all(len(line) < terminal.width for line in seen)  # joined lines: a wrapped one would be longer
    for line in seen:
        if line.startswith("reading"):
            percent = int(re.match(r"reading\s+(\d+)%", line).group(1))
            assert 0 <= percent <= 100
    assert lines[-3] == f"wrote 20,000 flows to {out} (jsonl)"
    assert lines[-2].startswith("read 40,000 packets into 20,000 flows in ")


# ----------------------------------------------------------------------------- the line itself
class FakeSession(progress.Session):
    def __init__(self, packets=0):
        super().__init__()
        self.packets = packets


@pytest.mark.parametrize("width", [30, 40, 60, 79, 119, 159, 250])
def test_reading_line_fits_every_width(width, tmp_path, monkeypatch):
    capture = tmp_path / "c.pcap"
    capture.write_bytes(b"\0" * 1000)
    phase = progress._Reading(FakeSession(861_024), [str(capture)])
    clock = [100.0]
    monkeypatch.setattr(progress, "_now", lambda: clock[0])
    phase.began = 98.0  # two seconds in
    phase.done = {str(capture.resolve()): 500}  # half read
    line = phase.line(width, 0)
    assert len(line) <= width
    assert line.startswith("reading") and " 50%" in line
    if width >= 79:
        assert "0:02 left" in line and "431k packets/s" in line  # 2 s for half: 2 s for the rest
    if width >= 119:
        assert "861,024 packets" in line


def test_time_left_is_honest_about_finishing(tmp_path, monkeypatch):
    capture = tmp_path / "c.pcap"
    capture.write_bytes(b"\0" * 1000)
    phase = progress._Reading(FakeSession(10), [str(capture)])
    monkeypatch.setattr(progress, "_now", lambda: 110.0)
    phase.began = 100.0
    phase.done = {str(capture.resolve()): 1000}
    phase.read_all_at = 105.0  # every byte read, the flows not yet built: no time-left claim
    line = phase.line(120, 0)
    assert line.startswith("finishing") and "left" not in line
    phase.read_all_at, phase.done = None, {str(capture.resolve()): 5}  # 0.5 %: too little to average
    assert "left" not in phase.line(120, 0)


def test_summary_line():
    session = FakeSession(979_032)
    session.read, session.flows, session.reading_time = True, 79_752, 2.0
    assert re.fullmatch(r"read 979,032 packets into 79,752 flows in \d+\.\d s \(490k packets/s while reading\)",
                        session.summary())


def test_working_line_names_the_work_and_its_time(monkeypatch):
    monkeypatch.setattr(progress, "_now", lambda: 103.5)
    phase = progress._Working(FakeSession(), "analysing 79,752 flows")
    phase.began = 100.0
    assert phase.line(80, 1) == "analysing 79,752 flows /  0:04"  # 3.5 s shown as 4: never 0 while working
    assert len(phase.line(20, 1)) <= 20
