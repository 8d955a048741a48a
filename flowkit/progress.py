"""The reading progress bar of the ``flowkit`` command (stderr, terminals only).

Why its own module: rich is imported only when a bar is shown, so a command writing
to a file or a pipe does not pay for it (~25 ms per run).
"""
from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence


def _packet_rate_column():
    from rich.progress import ProgressColumn
    from rich.text import Text

    class PacketRateColumn(ProgressColumn):
        """Packets decoded so far and packets per second (from the task's ``packets`` field)."""

        def render(self, task) -> Text:
            packets = task.fields.get("packets", 0)
            elapsed = task.elapsed or 0.0
            rate = packets / elapsed if elapsed > 0 else 0.0
            return Text(f"{packets:,} packets {rate / 1e3:,.0f} k/s", style="magenta")

    return PacketRateColumn()


class ReadProgress:
    """A progress bar on stderr showing how far the library has read the input files.

    The library reads the files itself, so the bar follows the file position the kernel
    reports for the descriptor (``/proc/self/fdinfo``), polled a few times a second: no
    callback into the hot path. Off when stderr is not a terminal, when ``quiet``, for
    standard input, and where /proc is missing.
    """

    def __init__(self, paths: Sequence[str], *, quiet: bool = False, label: str = "reading"):
        files = [os.path.realpath(p) for p in paths if p != "-" and os.path.isfile(p)]
        self.enabled = (
            not quiet and bool(files) and sys.stderr.isatty() and os.path.isdir("/proc/self/fdinfo")
        )
        self.files = files
        self.label = label
        self._stop = threading.Event()
        self._thread = None
        self._done: dict[str, int] = {}
        self.packets = 0

    def add_packets(self, n: int) -> None:
        """Called by the reader with each batch's packet count."""
        self.packets += int(n)

    def __enter__(self):
        if not self.enabled:
            return self
        self.sizes = {p: os.path.getsize(p) for p in self.files}
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

        from flowkit.render import stderr_console

        self.progress = Progress(
            TextColumn(f"{self.label}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            _packet_rate_column(), TimeRemainingColumn(), console=stderr_console(), transient=True,
        )
        self.task = self.progress.add_task(self.label, total=sum(self.sizes.values()), packets=0)
        self.progress.start()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _positions(self) -> dict[str, int]:
        found = {}
        try:
            fds = os.listdir("/proc/self/fd")
        except OSError:
            return found
        for fd in fds:
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
                if target in self.sizes:
                    with open(f"/proc/self/fdinfo/{fd}") as f:
                        pos = int(f.readline().split()[1])
                    found[target] = max(found.get(target, 0), pos)
            except (OSError, ValueError, IndexError):
                continue
        return found

    def _poll(self) -> None:
        while not self._stop.wait(0.25):
            for path, pos in self._positions().items():
                self._done[path] = max(self._done.get(path, 0), min(pos, self.sizes[path]))
            self.progress.update(self.task, completed=sum(self._done.values()), packets=self.packets)

    def __exit__(self, *exc):
        if self.enabled:
            self._stop.set()
            self._thread.join(timeout=1)
            self.progress.stop()
        return False
