"""What an export writes, one shard at a time: its packed sequences, or its documents re-joined.

`Entries` is one shard's worth: the tokens of every entry concatenated, their offsets, and per entry
either the sequence's global index and pieces (unit `sequence`; padding stripped) or the document id
(unit `document`). A document belongs to the shard it starts in: pack cuts shards at sequence
boundaries, so a document can run on into the next shards; its continuation is read from their first
rows (only as many as it takes), and those shards skip it when their turn comes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from curate.shard_reader import Rows, ShardError, ShardSet

UNITS = ("sequence", "document")


@dataclass
class Entries:
    tokens: np.ndarray  # every entry's tokens, concatenated (the shard's dtype)
    offsets: np.ndarray  # int64, n + 1
    index: np.ndarray | None = None  # sequence: global index
    rows: Rows | None = None  # sequence: the rows themselves (piece columns, padding)
    doc_ids: np.ndarray | None = None  # document: id per entry (object)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def unpadded(rows: Rows) -> tuple[np.ndarray, np.ndarray]:
    """(tokens without padding, per-row token counts)."""
    seq_len = rows.input_ids.shape[1]
    counts = (seq_len - rows.n_pad).astype(np.int64)
    keep = np.arange(seq_len)[None, :] < counts[:, None]
    return rows.input_ids[keep], counts


def sequence_entries(rows: Rows, first_index: int) -> Entries:
    tokens, counts = unpadded(rows)
    return Entries(tokens, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                   index=np.arange(first_index, first_index + len(rows), dtype=np.int64), rows=rows)


def _pieces(shards: ShardSet, k: int, rows: Rows) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, piece offsets) of a shard's rows; the pieces must cover the unpadded tokens exactly."""
    tokens, _ = unpadded(rows)
    offsets = np.concatenate([[0], np.cumsum(rows.doc_lengths, dtype=np.int64)])
    if offsets[-1] != len(tokens):
        raise ShardError(f"{shards.files[k]}: doc_lengths sum to {offsets[-1]}, the sequences hold {len(tokens)} tokens")
    return tokens, offsets


def continuation(shards: ShardSet, k: int) -> np.ndarray:
    """Tokens at the head of the shards after k that continue a document open at the end of shard k."""
    parts = []
    for s in range(k + 1, len(shards.files)):
        want = 1
        while True:
            n = min(want, shards.sizes[s])
            rows = shards.read_rows(s, np.arange(n), verify=False)
            tokens, offsets = _pieces(shards, s, rows)
            begins = np.nonzero(rows.doc_starts)[0]
            if len(begins):
                parts.append(tokens[: offsets[begins[0]]])
                return np.concatenate(parts)
            if n == shards.sizes[s]:
                parts.append(tokens)
                break
            want *= 4  # a long document: read further
    return np.concatenate(parts) if parts else np.zeros(0, shards.dtype)


def document_entries(shards: ShardSet, k: int, rows: Rows) -> Entries:
    """The documents that start in shard k, whole."""
    tokens, offsets = _pieces(shards, k, rows)
    begins = np.nonzero(rows.doc_starts)[0]
    if len(begins) == 0:
        return Entries(np.zeros(0, tokens.dtype), np.zeros(1, np.int64), doc_ids=np.zeros(0, object))
    first = offsets[begins[0]]
    tail = continuation(shards, k)
    body = np.concatenate([tokens[first:], tail])
    ends = np.concatenate([offsets[begins] - first, [len(body)]]).astype(np.int64)
    return Entries(body, ends, doc_ids=rows.doc_ids[begins])


def shard_entries(shards: ShardSet, k: int, unit: str, first_index: int) -> Entries:
    rows = shards.read_rows(k, np.arange(shards.sizes[k]), verify=True)
    return sequence_entries(rows, first_index) if unit == "sequence" else document_entries(shards, k, rows)
