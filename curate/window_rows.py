"""A window's rows as `curate.loader` read them, placed in the rank's order, and cut into batches. Pure numpy.

A window is read as chunks (`shard_reader.Rows`: whole memory-mapped record batches from local disk, the
rank's rows of each batch from a stream). `locate` finds each of the rank's sequences in them. For
`PackedShards.batches`, `block` puts a window's sequences in the rank's order with whole-array work:
row views of `input_ids` (made in C by iterating a chunk's 2-D array when the rank reads a third of it or
more, else indexed), and the piece columns gathered once per window with one index array. `batches` then
cuts the blocks of consecutive windows into batches of a fixed size, the token rows copied once, straight
into the batch's contiguous (b, seq_len) array by one `np.concatenate`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from curate.shard_reader import Rows


def locate(shard: np.ndarray, row: np.ndarray, rows: dict[int, list[Rows]]) -> tuple[list[Rows], np.ndarray, np.ndarray]:
    """The chunks read for a window (a list), and per sequence (given by shard and row): its chunk in that
    list and its place in the chunk."""
    chunks, chunk_of, place = [], np.empty(len(shard), np.int64), np.empty(len(shard), np.int64)
    for s, got in rows.items():
        mine = shard == s
        held = np.concatenate([c.rows for c in got])  # ascending: the chunks are in row order
        if held[-1] - held[0] + 1 == len(held):  # whole batches (local shards): no search needed
            slot = row[mine] - held[0]
        else:
            slot = np.searchsorted(held, row[mine])
        starts = np.cumsum([0] + [len(c) for c in got])
        c = np.searchsorted(starts, slot, side="right") - 1
        chunk_of[mine], place[mine] = c + len(chunks), slot - starts[c]
        chunks += got
    return chunks, chunk_of, place


@dataclass
class Block:
    """Consecutive sequences of a rank: token row views, and the piece columns flat with `offsets`."""

    rows: list[np.ndarray]  # input_ids of each sequence (views of what was read)
    offsets: np.ndarray  # int64, len(rows) + 1, into the flat piece columns
    doc_ids: np.ndarray  # object (str)
    doc_lengths: np.ndarray  # int32
    doc_starts: np.ndarray  # bool
    index: np.ndarray  # int64, global indices

    def __len__(self) -> int:
        return len(self.rows)

    def cut(self, a: int, b: int) -> Block:
        p, q = int(self.offsets[a]), int(self.offsets[b])
        return Block(self.rows[a:b], self.offsets[a:b + 1] - p, self.doc_ids[p:q], self.doc_lengths[p:q],
                     self.doc_starts[p:q], self.index[a:b])

    def join(self, other: Block) -> Block:
        return Block(self.rows + other.rows, np.concatenate([self.offsets, other.offsets[1:] + self.offsets[-1]]),
                     np.concatenate([self.doc_ids, other.doc_ids]), np.concatenate([self.doc_lengths, other.doc_lengths]),
                     np.concatenate([self.doc_starts, other.doc_starts]), np.concatenate([self.index, other.index]))

    def batch(self, seq_len: int) -> dict:
        """The batch's dict; `input_ids` is the one copy of its tokens, contiguous."""
        return {"input_ids": np.concatenate(self.rows).reshape(len(self.rows), seq_len), "doc_offsets": self.offsets,
                "doc_ids": self.doc_ids, "doc_lengths": self.doc_lengths, "doc_starts": self.doc_starts,
                "index": self.index}


def block(seqs: np.ndarray, shard: np.ndarray, row: np.ndarray, rows: dict[int, list[Rows]]) -> Block:
    """A window's sequences (global indices `seqs`, at `shard`, `row`) in that order, from the chunks read."""
    chunks, chunk_of, place = locate(shard, row, rows)
    first = np.cumsum([0] + [len(c) for c in chunks])
    slot = first[chunk_of] + place  # the sequence's row among all the window's chunks
    base = np.cumsum([0] + [int(c.offsets[-1]) for c in chunks])
    bounds = np.concatenate([c.offsets[:-1] + b for c, b in zip(chunks, base[:-1])] + [base[-1:]])
    begin, count = bounds[slot], bounds[slot + 1] - bounds[slot]
    offsets = np.concatenate([[0], np.cumsum(count)]).astype(np.int64)
    pieces = np.repeat(begin - offsets[:-1], count) + np.arange(offsets[-1])  # each sequence's pieces, in order
    return Block(_rows(chunks, chunk_of, place), offsets, np.concatenate([c.doc_ids for c in chunks])[pieces],
                 np.concatenate([c.doc_lengths for c in chunks])[pieces],
                 np.concatenate([c.doc_starts for c in chunks])[pieces], seqs.astype(np.int64))


def _rows(chunks: list[Rows], chunk_of: np.ndarray, place: np.ndarray) -> list[np.ndarray]:
    """Row views of the chunks' input_ids, in the sequences' order. Iterating a 2-D array makes its row views
    in C, at a third of what indexing it from Python costs; the views are then picked by a C-level map."""
    taken = np.bincount(chunk_of, minlength=len(chunks))
    views = [list(c.input_ids) if 3 * t >= len(c) else None for c, t in zip(chunks, taken.tolist())]
    if all(v is not None for v in views):
        every = [v for vs in views for v in vs]
        first = np.cumsum([0] + [len(c) for c in chunks])
        return list(map(every.__getitem__, (first[chunk_of] + place).tolist()))
    return [views[c][k] if views[c] is not None else chunks[c].input_ids[k]
            for c, k in zip(chunk_of.tolist(), place.tolist())]


def batches(blocks: Iterable[Block], size: int, seq_len: int) -> Iterator[dict]:
    """The blocks' sequences, in order, `size` at a time (the last batch may be shorter); a batch may span
    two blocks."""
    held = None
    for b in blocks:
        start = 0
        if held is not None:
            start = min(size - len(held), len(b))
            held = held.join(b.cut(0, start))
            if len(held) < size:
                continue
            yield held.batch(seq_len)
            held = None
        full = start + (len(b) - start) // size * size
        for a in range(start, full, size):
            yield b.cut(a, a + size).batch(seq_len)
        if full < len(b):
            held = b.cut(full, len(b))
    if held is not None:
        yield held.batch(seq_len)
