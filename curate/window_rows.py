"""A window's rows as `curate.loader` read them, placed in the rank's order, and cut into batches. Pure numpy.

A window is read as chunks (`shard_reader.Rows`: whole memory-mapped record batches from local disk, the
rank's rows of each batch from a stream). `locate` finds each of the rank's sequences in them. For
`PackedShards.batches`, `block` puts a window's sequences in the rank's order with whole-array work:
row views of `input_ids` (made in C by iterating a chunk's 2-D array when the rank reads a third of it or
more, else indexed), and the piece columns gathered once per window with one index array. `batches` then
cuts the blocks of consecutive windows into batches of a fixed size, the token rows copied once, straight
into the batch's contiguous (b, seq_len) array by one `np.concatenate`. For iterating item by item, `items`
lays a window out as Python lists (one `tolist` each), so that the loader's per-sequence loop only indexes
and slices."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from curate.shard_reader import Rows


def locate(shard: np.ndarray, row: np.ndarray, rows: dict[int, list[Rows]]) -> tuple[list[Rows], np.ndarray, np.ndarray]:
    """The chunks read for a window (a list, shards ascending), and per sequence (given by shard and row): its
    chunk in that list and its place in the chunk. Vectorised: a search per sequence costs more than the
    lookups below (numpy's binary search of unsorted keys is slow)."""
    order = sorted(rows)
    chunks = [c for s in order for c in rows[s]]
    sizes = [len(c) for c in chunks]
    first = np.cumsum([0] + sizes)
    held = [sum(len(c) for c in rows[s]) for s in order]
    if all(rows[s][-1].rows[-1] - rows[s][0].rows[0] + 1 == n for s, n in zip(order, held)):
        # each shard's rows held are one run (local shards: whole batches): a sequence's slot among all the
        # rows held is its row shifted by its shard's
        shift = np.zeros(order[-1] + 1, np.int64)
        shift[order] = np.cumsum([0] + held[:-1]) - np.array([int(rows[s][0].rows[0]) for s in order])
        slot = row + shift[shard]
    else:  # a stream keeps only the rows asked for: search them, keys sorted (fast) and put back
        keys = np.concatenate([c.rows | (s << 32) for s in order for c in rows[s]])
        wanted = (shard.astype(np.int64) << 32) | row
        by = np.argsort(wanted)
        slot = np.empty(len(wanted), np.int64)
        slot[by] = np.searchsorted(keys, wanted[by])
    chunk_of = np.repeat(np.arange(len(chunks)), sizes)[slot]
    return chunks, chunk_of, slot - first[chunk_of]


@dataclass
class Block:
    """A window's sequences in the rank's order: token row views and where they are, the piece columns flat
    with `offsets`, global indices."""

    rows: list[np.ndarray] | None  # input_ids of each sequence (views of the chunks read), when made ahead
    gathered: np.ndarray | None  # or all of them copied into one (n, seq_len) array, for short sequences
    chunks: list[np.ndarray]  # the chunks' input_ids (2-D)
    chunk_of: np.ndarray  # per sequence: its chunk
    place: np.ndarray  # per sequence: its row in the chunk
    run: np.ndarray  # per sequence: where the run of rows consecutive in one chunk that ends with it began
    offsets: np.ndarray  # int64, len(rows) + 1, into the flat piece columns
    doc_ids: np.ndarray  # object (str)
    doc_lengths: np.ndarray  # int32
    doc_starts: np.ndarray  # bool
    index: np.ndarray  # int64, global indices

    def __len__(self) -> int:
        return len(self.index)

    def tokens(self, a: int, b: int, seq_len: int) -> np.ndarray:
        """input_ids of sequences a..b-1: a view of the window's gathered rows (short sequences), of their
        chunk when they are consecutive rows of one (as without shuffling), else one copy into a contiguous
        array; read-only in every case."""
        if self.gathered is not None:
            return self.gathered[a:b]
        if self.run[b - 1] <= a:
            k = int(self.place[a])
            return self.chunks[int(self.chunk_of[a])][k:k + b - a]
        rows = self.rows[a:b] if self.rows is not None else [
            self.chunks[c][k] for c, k in zip(self.chunk_of[a:b].tolist(), self.place[a:b].tolist())]
        out = np.concatenate(rows).reshape(b - a, seq_len)
        out.flags.writeable = False
        return out

    def batch(self, a: int, b: int, seq_len: int) -> dict:
        p, q = int(self.offsets[a]), int(self.offsets[b])
        return {"input_ids": self.tokens(a, b, seq_len), "doc_offsets": self.offsets[a:b + 1] - p,
                "doc_ids": self.doc_ids[p:q], "doc_lengths": self.doc_lengths[p:q], "doc_starts": self.doc_starts[p:q],
                "index": self.index[a:b]}


def _joined(parts: list[dict], seq_len: int) -> dict:
    """One batch from the batches of consecutive windows' ends (a batch that spans windows): a copy."""
    ends = np.cumsum([0] + [int(p["doc_offsets"][-1]) for p in parts[:-1]])
    out = {"input_ids": np.concatenate([p["input_ids"] for p in parts]),
           "doc_offsets": np.concatenate([[0]] + [p["doc_offsets"][1:] + e for p, e in zip(parts, ends)])}
    out["input_ids"].flags.writeable = False
    for key in ("doc_ids", "doc_lengths", "doc_starts", "index"):
        out[key] = np.concatenate([p[key] for p in parts])
    return out


GATHER_BELOW = 4096  # bytes per sequence under which a window's rows are gathered at once, not copied per batch


def block(seqs: np.ndarray, shard: np.ndarray, row: np.ndarray, rows: dict[int, list[Rows]]) -> Block:
    """A window's sequences (global indices `seqs`, at `shard`, `row`) in that order, from the chunks read."""
    chunks, chunk_of, place = locate(shard, row, rows)
    offsets, doc_ids, lengths, starts = _pieces_in_order(chunks, *_piece_bounds(chunks, chunk_of, place))
    tokens, n = [c.input_ids for c in chunks], len(seqs)
    follows = np.zeros(n, bool)
    follows[1:] = (chunk_of[1:] == chunk_of[:-1]) & (place[1:] == place[:-1] + 1)
    run = np.maximum.accumulate(np.where(follows, 0, np.arange(n)))
    scattered = 8 * (n - int(follows.sum())) > n  # most batches will be copies (shuffled), not one run
    if scattered and chunks[0].input_ids[0].nbytes < GATHER_BELOW:
        # a copy per batch costs about a microsecond per row whatever its length: for short rows, one
        # gather for the window (vectorised) is far cheaper, and a batch is then a view of it
        gathered, row_views = _gathered(chunks, chunk_of, place), None
    else:
        # row views made ahead (in C) pay when most batches are copies; batches that are one run are views
        # of their chunk and need none
        gathered, row_views = None, _rows(chunks, chunk_of, place) if scattered else None
    return Block(row_views, gathered, tokens, chunk_of, place, run, offsets, doc_ids, lengths, starts,
                 seqs.astype(np.int64))


def _piece_bounds(chunks: list[Rows], chunk_of: np.ndarray, place: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per sequence, where its pieces begin and end in the chunks' piece columns joined end to end."""
    first = np.cumsum([0] + [len(c) for c in chunks])
    slot = first[chunk_of] + place  # the sequence's row among all the window's chunks
    base = np.cumsum([0] + [int(c.offsets[-1]) for c in chunks])
    bounds = np.concatenate([c.offsets[:-1] + b for c, b in zip(chunks, base[:-1])] + [base[-1:]])
    return bounds[slot], bounds[slot + 1]


def _pieces_in_order(chunks: list[Rows], begin: np.ndarray, end: np.ndarray) -> tuple:
    """The sequences' pieces gathered in their order: offsets (int64, n + 1), doc_ids, doc_lengths, doc_starts.
    Sequences whose pieces follow one another (in the manifest's order) take one slice of the joined columns."""
    count = end - begin
    offsets = np.concatenate([[0], np.cumsum(count)]).astype(np.int64)
    if len(begin) and (begin[1:] == end[:-1]).all():
        pieces = slice(int(begin[0]), int(end[-1]))
    else:
        pieces = np.repeat(begin - offsets[:-1], count) + np.arange(offsets[-1])  # each sequence's pieces, in order
    return (offsets, _ids(chunks, pieces),
            np.concatenate([c.doc_lengths for c in chunks])[pieces], np.concatenate([c.doc_starts for c in chunks])[pieces])


def _ids(chunks: list[Rows], pieces: slice | np.ndarray) -> np.ndarray:
    """The doc_ids of the given pieces of the chunks joined end to end, as an object array. Chunks read with
    `ids=False` (a rank's share of long sequences) hold Arrow strings: only these pieces are taken and made
    Python strs, about 1/world_size of the window's (Arrow's take, then one conversion)."""
    if all(c.doc_ids is not None for c in chunks):
        return np.concatenate([c.doc_ids for c in chunks])[pieces]
    joined = pa.chunked_array([c.id_strings if c.doc_ids is None else pa.array(c.doc_ids, pa.string()) for c in chunks])
    if isinstance(pieces, slice):
        return joined.slice(pieces.start, pieces.stop - pieces.start).to_numpy()
    return joined.take(pa.array(pieces)).to_numpy()


def _gathered(chunks: list[Rows], chunk_of: np.ndarray, place: np.ndarray) -> np.ndarray:
    """The sequences' rows copied into one read-only (n, seq_len) array in their order. When the rank takes
    a third of the window's rows or more, the chunks are joined (sequential copies) and the rows taken in one
    `np.take`; otherwise one fancy-indexed copy per chunk."""
    first = np.cumsum([0] + [len(c) for c in chunks])
    if 3 * len(chunk_of) >= first[-1]:
        out = np.take(np.concatenate([c.input_ids for c in chunks]), first[chunk_of] + place, axis=0)
    else:
        out = np.empty((len(chunk_of), chunks[0].input_ids.shape[1]), chunks[0].input_ids.dtype)
        by_chunk = np.argsort(chunk_of, kind="stable")
        for positions in np.split(by_chunk, np.flatnonzero(np.diff(chunk_of[by_chunk])) + 1):
            if len(positions):
                out[positions] = chunks[int(chunk_of[positions[0]])].input_ids[place[positions]]
    out.flags.writeable = False
    return out


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
    two blocks or more."""
    held: list[dict] = []  # the start of a batch that continues in the next block
    for b in blocks:
        start = 0
        if held:
            start = min(size - sum(len(h["index"]) for h in held), len(b))
            held.append(b.batch(0, start, seq_len))
            if start < len(b) or sum(len(h["index"]) for h in held) == size:
                yield _joined(held, seq_len)
                held = []
            else:
                continue
        full = start + (len(b) - start) // size * size
        for a in range(start, full, size):
            yield b.batch(a, a + size, seq_len)
        if full < len(b):
            held = [b.batch(full, len(b), seq_len)]
    if held:
        yield _joined(held, seq_len)


@dataclass
class Items:
    """A window's sequences in the rank's order, laid out for a Python loop that builds one dict per sequence
    with nothing but indexing and slicing, per sequence: its token row `arrays[chunk][place]` (a view made when
    its item is: thousands of views made ahead cost more than they save), its pieces `begin:end` of the flat
    piece columns, their count, and its global index, all Python lists (made by `tolist`)."""

    arrays: list[np.ndarray]  # 2-D token arrays: the chunks read
    chunk: list[int]  # per sequence: its array in `arrays`
    place: list[int]  # per sequence: its row in that array
    begin: list[int]  # per sequence: its first piece in the flat columns below
    end: list[int]  # per sequence: one past its last piece
    count: list[int]  # per sequence: end - begin
    doc_ids: list[str]  # flat piece column
    doc_lengths: list[np.ndarray]  # the flat int32 column by piece count: doc_lengths[p][a] is column[a:a + p]
    doc_starts: list[np.ndarray]  # the flat bool column, the same way
    index: list[int]  # global indices


def items(seqs: np.ndarray, shard: np.ndarray, row: np.ndarray, rows: dict[int, list[Rows]], gather: bool) -> Items:
    """A window's sequences (global indices `seqs`, at `shard`, `row`) in that order, for item by item. With
    `gather` (short shuffled sequences), their pieces are first copied into this order, so that the loop walks
    the piece columns in order instead of jumping between those of the chunks read (cache misses that grow with
    the window); otherwise the piece columns of the window's chunks are only joined, each sequence pointing
    into them. Token rows stay where they were read (making a row's view touches none of its tokens)."""
    chunks, chunk_of, place = locate(shard, row, rows)
    begin, end = _piece_bounds(chunks, chunk_of, place)
    if gather or any(c.doc_ids is None for c in chunks):  # ids left as Arrow strings: only ours are converted
        offsets, doc_ids, lengths, starts = _pieces_in_order(chunks, begin, end)
        begin, end = offsets[:-1], offsets[1:]
    else:
        doc_ids = np.concatenate([c.doc_ids for c in chunks])
        lengths = _joined_column([c.doc_lengths for c in chunks])
        starts = _joined_column([c.doc_starts for c in chunks])
    count = end - begin
    return Items([c.input_ids for c in chunks], chunk_of.tolist(), place.tolist(), begin.tolist(), end.tolist(),
                 count.tolist(), doc_ids.tolist(), _by_count(lengths, count), _by_count(starts, count), seqs.tolist())


def _by_count(column: np.ndarray, count: np.ndarray) -> list[np.ndarray]:
    """Per piece count p (0 to the largest in `count`), a 2-D view of the contiguous `column` whose row a is
    column[a:a + p]: indexing a 2-D array by an integer makes a row's view for less than slicing a 1-D one."""
    n, size = len(column), column.itemsize
    return [np.ndarray((n - p + 1, p), column.dtype, column, 0, (size, size)) for p in range(int(count.max()) + 1)]


def _joined_column(parts: list[np.ndarray]) -> np.ndarray:
    """One read-only array of the chunks' piece column (the chunk's own when there is one)."""
    if len(parts) == 1:
        return parts[0]
    out = np.concatenate(parts)
    out.flags.writeable = False
    return out
