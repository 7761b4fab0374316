"""The loader's global order of packed sequences in one epoch, and each rank's share of it. Pure numpy.

A sequence's global index is its shard's offset (shards in manifest order) plus its row in the shard.
For epoch `e` with `seed` s the global order is built in two steps, both driven by a stable 64-bit hash
(splitmix64, the pack stage's mixer) rather than a library RNG, so it is the same on every machine and
numpy version:

    1. the shards are ordered by hash(s, e, shard index) and cut into windows of `window` shards;
    2. within a window, its sequences are ordered by hash(s, e, window, global index).

Position p of the epoch is the p-th sequence of that order (windows one after another). A rank reads the
positions P0 + rank, P0 + rank + world_size, ... where P0 is the global position the iteration started
from, so `world_size` ranks that each consumed k sequences have together consumed exactly the positions
[P0, P0 + k * world_size): the global position is the whole resume state, whatever the world size.
Without shuffling, the order is the manifest's (shard by shard, row by row).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from curate.stages.pack import splitmix64

_SHARDS, _WINDOW = 1, 2  # salts: the shard order and the in-window order draw independent keys


_MASK = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    """splitmix64 of one Python int: the same function as `curate.stages.pack.splitmix64` on arrays."""
    z = (x + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def mix(*words: int) -> np.uint64:
    """One 64-bit key from a few integers (chained splitmix64): the seed of one permutation."""
    h = 0
    for w in words:
        h = _splitmix64(h ^ (w & _MASK))
    return np.uint64(h)


def hashed_order(items: np.ndarray, key: np.uint64) -> np.ndarray:
    """`items` (distinct non-negative integers) sorted by splitmix64(item ^ key): a permutation (splitmix64
    is a bijection, so keys never tie, and any sort algorithm gives the same order) that depends only on
    the items and the key."""
    keys = splitmix64(items.astype(np.uint64) ^ key)
    return items[np.argsort(keys)]


@dataclass(frozen=True)
class EpochOrder:
    """The order of one epoch over shards of `sizes` sequences each (manifest order)."""

    sizes: tuple[int, ...]
    seed: int
    epoch: int
    shuffle: bool
    window: int

    def __post_init__(self):
        if self.window < 1:
            raise ValueError(f"window must be >= 1 shard, got {self.window}")

    @property
    def offsets(self) -> np.ndarray:
        """Global index of each shard's first sequence, then the total."""
        return np.concatenate([[0], np.cumsum(self.sizes, dtype=np.int64)]).astype(np.int64)

    @property
    def total(self) -> int:
        return int(sum(self.sizes))

    def shard_order(self) -> np.ndarray:
        shards = np.arange(len(self.sizes), dtype=np.int64)
        return hashed_order(shards, mix(self.seed, self.epoch, _SHARDS)) if self.shuffle else shards

    @cached_property
    def _windows(self) -> list[np.ndarray]:
        order = self.shard_order()
        return [order[i:i + self.window] for i in range(0, len(order), self.window)]

    def windows(self) -> list[np.ndarray]:
        """The shards of each window, in reading order."""
        return list(self._windows)

    def window_starts(self) -> np.ndarray:
        """Position of each window's first sequence, then the total."""
        sizes = np.asarray(self.sizes, dtype=np.int64)
        return np.concatenate([[0], np.cumsum([int(sizes[w].sum()) for w in self.windows()])]).astype(np.int64)

    def window_sequences(self, w: int) -> np.ndarray:
        """Global indices of window w's sequences, in the epoch's order."""
        offsets = self.offsets
        shards = self.windows()[w]
        seqs = np.concatenate([np.arange(offsets[s], offsets[s + 1], dtype=np.int64) for s in shards])
        return hashed_order(seqs, mix(self.seed, self.epoch, _WINDOW, w)) if self.shuffle else seqs

    def locate(self, seqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(shard, row) of global indices."""
        offsets = self.offsets
        shard = np.searchsorted(offsets, seqs, side="right") - 1
        return shard, seqs - offsets[shard]


def rank_positions(start: int, stop: int, origin: int, rank: int, world_size: int) -> np.ndarray:
    """The positions in [start, stop) that a rank reads when the iteration began at global position
    `origin`: origin + rank + i * world_size."""
    first = origin + rank
    if first < start:
        first += -(-(start - first) // world_size) * world_size
    return np.arange(first, stop, world_size, dtype=np.int64)


def rank_count(total: int, origin: int, rank: int, world_size: int) -> int:
    """How many sequences a rank reads from `origin` to the end of the epoch (ranks differ by at most one)."""
    return max(0, -(-(total - origin - rank) // world_size))
