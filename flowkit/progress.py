"""The status line of the ``flowkit`` command on stderr (terminals only), and its summary.

One ``Session`` per command: a *reading* phase (bytes of the input files, packets decoded,
the time left), a *finishing* phase once the files are read while flows are still being
built, an *analysing* phase for an analysis command, a *writing* phase while an output file
grows, then one summary line. Nothing is
drawn before ``DELAY`` seconds into the command, so a short run shows no bar at all, only
the summary. The line always fits the terminal width (parts give way, never wrapping).

The library reads the files itself, so the reading phase follows the file position the
kernel reports for the descriptor (``/proc/self/fdinfo``), polled a few times a second: no
callback into the hot path. The time left is the average rate since reading began applied
to the bytes still to read, shown only once there is enough to average.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Sequence

DELAY = 1.0  # seconds before anything is drawn (FLOWKIT_PROGRESS_DELAY changes it)
TICK = 0.2  # seconds between redraws
SPINNER = "|/-\\"
BAR = ("\u2501", "\u2500") if (getattr(sys.stderr, "encoding", "") or "").lower().replace("-", "") == "utf8" else ("#", "-")


def _now() -> float:
    return time.monotonic()


def _clock(seconds: float) -> str:
    seconds = int(seconds + 0.999)  # never show 0:00 while work is left
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f}"


def rate(count: float, seconds: float) -> str:
    """``1.58M``, ``232k``, ``950``: a per-second rate in three significant digits or so."""
    per = count / seconds if seconds > 0 else 0.0
    if per >= 1e6:
        return f"{per / 1e6:.2f}M"
    if per >= 1e3:
        return f"{per / 1e3:.0f}k"
    return f"{per:.0f}"


def fit_line(parts: list[tuple[int, str]], width: int, bar: tuple[float, int] | None = None) -> str:
    """Join ``(priority, text)`` parts with two spaces, dropping the lowest priorities (higher
    number) until the line fits ``width``. ``bar``: (fraction, place) puts a bar of 10 to 40
    cells after the part at index ``place``; the parts give way to its 10 cells first."""
    room = width - (12 if bar is not None else 0)
    kept = list(parts)
    while len(kept) > 1 and len("  ".join(t for _, t in kept)) > room:
        worst = max(range(len(kept)), key=lambda i: (kept[i][0], i))
        kept.pop(worst)
    texts = [t for _, t in kept]
    if bar is not None and room > 0:
        fraction, place = bar
        cells = min(40, width - len("  ".join(texts)) - 2)
        done = int(round(max(0.0, min(1.0, fraction)) * cells))
        full, empty = BAR
        texts.insert(min(place + 1, len(texts)), full * done + empty * (cells - done))
    return "  ".join(texts)[:width]


class _Phase:
    def __init__(self, session: "Session"):
        self.session = session
        self.began = _now()

    def line(self, width: int, tick: int) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def poll(self) -> None:
        pass


class _Reading(_Phase):
    def __init__(self, session, paths: Sequence[str]):
        super().__init__(session)
        self.stdin = "-" in paths
        files = [os.path.realpath(p) for p in paths if p != "-" and os.path.isfile(p)]
        self.sizes = {p: os.path.getsize(p) for p in files}
        self.total = sum(self.sizes.values())
        self.done: dict[str, int] = {}
        self.read_all_at: float | None = None

    def poll(self) -> None:
        if not self.sizes or not os.path.isdir("/proc/self/fdinfo"):
            return
        try:
            fds = os.listdir("/proc/self/fd")
        except OSError:
            return
        for fd in fds:
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
                if target in self.sizes:
                    with open(f"/proc/self/fdinfo/{fd}") as f:
                        pos = int(f.readline().split()[1])
                    self.done[target] = max(self.done.get(target, 0), min(pos, self.sizes[target]))
            except (OSError, ValueError, IndexError):
                continue
        if self.read_all_at is None and self.total and sum(self.done.values()) >= self.total:
            self.read_all_at = _now()

    def line(self, width: int, tick: int) -> str:
        elapsed = _now() - self.began
        packets = self.session.packets
        parts = []
        if not self.total:  # standard input: no size to measure against
            parts = [(0, "reading standard input" if self.stdin else "reading"), (1, f"{packets:,} packets"),
                     (2, f"{rate(packets, elapsed)} packets/s"), (3, _clock(elapsed))]
            return fit_line(parts, width)
        done = sum(self.done.values())
        fraction = done / self.total
        if self.read_all_at is not None:  # every byte read; decoding and flows still going
            parts = [(0, f"finishing {SPINNER[tick % len(SPINNER)]}"), (1, f"{packets:,} packets"),
                     (3, f"{rate(packets, elapsed)} packets/s"), (2, _clock(elapsed))]
            return fit_line(parts, width)
        left = "" if elapsed < 1.0 or fraction < 0.01 else f"{_clock(elapsed * (1 - fraction) / fraction)} left"
        parts = [(0, "reading"), (1, f"{100 * fraction:3.0f}%"), (4, f"{_mb(done)}/{_mb(self.total)} MB"),
                 (6, f"{_mb(done / elapsed if elapsed else 0)} MB/s"), (5, f"{packets:,} packets"),
                 (3, f"{rate(packets, elapsed)} packets/s"), (2, left or "")]
        parts = [p for p in parts if p[1]]
        return fit_line(parts, width, bar=(fraction, 1))


class _Writing(_Phase):
    def __init__(self, session, path):
        super().__init__(session)
        self.path = path
        self.size = 0

    def poll(self) -> None:
        try:
            self.size = os.path.getsize(self.path)
        except OSError:
            pass

    def line(self, width: int, tick: int) -> str:
        name = os.path.basename(str(self.path)) or str(self.path)
        parts = [(0, f"writing {SPINNER[tick % len(SPINNER)]}"), (2, name), (1, f"{_mb(self.size)} MB"),
                 (3, _clock(_now() - self.began))]
        return fit_line(parts, width)


class _Working(_Phase):
    """Work with no measure of its own (an analysis): what, and for how long."""

    def __init__(self, session, label: str):
        super().__init__(session)
        self.label = label

    def line(self, width: int, tick: int) -> str:
        return fit_line([(0, f"{self.label} {SPINNER[tick % len(SPINNER)]}"), (1, _clock(_now() - self.began))],
                        width)


class _Drawn:
    """A phase drawn by a thread until the ``with`` block ends; then the line is cleared."""

    def __init__(self, session: "Session", phase: _Phase | None):
        self.session, self.phase = session, phase
        self.timed = False  # a reading phase not drawn still counts its time
        self.began = _now()
        self._stop = threading.Event()
        self._thread = None
        self._drawn = False

    def __enter__(self):
        if self.phase is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        tick = 0
        while not self._stop.wait(TICK):
            self.phase.poll()
            if _now() - self.session.started < self.session.delay:
                continue
            width = self.session.width()
            self.session.write("\r" + self.phase.line(width - 1, tick) + "\x1b[K")
            self._drawn = True
            tick += 1

    def __exit__(self, *exc):
        if self.timed:
            self.session.reading_time += _now() - self.began
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=1)
            if self._drawn:
                self.session.write("\r\x1b[K")
        return False


class Session:
    """The status line of one command; ``summary()`` at the end (interactive runs only)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.started = _now()
        try:
            self.delay = float(os.environ.get("FLOWKIT_PROGRESS_DELAY", DELAY))
        except ValueError:
            self.delay = DELAY
        self.packets = 0  # decoded so far (the reader reports each batch)
        self.flows: int | None = None
        self.read = False  # a reading phase ran
        self.reading_time = 0.0  # seconds spent in reading phases (the rate's denominator)
        self.quiet = False

    def interactive(self, quiet: bool) -> bool:
        try:
            return not quiet and self.stream.isatty()
        except (AttributeError, ValueError):
            return False

    def width(self) -> int:
        try:
            return os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            return 80

    def write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def add_packets(self, n: int) -> None:
        self.packets += int(n)

    def reading(self, paths: Sequence[str], *, quiet: bool = False) -> _Drawn:
        self.read, self.quiet = True, quiet
        drawn = _Drawn(self, _Reading(self, paths) if self.interactive(quiet) else None)
        drawn.timed = True
        return drawn

    def writing(self, path, *, quiet: bool = False) -> _Drawn:
        return _Drawn(self, _Writing(self, path) if self.interactive(quiet) and path is not None else None)

    def working(self, label: str, *, quiet: bool = False) -> _Drawn:
        return _Drawn(self, _Working(self, label) if self.interactive(quiet) else None)

    def summary(self) -> str | None:
        """``read 979,032 packets into 79,752 flows in 1.0 s (960k packets/s)``, when a capture was read."""
        if not self.read:
            return None
        elapsed = _now() - self.started
        into = "" if self.flows is None else f" into {self.flows:,} flow{'' if self.flows == 1 else 's'}"
        return (f"read {self.packets:,} packet{'' if self.packets == 1 else 's'}{into} in {elapsed:.1f} s "
                f"({rate(self.packets, self.reading_time or elapsed)} packets/s while reading)")

    def finish(self) -> None:
        """The summary line on stderr, for a person at a terminal (not with --quiet)."""
        line = self.summary()
        if line and self.interactive(self.quiet):
            self.write(line + "\n")


_current = Session()


def begin(stream=None) -> Session:
    """A new session for the command about to run (``flowkit.cli.main`` calls it)."""
    global _current
    _current = Session(stream)
    return _current


def current() -> Session:
    return _current
