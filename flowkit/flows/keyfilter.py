"""Which keys' packets go to disk under the memory budget: the filter ``_stream.c`` reads.

The keys of open connections sent to disk (overflow.py) enter a layered Bloom filter; a
later packet whose key is not open but in the filter is deferred (replayed at the end).
A layer holds the keys of one or more spills and the latest deadline of their rows. Once
the newest timestamp passes it, every row of the layer is settled (``_conn.h``'s
``deadline``: a later packet on its key starts a new connection and takes nothing from it,
as in an unlimited run), so the layer goes and its keys may open in memory again. Rows are
spilled least recently active first, so layers are kept per *class*, how far a row's
deadline is from its last packet (within a factor of two: the rule that set it, as the
attempt, close or idle timeout): the deadlines of a class follow the order its rows were
spilled in, and a connection idle under TCP's 5-minute timeout does not hold back the
layer of UDP or scan keys spilled with it.

Keys that had packets deferred are the exception: their rows and packets are replayed at
the end, so every later packet of theirs must follow into the same partition. They enter
layers of their own that never go (each new one as large as those before it). The rows a
settled segment sends to the replay are those whose key is in these layers (a false
positive only replays a row with no packets): such a key stays in the filter, so it never
opens in memory again and a partition holds at most one row of a key.

So the filter follows the keys not yet settled plus the deferred ones, not every key ever
spilled: on a long capture the budget stays with the open connections.
"""
from __future__ import annotations

import numpy as np

from flowkit.flows import _stream

# keys per 512-bit block: 32 bits a key, 0.003 % false positives in a full layer (random keys:
# 2.6e-5; 24 keys, 21 bits a key, gave 2.2e-4). A false positive is costly: its packet is
# deferred, its key held to the end and its connection replayed, and the replayed rows
# interleave with the final ones at the output: udpspray's 3,536 took ~1 s more than its 378 now
KEYS_PER_BLOCK = 16
MIN_BLOCKS = 64  # a layer's smallest size (4 KiB)
_WORDS = _stream.BLOCK_WORDS


class SpilledKeys:
    """The filter's words and (first block, blocks) layers for the kernel, and what each holds."""

    def __init__(self):
        # per layer [first block, blocks, keys, latest deadline of the rows (spilled keys)]
        self._spilled: dict[int, list[list[int]]] = {}  # per class, oldest first
        self._held: list[list[int]] = []  # the deferred keys
        self.most = 0  # bytes at the largest
        self.words = np.zeros(0, np.uint64)
        self._move([])
        self._index()

    def _all(self) -> list[list[int]]:
        return self._held + [layer for chain in self._spilled.values() for layer in chain]

    @property
    def count(self) -> int:
        """Keys in the layers (0: nothing to look up)."""
        return sum(layer[2] for layer in self._all())

    @property
    def nbytes(self) -> int:
        return self.words.nbytes

    def _move(self, kept: list[list[int]], fresh: int = 0) -> int:
        """Words of the ``kept`` layers together, then ``fresh`` zero blocks (the first of
        which is returned); the other layers' words are released."""
        parts, at = [], 0
        for layer in kept:
            parts.append(self.words[layer[0] * _WORDS:(layer[0] + layer[1]) * _WORDS])
            layer[0], at = at, at + layer[1]
        # no layer at all: one empty block (the kernel wants a layer to look in)
        self.words = np.concatenate([*parts, np.zeros(max(fresh, 0 if at else 1) * _WORDS, np.uint64)])
        return at

    def _index(self) -> None:
        pairs = [layer[:2] for layer in self._all()] or [[0, 1]]
        self.layers = np.array(pairs, np.int64).ravel()
        self.held_layers = np.array([layer[:2] for layer in self._held] or [[0, 1]], np.int64).ravel()
        self.most = max(self.most, self.nbytes)

    def _add_layer(self, group: list[list[int]], count: int) -> None:
        """A new last layer in ``group`` for ``count`` more keys, as large as the group's
        keys (doubling while none go)."""
        blocks = max(MIN_BLOCKS, -(-max(count, sum(layer[2] for layer in group)) // KEYS_PER_BLOCK))
        first = self._move(self._all(), blocks)
        group.append([first, blocks, 0, -(2**63)])
        self._index()

    # ------------------------------------------------------------------ spilled keys
    def reserve(self, cls: int, count: int) -> np.ndarray:
        """The layer of class ``cls`` with room for ``count`` more keys, as the one
        (first block, blocks) pair ``_stream.spill`` adds them to."""
        chain = self._spilled.setdefault(cls, [])
        if not chain or chain[-1][2] + count > chain[-1][1] * KEYS_PER_BLOCK:
            self._add_layer(chain, count)
        return np.array(chain[-1][:2], np.int64)

    def spilled(self, cls: int, count: int, deadline: int) -> None:
        """``count`` keys went into the layer ``reserve(cls, ...)`` gave, their rows (whole
        segments) settled by ``deadline``."""
        last = self._spilled[cls][-1]
        last[2] += count
        last[3] = max(last[3], deadline)

    def settle(self, tmax: int) -> bool:
        """Drop the layers whose rows are all settled at ``tmax``; whether any went."""
        before = len(self._all())
        self._spilled = {cls: kept for cls, chain in self._spilled.items()
                         if (kept := [layer for layer in chain if layer[3] > tmax])}
        if len(self._all()) == before:
            return False
        self._move(self._all())
        self._index()
        return True

    # ------------------------------------------------------------------ deferred keys
    def defer(self, hashes: np.ndarray) -> None:
        """Packets with these key hashes were deferred: their keys stay in the filter."""
        new = np.unique(np.ascontiguousarray(hashes).view(np.uint64))
        new = new[~self.was_deferred(new)]
        if not len(new):
            return
        last = self._held[-1] if self._held else None
        if last is None or last[2] + len(new) > last[1] * KEYS_PER_BLOCK:
            self._add_layer(self._held, len(new))
        seen = np.empty(len(new), np.uint8)
        self._held[-1][2] += _stream.remember(self.words, self.held_layers, new, seen, True)

    def was_deferred(self, hashes: np.ndarray) -> np.ndarray:
        """Per key hash: whether it is among the deferred keys (or a false positive)."""
        h = np.ascontiguousarray(hashes).view(np.uint64)
        seen = np.empty(len(h), np.uint8)
        if self._held:
            _stream.remember(self.words, self.held_layers, h, seen, False)
        else:
            seen[:] = 0
        return seen.view(bool)
