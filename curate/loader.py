"""`PackedShards`: the packed sequences of a run, for training: rank-sharded, seeded, resumable, elastic.

    from curate.loader import PackedShards

    data = PackedShards("s3://bucket/datasets/demo", rank=rank, world_size=world_size, seed=0)
    data.load_state_dict(saved)            # optional: continue a run
    for seq in data:                       # one epoch from the saved position, then data.epoch += 1
        seq["input_ids"], seq["doc_lengths"], seq["doc_starts"], seq["doc_ids"], seq["index"]
        ...
        saved = data.state_dict()          # at a step boundary, the same on every rank

Order: `curate.epoch_order` (per epoch a seeded, shard-aware permutation; rank r reads every
world_size-th position). The state is the epoch and the global position (how many sequences of the
epoch's order all ranks together consumed), so it can be restored at any world size. Memory: a rank
holds its share of one window of `window` shards at a time: from a remote store about window x shard
bytes / world_size, plus the window being read ahead (`prefetch`, the default for remote shards); local
shards are memory-mapped and used in place. Needs only the core install: no torch, no Ray.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from curate import window_rows
from curate.epoch_order import EpochOrder, rank_count, rank_positions
from curate.errors import CurateError
from curate.shard_reader import Rows, ShardSet
from curate.stores import LocalStore

STATE_FORMAT = "curate-loader/1"


class LoaderError(CurateError):
    """A state that does not belong to this dataset or order, or arguments that cannot work."""


class PackedShards:
    """An iterable over the packed sequences of a work directory, its shards/ folder or a published
    destination. Each item is a dict: `input_ids` (numpy, the shard's dtype, seq_len long), `doc_ids`
    (list of str), `doc_lengths` (int32), `doc_starts` (bool: the piece begins its document), `index`
    (the sequence's global index: shards in manifest order, rows within a shard)."""

    def __init__(self, location: str | Path, *, rank: int = 0, world_size: int = 1, seed: int = 0,
                 shuffle: bool = True, epoch: int = 0, endpoint_url: str | None = None, verify: bool = True,
                 window: int = 2, prefetch: bool | None = None):
        if world_size < 1 or not 0 <= rank < world_size:
            raise LoaderError(f"rank {rank} is not in [0, world_size={world_size})")
        if window < 1:
            raise LoaderError(f"window must be at least 1 shard, got {window}")
        self.shards = ShardSet(location, endpoint_url)
        self.rank, self.world_size = rank, world_size
        self.seed, self.shuffle, self.window = int(seed), bool(shuffle), int(window)
        # reading ahead pays where reading waits (a network); memory-mapped local shards are read faster than
        # a thread starts, so by default only remote shards are read ahead
        self.verify = verify
        self.prefetch = not isinstance(self.shards.store, LocalStore) if prefetch is None else bool(prefetch)
        self.epoch, self.position = int(epoch), 0
        self._done, self._running = 0, None  # see `_consumed`
        self._origin, self._consumed = 0, 0  # where the running iteration began; sequences this rank yielded
        self._verified: set[int] = set()
        self._split = (0, 1, 1)  # (part, parts, block): a DataLoader worker's slice of this rank's share

    @property
    def _consumed(self) -> int:
        """Sequences this rank yielded in the running iteration: those of the windows finished, plus, in the
        window being handed out item by item, as many as its index iterator has given (a list iterator knows
        how many it has left)."""
        if self._running is None:
            return self._done
        done, size, left = self._running
        return done + size - left.__length_hint__()

    @_consumed.setter
    def _consumed(self, value: int) -> None:
        self._done, self._running = int(value), None

    # ------------------------------------------------------------------ sizes and order
    @property
    def total(self) -> int:
        """Sequences in one epoch (all ranks)."""
        return sum(self.shards.sizes)

    @property
    def seq_len(self) -> int:
        return self.shards.seq_len

    def order(self, epoch: int | None = None) -> EpochOrder:
        return EpochOrder(self.shards.sizes, self.seed, self.epoch if epoch is None else epoch, self.shuffle, self.window)

    def __len__(self) -> int:
        """Sequences this rank still reads in its current epoch (after what it consumed so far)."""
        return rank_count(self.total, self.state_dict()["position"], self.rank, self.world_size)

    # ------------------------------------------------------------------ state
    def state_dict(self, consumed: int | None = None) -> dict:
        """The resume state after this rank consumed `consumed` sequences of the current iteration
        (default: as many as this object yielded). Saved at a step boundary it is the same on every rank,
        and it can be loaded at any world size."""
        k = self._consumed if consumed is None else int(consumed)
        epoch, position = self.epoch, self._origin + k * self.world_size
        if position >= self.total:
            epoch, position = epoch + 1, 0
        return {"format": STATE_FORMAT, "dataset": self.shards.fingerprint, "sequences": self.total, "seed": self.seed,
                "shuffle": self.shuffle, "window": self.window, "epoch": epoch, "position": position}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a saved state: the next sequence is the first one no rank had consumed."""
        if state.get("format") != STATE_FORMAT:
            raise LoaderError(f"not a loader state (format {state.get('format')!r}, expected {STATE_FORMAT!r})")
        mine = self.state_dict(0)
        for key in ("dataset", "sequences", "seed", "shuffle", "window"):
            if state.get(key) != mine[key]:
                raise LoaderError(f"the saved state has {key}={state.get(key)!r}, this loader {mine[key]!r}: "
                                  "it belongs to another dataset or order")
        if not 0 <= int(state["position"]) < self.total:
            raise LoaderError(f"saved position {state['position']} is outside the epoch's {self.total} sequences")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._origin, self._consumed = self.position, 0

    def set_epoch(self, epoch: int) -> None:
        """Start `epoch` from its beginning (the DistributedSampler convention)."""
        self.epoch, self.position, self._origin, self._consumed = int(epoch), 0, 0, 0

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[dict]:
        """The rest of the current epoch for this rank (after what an earlier, interrupted iteration of this
        object consumed); afterwards the next epoch begins at position 0."""
        state = self.state_dict()
        self.epoch, self.position = state["epoch"], state["position"]
        self._origin, self._consumed = self.position, 0
        # the document pieces of shuffled short sequences are gathered into order first (`window_rows.items`);
        # long ones, or any in the manifest's order (read in sequence anyway), are sliced where they were read
        gather = self.shuffle and self.seq_len * self.shards.dtype.itemsize < window_rows.GATHER_BELOW
        for plan, rows in self._windows(self.order()):
            got = window_rows.items(*plan, rows, gather)
            arrays, doc_ids, lengths, starts = got.arrays, got.doc_ids, got.doc_lengths, got.doc_starts
            # the per-sequence loop is the loader's hot path: one generator, locals and Python lists only, every
            # view made as its item is handed out (by integer indexes, the cheapest views), and no bookkeeping:
            # the iterator over the window's indices counts the items handed out (see `_consumed`)
            left = iter(got.index)
            self._running = (self._done, len(got.index), left)
            for g, c, k, a, b, p in zip(left, got.chunk, got.place, got.begin, got.end, got.count):
                yield {"input_ids": arrays[c][k], "doc_ids": doc_ids[a:b], "doc_lengths": lengths[p][a],
                       "doc_starts": starts[p][a], "index": g}
            self._consumed = self._consumed
            # this window is let go before the next one is read, so that the next one's objects reuse its memory
            # (still in cache) instead of fresh memory
            del plan, rows, got, arrays, doc_ids, lengths, starts, left
        self.epoch, self.position, self._origin, self._consumed = self.epoch + 1, 0, 0, 0

    def batches(self, batch_size: int) -> Iterator[dict]:
        """The same sequences as iterating this object, in the same order, `batch_size` at a time (the last
        batch of the rank's epoch may be shorter), each batch a dict of arrays: `input_ids` (b, seq_len),
        contiguous, the shard's dtype, read-only (a view where its rows lie consecutively in what was read,
        as without shuffling, else the batch's own copy); `index` (b,) int64; `doc_offsets` (b + 1,)
        int64: sequence i's pieces are entries doc_offsets[i]:doc_offsets[i + 1] of the flat `doc_ids`
        (object array of str), `doc_lengths` (int32) and `doc_starts` (bool). The resume state counts the
        sequences of the batches yielded, as iterating does; afterwards the next epoch begins."""
        if batch_size < 1:
            raise LoaderError(f"batch_size must be at least 1, got {batch_size}")
        state = self.state_dict()
        self.epoch, self.position = state["epoch"], state["position"]
        self._origin, self._consumed = self.position, 0
        blocks = (window_rows.block(*plan, rows) for plan, rows in self._windows(self.order()))
        for batch in window_rows.batches(blocks, batch_size, self.seq_len):
            self._consumed += len(batch["index"])
            yield batch
        self.epoch, self.position, self._origin, self._consumed = self.epoch + 1, 0, 0, 0

    def _plans(self, order: EpochOrder) -> Iterator[tuple]:
        """Per window this rank has positions in: the global indices of its sequences there, in its order, with
        their shard and row."""
        starts = order.window_starts()
        part, parts, block = self._split
        for w in range(len(starts) - 1):
            positions = rank_positions(int(starts[w]), int(starts[w + 1]), self._origin, self.rank, self.world_size)
            if parts > 1:  # a DataLoader worker takes every parts-th block of `block` of this rank's sequences
                local = (positions - self._origin - self.rank) // self.world_size
                positions = positions[(local // block) % parts == part]
            if len(positions) == 0:
                continue
            seqs = order.window_sequences(w)[positions - starts[w]]
            shard, row = order.locate(seqs)
            yield seqs, shard, row

    def _read_window(self, shard: np.ndarray, row: np.ndarray) -> dict[int, list[Rows]]:
        got = {}
        # a rank (or worker) that takes a quarter of the rows or fewer converts only its pieces' doc_ids
        # (`window_rows._ids`: Arrow's take then one conversion, ~1.3-1.4x the cost per piece of converting
        # all, plus a fixed cost per window: measured, it pays from 4 ranks on, not at 2); short sequences
        # keep the per-shard conversion, whose repeated ids are made strs once each
        short = self.seq_len * self.shards.dtype.itemsize < window_rows.GATHER_BELOW
        ids = self.world_size * self._split[1] < 4 or short
        for s, rows in rows_by_shard(shard, row, self.shards.sizes):
            got[s] = self.shards.read_chunks(s, rows, verify=self.verify and s not in self._verified, ids=ids)
            self._verified.add(s)
        return got

    def _windows(self, order: EpochOrder) -> Iterator[tuple]:
        """(plan, rows) per window; with `prefetch`, the next window is read by a thread meanwhile
        (reading and hashing release the GIL)."""
        plans = self._plans(order)
        if not self.prefetch:
            for plan in plans:
                yield plan, self._read_window(plan[1], plan[2])
            return
        ahead = _Ahead(self._read_window)
        try:
            current = next(plans, None)
            if current is not None:
                ahead.start(current)
            while current is not None:
                rows = ahead.result()
                following = next(plans, None)
                if following is not None:
                    ahead.start(following)
                yield current, rows
                current = following
        finally:
            ahead.join()

    # ------------------------------------------------------------------ DataLoader workers
    def worker_split(self, part: int, parts: int, block: int = 1) -> PackedShards:
        """A copy that reads only blocks part, part + parts, ... of `block` consecutive sequences of this
        rank's share: what one of `parts` DataLoader workers reads when the loader collates batches of
        `block`, so that batches come back in this rank's order."""
        import copy

        other = copy.copy(self)
        other._verified = self._verified  # shared: a persistent worker verifies each shard once, not every epoch
        other._split = (int(part), int(parts), int(block))
        other._consumed = self._consumed  # a count, not the running window's iterator
        return other


def rows_by_shard(shard: np.ndarray, row: np.ndarray, sizes: tuple[int, ...]) -> Iterator[tuple[int, np.ndarray]]:
    """(shard, its rows ascending) for each shard the sequences at (`shard`, `row`) fall in, shards ascending.
    The rows are distinct (a sequence comes once per epoch), so a mark per row of the shard and the marked
    rows in order replace a sort: linear, where sorting the window's (shard, row) keys cost ~50 ns a
    sequence (12 ms for a window of 262,144 short sequences)."""
    for s in np.flatnonzero(np.bincount(shard, minlength=len(sizes))).tolist():
        marked = np.zeros(sizes[s], bool)
        marked[row[shard == s]] = True
        yield s, np.flatnonzero(marked)


class _Ahead:
    """One background read at a time; its exception is raised where the result is taken."""

    def __init__(self, fn):
        self.fn, self.thread, self.out, self.error = fn, None, None, None

    def start(self, plan) -> None:
        def run():
            try:
                self.out = self.fn(plan[1], plan[2])
            except BaseException as exc:  # re-raised in the consumer's thread
                self.error = exc

        self.out, self.error = None, None
        self.thread = threading.Thread(target=run, name="curate-loader-read", daemon=True)
        self.thread.start()

    def result(self):
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.out

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()
