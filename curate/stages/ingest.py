"""Stage `ingest`: normalise raw records to the document schema and decide which are documents.

Input: raw-record tables from `curate.sources` (id, text, lang, path_or_url, meta, read_error, read_detail,
raw_bytes). Output: the document schema (id, text, kind, source, lang, path_or_url, meta) plus
`drop_reason` / `drop_detail` and `bytes` (the record's size as read, which the ledger counts).

Reason codes: ingest.malformed_json, ingest.bad_utf8, ingest.binary, ingest.missing_text, ingest.wrong_type
(set by the readers), ingest.empty (empty or whitespace-only text), ingest.too_large (> max_bytes).
Ids repeated within a partition get `#2`, `#3`, ... in input order (The Stack's `hexsha` repeats).

`--strict` covers malformed input (STRICT_REASONS); empty and oversized documents are policy drops.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from curate.schema import DOC_SCHEMA, DROP_DETAIL, DROP_REASON
from curate.stagespec import Stage

STAGE = Stage(key="ingest", order=10, kind="row", per_source=True, reads="sources",
              summary="read the sources, normalise to the document schema; drop empty, oversized, binary, malformed",
              decide="curate.workers.ingest:decide", run="curate.workers.ingest:run",
              check="curate.workers.ingest:check")

STRICT_REASONS = frozenset(
    {"ingest.malformed_json", "ingest.bad_utf8", "ingest.binary", "ingest.missing_text", "ingest.wrong_type"}
)


def normalize(raw: pa.Table, source: str, kind: str, max_bytes: int, dedupe_ids: IdDeduper | None = None) -> pa.Table:
    """The decided table for one raw batch (same rows, same order)."""
    n = raw.num_rows
    text = raw["text"]
    nbytes = raw["raw_bytes"]
    blank = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(text)), 0)
    too_large = pc.greater(pc.binary_length(text), max_bytes)
    reason = pc.coalesce(
        raw["read_error"],
        pc.if_else(pc.fill_null(blank, False), "ingest.empty", pa.nulls(n, pa.string())),
        pc.if_else(pc.fill_null(too_large, False), "ingest.too_large", pa.nulls(n, pa.string())),
    )
    detail = pc.coalesce(
        raw["read_detail"],
        pc.if_else(pc.fill_null(too_large, False),
                   pc.binary_join_element_wise(pc.cast(pc.binary_length(text), pa.string()), f" bytes > {max_bytes}", ""),
                   pa.nulls(n, pa.string())),
    )
    ids = dedupe_ids(raw["id"]) if dedupe_ids is not None else raw["id"]
    columns = {
        "id": ids,
        "text": text,
        "kind": pa.repeat(kind, n) if n else pa.array([], pa.string()),
        "source": pa.repeat(source, n) if n else pa.array([], pa.string()),
        "lang": raw["lang"],
        "path_or_url": raw["path_or_url"],
        "meta": raw["meta"],
        DROP_REASON: reason,
        DROP_DETAIL: detail,
        "bytes": nbytes,
    }
    schema = pa.schema([*(f.with_nullable(True) for f in DOC_SCHEMA),
                        pa.field(DROP_REASON, pa.string()), pa.field(DROP_DETAIL, pa.string()),
                        pa.field("bytes", pa.int64())])
    return pa.table(columns, schema=schema)


class IdDeduper:
    """Makes ids unique within a partition: the k-th repeat of an id becomes `id#k+1`, in input order.

    Only sources with an `id_field` can repeat ids (file#line and tree paths are unique by construction),
    so only those pay for the lookup.
    """

    def __init__(self, offsets: dict[str, int] | None = None) -> None:
        self.seen: dict[str, int] = dict(offsets or {})  # uses of each id by earlier partitions
        self.renamed = 0

    def __call__(self, ids: pa.Array | pa.ChunkedArray) -> pa.Array:
        out = []
        for doc_id in ids.to_pylist():
            n = self.seen.get(doc_id, 0) + 1
            self.seen[doc_id] = n
            if n > 1:
                self.renamed += 1
                doc_id = f"{doc_id}#{n}"
            out.append(doc_id)
        return pa.array(out, pa.string())


def id_offsets(counts: pa.Table) -> pa.Table:
    """Given (id, part, count) rows, for every id used by several partitions and every partition after
    its first: (part, id, offset) where offset = uses of the id in earlier partitions."""
    import numpy as np

    if counts.num_rows == 0:
        return pa.table({"part": pa.array([], pa.int32()), "id": pa.array([], pa.string()), "offset": pa.array([], pa.int64())})
    t = counts.sort_by([("id", "ascending"), ("part", "ascending")])
    ids = t["id"].combine_chunks()
    n = t.num_rows
    same = np.zeros(n, dtype=bool)
    if n > 1:
        same[1:] = pc.equal(ids[1:], ids[:-1]).to_numpy(zero_copy_only=False)
    c = t["count"].to_numpy()
    run_start = np.maximum.accumulate(np.where(~same, np.arange(n), 0))
    cum = np.cumsum(c) - c  # uses before this row, over the whole sorted table
    offset = cum - cum[run_start]
    keep = same  # only rows after the first partition of an id need an offset
    return pa.table({"part": pc.filter(t["part"], pa.array(keep)), "id": pc.filter(ids, pa.array(keep)),
                     "offset": pa.array(offset[keep], pa.int64())})


def first_strict_violation(decided: pa.Table) -> str | None:
    """The detail of the first record that `--strict` refuses, or None."""
    mask = pc.is_in(decided[DROP_REASON], pa.array(sorted(STRICT_REASONS)))
    hits = pc.indices_nonzero(pc.fill_null(mask, False))
    if len(hits) == 0:
        return None
    i = hits[0].as_py()
    return f"{decided[DROP_REASON][i].as_py()}: {decided[DROP_DETAIL][i].as_py()}"
