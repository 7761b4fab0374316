"""Stage `exact_dedup`: one survivor per content hash.

Phases (the engine moves data between them through files grouped by hash bucket, so no process ever
holds every hash):
    content_hashes  per part: 128-bit xxh3 of each document's text (exact bytes, or whitespace-normalised
                    with `normalize: whitespace`: runs of Unicode whitespace become one space, ends stripped),
                    with its bucket (first byte of the hash) and its order key
    find_losers     per bucket range: among documents with the same hash, the survivor is the one that
                    comes first in input order (recipe source order, then file order, then row); every
                    other one is a loser that records the survivor's id
    mark_losers     per part: `drop_reason = exact_dedup.duplicate`, `drop_detail = survivor id`

Input and output: the document schema; no columns are added. Reason codes: exact_dedup.duplicate.
Memory: find_losers holds ~(16 + 8 + len(id)) bytes per document of its bucket range.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from curate.schema import DROP_DETAIL, DROP_REASON, ID, TEXT
from curate.stagespec import Stage

STAGE = Stage(key="exact_dedup", order=20, kind="row", summary="one survivor per content hash",
              decide="curate.workers.exact_dedup:decide", prepare="curate.workers.exact_dedup:groups")

BUCKETS = 256
_WS = re.compile(r"\s+")

HASH_SCHEMA = pa.schema(
    [("bucket", pa.int32()), ("hash", pa.binary(16)), ("order", pa.int64()), ("id", pa.string())]
)
LOSER_SCHEMA = pa.schema([("part", pa.int32()), ("row", pa.int64()), ("survivor", pa.string())])


def order_key(part: int, rows: np.ndarray) -> np.ndarray:
    """Global input order of a row: the part index (plan order) in the high bits, the row in the low."""
    return (np.int64(part) << np.int64(32)) | rows.astype(np.int64)


def content_hashes(table: pa.Table, part: int, first_row: int, normalize: str) -> pa.Table:
    texts = table[TEXT].to_pylist()
    if normalize == "whitespace":
        texts = [_WS.sub(" ", t).strip() for t in texts]
    digests = [xxhash.xxh3_128_digest(t.encode("utf-8", "surrogatepass")) for t in texts]
    hashes = pa.array(digests, pa.binary(16))
    buckets = np.frombuffer(b"".join(digests), dtype=np.uint8)[::16].astype(np.int32) if digests else np.zeros(0, np.int32)
    rows = np.arange(first_row, first_row + table.num_rows)
    return pa.table(
        {"bucket": buckets, "hash": hashes, "order": order_key(part, rows), "id": table[ID]}, schema=HASH_SCHEMA
    )


def find_losers(hashes: pa.Table) -> pa.Table:
    """Losers of one bucket range: (part, row, survivor id) for every non-first document of a hash."""
    if hashes.num_rows == 0:
        return LOSER_SCHEMA.empty_table()
    t = hashes.sort_by([("hash", "ascending"), ("order", "ascending")])
    h = t["hash"].combine_chunks()
    same_as_prev = np.zeros(t.num_rows, dtype=bool)
    if t.num_rows > 1:
        same_as_prev[1:] = pc.equal(h[1:], h[:-1]).to_numpy(zero_copy_only=False)
    first_of_run = np.maximum.accumulate(np.where(~same_as_prev, np.arange(t.num_rows), 0))
    losers = np.nonzero(same_as_prev)[0]
    order = t["order"].to_numpy()[losers]
    survivors = pc.take(t["id"], pa.array(first_of_run[losers]))
    return pa.table(
        {"part": (order >> 32).astype(np.int32), "row": order & 0xFFFFFFFF, "survivor": survivors},
        schema=LOSER_SCHEMA,
    )


def mark_losers(table: pa.Table, first_row: int, losers: pa.Table) -> pa.Table:
    """Adds drop_reason/drop_detail to one batch of a part given that part's losers."""
    n = table.num_rows
    rows = pa.array(np.arange(first_row, first_row + n, dtype=np.int64))
    idx = pc.index_in(rows, losers["row"].combine_chunks() if losers.num_rows else pa.array([], pa.int64()))
    survivor = pc.take(losers["survivor"].combine_chunks(), idx) if losers.num_rows else pa.nulls(n, pa.string())
    reason = pc.if_else(pc.is_valid(idx), "exact_dedup.duplicate", pa.nulls(n, pa.string()))
    return table.append_column(DROP_REASON, reason).append_column(DROP_DETAIL, survivor.cast(pa.string()))
