"""The packet ledger: every packet of a capture lands in exactly one category."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from flowkit.capture.records import Damage
from flowkit.decode.schema import Status

CATEGORIES = (
    "tcp",
    "udp",
    "icmp",
    "other_ip",
    "fragment",
    "fragment_incomplete",
    "bad_checksum",
    "non_ip",
    "unsupported_link",
    "truncated",
    "malformed",
)

# the categories of decoded IP packets by IP protocol number; other numbers are other_ip
PROTO_CATEGORIES = {"tcp": (6,), "udp": (17,), "icmp": (1, 58)}


@dataclass
class Ledger:
    """Counts per category; ``packets`` is the number of records read from the file(s).

    Invariant: sum of the categories == packets. ``damage`` lists file-level problems
    (bad record lengths, cut records) with their byte offsets; packets before the
    damage are kept and counted.
    """

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    packets: int = 0
    bytes_read: int = 0
    damage: list[Damage] = field(default_factory=list)
    # what a memory budget sent to disk (flows(memory=...)): empty when nothing was
    spilled: dict[str, int] = field(default_factory=dict)
    # verify_checksums: packets (rows, inner ones too) whose TCP/UDP/ICMP checksum was wrong,
    # per protocol; counted in their category, left out of the flow counts. Empty otherwise.
    checksum_errors: dict[str, int] = field(default_factory=dict)

    def add_batch(self, status: np.ndarray, ip_proto: np.ndarray, tunnel_depth: np.ndarray | None = None) -> None:
        """Count one decoded batch (numpy columns ``status``, ``ip_proto``, ``tunnel_depth``).

        Only rows at tunnel depth 0 are records; the rows of packets found inside tunnels
        become flows but are not counted again here.
        """
        status = np.asarray(status)
        ip_proto = np.asarray(ip_proto)
        if tunnel_depth is not None:
            outer = np.asarray(tunnel_depth) == 0
            if not outer.all():
                status, ip_proto = status[outer], ip_proto[outer]
        # one pass: a count per (status, ip_proto) pair
        pairs = np.bincount((status.astype(np.intp) << 8) | (ip_proto & 0xFF), minlength=256 * (max(Status) + 1))
        by_proto = pairs[256 * Status.OK : 256 * (Status.OK + 1)]  # OK rows by ip_proto
        for name, protos in PROTO_CATEGORIES.items():
            self.counts[name] += int(by_proto[list(protos)].sum())
        self.counts["other_ip"] += int(by_proto.sum()) - sum(
            int(by_proto[p]) for ps in PROTO_CATEGORIES.values() for p in ps)
        for name, st in (
            ("fragment", Status.FRAGMENT),
            ("non_ip", Status.NON_IP),
            ("unsupported_link", Status.UNSUPPORTED_LINK),
            ("truncated", Status.TRUNCATED),
            ("malformed", Status.MALFORMED),
            ("bad_checksum", Status.BAD_CHECKSUM),
        ):
            self.counts[name] += int(pairs[256 * st : 256 * (st + 1)].sum())
        self.packets += len(status)

    def add_checksum_errors(self, bad: np.ndarray, ip_proto: np.ndarray) -> None:
        """Count the rows whose transport checksum was wrong (a batch's ``bad_checksum`` column)."""
        bad = np.asarray(bad) != 0
        for name, protos in PROTO_CATEGORIES.items():
            self.checksum_errors[name] = self.checksum_errors.get(name, 0) + int(
                np.count_nonzero(bad & np.isin(ip_proto, protos)))

    def give_up_fragments(self, records: int) -> None:
        """Fragments counted earlier whose datagram was never completed (timeout, memory bound, end)."""
        self.counts["fragment"] -= records
        self.counts["fragment_incomplete"] += records

    def merge(self, other: "Ledger") -> "Ledger":
        out = Ledger(packets=self.packets + other.packets, bytes_read=self.bytes_read + other.bytes_read)
        out.counts = {k: self.counts[k] + other.counts[k] for k in CATEGORIES}
        out.damage = [*self.damage, *other.damage]
        out.spilled = {k: self.spilled.get(k, 0) + other.spilled.get(k, 0) for k in {*self.spilled, *other.spilled}}
        out.checksum_errors = {k: self.checksum_errors.get(k, 0) + other.checksum_errors.get(k, 0)
                               for k in {*self.checksum_errors, *other.checksum_errors}}
        return out

    def check(self) -> None:
        total = sum(self.counts.values())
        if total != self.packets:
            raise AssertionError(f"ledger categories sum to {total}, not {self.packets} packets")

    def to_dict(self) -> dict:
        return {
            "packets": self.packets,
            **self.counts,
            "bytes_read": self.bytes_read,
            "damage": [str(d) for d in self.damage],
            **({"spilled": dict(self.spilled)} if self.spilled else {}),
            **({"checksum_errors": dict(self.checksum_errors)} if self.checksum_errors else {}),
        }
