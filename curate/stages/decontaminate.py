"""Stage `decontaminate`: documents that share word n-grams with a benchmark item are dropped.

Input: the document schema. Added columns: none (kept rows pass unchanged). Reason code:
`decontaminate.benchmark_overlap`, detail `benchmark=<name> item=<id> matches=<k>` (the item the document
shares most n-grams with; ties go to the earlier item).

Method: the words are near_dedup's (`shingle_hashes`: lower-cased text split into Python's Unicode `\\w`
runs, so whitespace, indentation and punctuation do not matter), hashed to 64 bits per word n-gram.
    build_index   each benchmark item's distinct n-grams, as a sorted array of hashes with the item of
                  each; an item with fewer than `ngram` words is kept whole (its own word count is its n)
    match         per document, its n-grams looked up in the index by binary search (numpy, no loop per
                  n-gram), each distinct shared n-gram counted once per item; a document sharing at least
                  `min_matches` n-grams with one item is contaminated, and so is one that contains a short
                  item's whole word sequence (a normalised substring match on word boundaries)
The index is small (HumanEval: ~25k n-grams), so one copy per worker serves every part.
References: Brown et al. 2020 (GPT-3), App. C: 13-gram overlap; Touvron et al. 2023 (Llama 2), App. A.6;
Li et al. 2023 (StarCoder), Sec. 4: benchmark solutions and prompts removed by substring match.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from curate.schema import DROP_DETAIL, DROP_REASON, TEXT
from curate.stages.near_dedup import shingle_hashes, token_hashes
from curate.stagespec import Stage

STAGE = Stage(key="decontaminate", order=60, kind="row", per_source=True,
              summary="benchmark n-gram overlap (HumanEval by default): dropped with the benchmark item named",
              decide="curate.workers.decontaminate:decide", salt="curate.workers.decontaminate:benchmarks_salt",
              check="curate.workers.decontaminate:check")

REASON = "decontaminate.benchmark_overlap"


@dataclass(frozen=True)
class Postings:
    """Sorted n-gram hashes (repeated when several items share one) and the item of each."""

    hashes: np.ndarray  # uint64, sorted
    items: np.ndarray  # int64, parallel to hashes

    @staticmethod
    def of(hashes: np.ndarray, items: np.ndarray) -> Postings:
        order = np.lexsort((items, hashes))
        return Postings(hashes[order], items[order].astype(np.int64))


@dataclass(frozen=True)
class Index:
    """Every benchmark item's n-grams. `benchmark[i]` and `item_ids[i]` name item i."""

    ngram: int
    long: Postings  # items with at least `ngram` words: their distinct n-grams
    short: dict[int, Postings] = field(default_factory=dict)  # word count L -> items of L < ngram words, whole
    benchmark: tuple[str, ...] = ()
    item_ids: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return len(self.long.hashes) + sum(len(p.hashes) for p in self.short.values())


def build_index(texts: list[str], benchmark: list[str], item_ids: list[str], ngram: int) -> Index:
    """The index of items `texts` (item i from benchmark `benchmark[i]`, named `item_ids[i]`). Items
    without a word are left out (they would match nothing, or everything)."""
    _, counts = token_hashes(texts)
    doc, h = shingle_hashes(texts, ngram, unique=True)
    is_long = counts >= ngram
    long = Postings.of(h[is_long[doc]], doc[is_long[doc]])
    short = {}
    for n in np.unique(counts[(counts > 0) & ~is_long]).tolist():
        rows = np.flatnonzero(counts == n)
        d, hh = shingle_hashes([texts[i] for i in rows], n, unique=True)
        short[n] = Postings.of(hh, rows[d])
    return Index(ngram, long, short, tuple(benchmark), tuple(item_ids))


def _shared(doc: np.ndarray, h: np.ndarray, post: Postings) -> tuple[np.ndarray, np.ndarray]:
    """(doc, item) once per distinct n-gram a document shares with an item."""
    if len(post.hashes) == 0 or len(h) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    lo = np.searchsorted(post.hashes, h, "left")
    hit = post.hashes[np.minimum(lo, len(post.hashes) - 1)] == h
    doc, h = doc[hit], h[hit]  # usually few: only these are sorted
    order = np.lexsort((h, doc))
    doc, h = doc[order], h[order]
    first = np.ones(len(h), bool)
    first[1:] = (doc[1:] != doc[:-1]) | (h[1:] != h[:-1])
    doc, h = doc[first], h[first]
    lo, hi = np.searchsorted(post.hashes, h, "left"), np.searchsorted(post.hashes, h, "right")
    n = hi - lo  # items holding this n-gram
    at = np.repeat(lo - (np.cumsum(n) - n), n) + np.arange(int(n.sum()))
    return np.repeat(doc, n), post.items[at]


def match(texts, index: Index, min_matches: int) -> tuple[np.ndarray, np.ndarray]:
    """(item, matches) per document: the item it shares most n-grams with (-1 if no item reaches
    `min_matches`), and how many. A short item found whole counts as `min_matches` matches at least."""
    n_docs, n_items = len(texts), max(len(index.item_ids), 1)
    doc, h = shingle_hashes(texts, index.ngram, unique=False)
    d, it = _shared(doc, h, index.long)
    keys, counts = np.unique(d * n_items + it, return_counts=True)
    counts = counts.astype(np.int64)
    for n, post in index.short.items():
        sd, sit = _shared(*shingle_hashes(texts, n, unique=False), post)
        skeys = np.unique(sd * n_items + sit)
        keys = np.concatenate([keys, skeys])
        counts = np.concatenate([counts, np.full(len(skeys), min_matches, np.int64)])
    ok = counts >= min_matches
    keys, counts = keys[ok], counts[ok]
    doc_of, item_of = keys // n_items, keys % n_items
    order = np.lexsort((item_of, -counts, doc_of))  # per document: most matches first, then the earlier item
    doc_of, item_of, counts = doc_of[order], item_of[order], counts[order]
    first = np.ones(len(doc_of), bool)
    first[1:] = doc_of[1:] != doc_of[:-1]
    item, matches = np.full(n_docs, -1, np.int64), np.zeros(n_docs, np.int64)
    item[doc_of[first]], matches[doc_of[first]] = item_of[first], counts[first]
    return item, matches


def apply(table: pa.Table, index: Index | None, min_matches: int) -> pa.Table:
    """The table with `drop_reason`/`drop_detail` set on contaminated documents (same rows, same order).
    Without an index (no benchmarks), every document is kept."""
    n = table.num_rows
    if index is None or n == 0:
        item, matches = np.full(n, -1, np.int64), np.zeros(n, np.int64)
    else:
        item, matches = match(table[TEXT], index, min_matches)
    reason, detail = np.full(n, None, object), np.full(n, None, object)
    hit = np.flatnonzero(item >= 0)
    reason[hit] = REASON
    detail[hit] = [f"benchmark={index.benchmark[i]} item={index.item_ids[i]} matches={k}"
                   for i, k in zip(item[hit].tolist(), matches[hit].tolist())]  # dropped rows only: few
    return table.append_column(DROP_REASON, pa.array(reason, pa.string())).append_column(
        DROP_DETAIL, pa.array(detail, pa.string()))
