"""What the ``flowkit`` command says on stderr besides errors: nothing is surprising in silence.

- damage in a capture (one line each, packets before it kept);
- packets read but no flow made: why, from the ledger of the packets that reached the flows;
- a capture that starts before the previous one given to the same command ends;
- options that apply to captures given with a saved flow table, where they cannot apply;
- flows made but none matching ``--filter``.

``WatchedPackets`` is the reader the command builds flows from: the library's PacketTable,
watched batch by batch (never per packet) for the counts above and for the progress line.
"""
from __future__ import annotations

import sys
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowkit.ledger import Ledger

# ledger categories that never make a flow, as the no-flow line names them
NOT_FLOWS = {
    "fragment": "IP fragments (counted in the datagram they completed)",
    "fragment_incomplete": "IP fragments of datagrams never completed",
    "bad_checksum": "with a bad IPv4 header checksum (--verify-checksums)",
    "non_ip": "not IP (ARP, LLDP, ...)",
    "truncated": "truncated before the ports",
    "malformed": "malformed",
}

# options that change how captures are read or cut into flows: (option, Settings attribute, default)
CAPTURE_ONLY = (("--engine", "engine", "fast"), ("--packet-filter", "packet_filter", None),
                ("--tcp-timeout", "idle_timeout", None), ("--udp-timeout", "udp_timeout", None),
                ("--active-timeout", "active_timeout", None), ("--strict", "strict", False),
                ("--no-decap", "decap", True), ("--verify-checksums", "verify_checksums", False))  # fmt: skip


def say(line: str, *, quiet: bool = False) -> None:
    if not quiet:
        print(f"flowkit: {line}", file=sys.stderr)


def WatchedPackets(source, engine, *, strict, filter, names, on_packets=None, decap=True, verify_checksums=False):
    """The PacketTable of ``source`` that keeps, per source, the first and last timestamps and,
    over the packets after the packet filter, a ledger and the link types left undecoded."""
    import numpy as np

    from flowkit.decode import PacketTable
    from flowkit.decode._arrow import to_numpy
    from flowkit.decode.schema import Status
    from flowkit.ledger import Ledger

    class Watched(PacketTable):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.names = list(names)
            self.spans: list[list] = []  # per source: [first ts, last ts] in ns, None before a packet
            self._kept = Ledger()  # the packets that reached the flows, when a filter drops some
            self.links: Counter = Counter()  # unsupported link type -> packets

        @property
        def kept(self) -> Ledger:
            """The ledger of the packets that reached the flows: without a packet filter, every
            packet (the table's own ledger, fragments given up and bad checksums included)."""
            return self._kept if self._filter is not None else self.stats

        def chunks(self, source):
            self.spans.append([None, None])  # called once per source, in order
            return super().chunks(source)

        def __iter__(self):
            self.spans, self._kept, self.links = [], Ledger(), Counter()
            for batch in super().__iter__():
                self._watch(batch)
                yield batch

        def _watch(self, batch) -> None:
            if batch.num_rows == 0:
                return
            status = to_numpy(batch.column("status"))
            if self._filter is not None:  # else the table's ledger counts the same packets
                self._kept.add_batch(status, to_numpy(batch.column("ip_proto")), to_numpy(batch.column("tunnel_depth")))
            unsupported = status == Status.UNSUPPORTED_LINK
            if unsupported.any():
                types, counts = np.unique(to_numpy(batch.column("linktype"))[unsupported], return_counts=True)
                self.links.update(dict(zip(types.tolist(), counts.tolist())))
            ts = to_numpy(batch.column("ts")).view(np.int64)
            span = self.spans[-1]
            span[0] = int(ts[0]) if span[0] is None else span[0]
            span[1] = int(ts.max()) if span[1] is None else max(span[1], int(ts.max()))
            if on_packets is not None:
                on_packets(batch.num_rows)

    return Watched(source, engine, strict=strict, filter=filter, decap=decap, verify_checksums=verify_checksums)


def no_flow_reason(ledger: Ledger, kept: Ledger, links: Counter, packet_filter: str | None) -> str:
    """``1,333 packets, none in a flow: 1,333 unsupported link type 10``."""
    reasons = []
    dropped = ledger.packets - kept.packets
    if dropped:
        reasons.append(f"{dropped:,} not matching --packet-filter {packet_filter!r}" if packet_filter
                       else f"{dropped:,} filtered out")
    for name, count in sorted(links.items()):
        reasons.append(f"{count:,} unsupported link type {name}")
    for name, label in NOT_FLOWS.items():
        if kept.counts.get(name):
            reasons.append(f"{kept.counts[name]:,} {label}")
    if not reasons:
        reasons.append("no IP packet")
    return f"{ledger.packets:,} packet{'' if ledger.packets == 1 else 's'}, none in a flow: " + ", ".join(reasons)


def _iso(ns: int) -> str:
    import numpy as np

    return str(np.datetime64(ns, "ns")) + "Z"


def time_backwards(names: list[str], spans: list[list]) -> list[str]:
    """One line per capture that starts before the one given before it ends."""
    lines = []
    previous = None
    for name, (first, last) in zip(names, spans):
        if first is None:
            continue
        if previous is not None and first < previous[1]:
            gap = (previous[1] - first) / 1e9
            lines.append(f"warning: time goes backwards: {name} starts at {_iso(first)}, {gap:,.6f} s before "
                         f"{previous[0]} ends; the captures are read as one, in the order given (give them in "
                         f"time order, or use 'flowkit batch' for unrelated captures)")
        if previous is None or last > previous[1]:
            previous = (name, last)
    return lines


def capture_only_options(settings) -> list[str]:
    """The capture-only options ``settings`` carries (given on the command line)."""
    return [option for option, attr, default in CAPTURE_ONLY if getattr(settings, attr, default) != default]


def warn_saved(settings) -> None:
    """Options that shape flows from packets do nothing to a saved flow table: say so."""
    given = capture_only_options(settings)
    if given:
        say(f"warning: {', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to captures, not to saved "
            f"flow tables: ignored", quiet=settings.quiet)


def checksum_note(ledger: Ledger) -> str:
    """``--verify-checksums``: how many packets had bad checksums and what became of them."""
    ip = ledger.counts.get("bad_checksum", 0)
    errors = ledger.checksum_errors
    transport = sum(errors.values())
    if not ip and not transport:
        return "checksums verified: none bad"
    parts = [f"{ip:,} with a bad IPv4 header checksum (dropped)"] if ip else []
    if transport:
        per = ", ".join(f"{name} {n:,}" for name, n in errors.items() if n)
        parts.append(f"{transport:,} with a bad transport checksum ({per}; in their flows, not counted)")
    return "checksums verified: " + "; ".join(parts)


def warn_damage(ledger, quiet: bool) -> None:
    """Damaged input is never silent: one stderr line per damage, even without --stats."""
    for damage in getattr(ledger, "damage", []) or []:
        say(f"warning: {damage} (packets before it kept; --strict fails instead)", quiet=quiet)
