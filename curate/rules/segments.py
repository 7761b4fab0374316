"""Shared tokenisation for the quality metrics: one split of a batch's texts into lines, one into words.

Every metric is then an aggregation over these flat arrays (numpy/Arrow, no Python loop per token): a
segment array holds the pieces of all documents of a batch end to end, with the document index of each
piece, so a per-document statistic is a `bincount` and a per-document duplicate test is a hash grouping.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

PUNCTUATION = string.punctuation + "…«»“”‘’–—"


@dataclass
class Segments:
    """The pieces of every document of a batch, flattened; `doc[i]` is the document of piece `i`."""

    values: pa.Array  # string pieces
    doc: np.ndarray  # int64, non-decreasing
    n_docs: int

    @classmethod
    def from_lists(cls, lists: pa.Array, n_docs: int) -> Segments:
        lists = lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists
        values = pc.list_flatten(lists)
        doc = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False).astype(np.int64)
        return cls(values, doc, n_docs)

    def filter(self, mask: np.ndarray) -> Segments:
        return Segments(self.values.filter(pa.array(mask)), self.doc[mask], self.n_docs)

    def lengths(self) -> np.ndarray:
        return pc.utf8_length(self.values).to_numpy(zero_copy_only=False).astype(np.int64)

    def count(self, mask: np.ndarray | None = None) -> np.ndarray:
        doc = self.doc if mask is None else self.doc[mask]
        return np.bincount(doc, minlength=self.n_docs).astype(np.float64)

    def sum(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.doc, weights=values, minlength=self.n_docs)

    def max(self, values: np.ndarray) -> np.ndarray:
        out = np.zeros(self.n_docs, dtype=np.float64)
        np.maximum.at(out, self.doc, values)
        return out

    def matches(self, pattern: str, ignore_case: bool = False) -> np.ndarray:
        return _bool(pc.match_substring_regex(self.values, pattern, ignore_case=ignore_case))

    def position_in_doc(self) -> np.ndarray:
        """0 for the first piece of each document, 1 for the second, ..."""
        idx = np.arange(len(self.doc))
        starts = np.searchsorted(self.doc, self.doc, side="left")
        return idx - starts


def _bool(arr) -> np.ndarray:
    return pc.fill_null(arr, False).to_numpy(zero_copy_only=False).astype(bool)


def split_lines(texts: pa.Array) -> Segments:
    """Lines split on '\\n' (empty lines included)."""
    return Segments.from_lists(pc.split_pattern(texts, "\n"), len(texts))


def split_regex(texts: pa.Array, pattern: str) -> Segments:
    return Segments.from_lists(pc.split_pattern_regex(texts, pattern), len(texts))


def split_words(texts: pa.Array) -> Segments:
    """Whitespace-separated tokens, as written (Arrow yields an empty token for leading/trailing space)."""
    tokens = Segments.from_lists(pc.utf8_split_whitespace(texts), len(texts))
    return tokens.filter(tokens.lengths() > 0)


def clean_words(words: Segments) -> Segments:
    """Tokens lowercased with punctuation trimmed at both ends; tokens that were only punctuation are gone."""
    cleaned = pc.utf8_lower(pc.utf8_trim(words.values, PUNCTUATION))
    keep = pc.greater(pc.utf8_length(cleaned), 0).to_numpy(zero_copy_only=False)
    return Segments(cleaned.filter(pa.array(keep)), words.doc[keep], words.n_docs)


# ---------------------------------------------------------------------------------------------- duplicates
def codes(values: pa.Array) -> np.ndarray:
    """Integer code of each value, assigned in order of first appearance (Arrow's hash dictionary)."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    return pc.dictionary_encode(values).indices.to_numpy(zero_copy_only=False).astype(np.int64)


def keyed_by_doc(piece_codes: np.ndarray, doc: np.ndarray, n_docs: int) -> np.ndarray:
    """Codes of (document, piece) pairs: equal pieces of different documents get different codes."""
    if len(piece_codes) == 0:
        return piece_codes
    return codes(pa.array(piece_codes.astype(np.uint64) * np.uint64(max(n_docs, 1)) + doc.astype(np.uint64)))


def repeats(pair_codes: np.ndarray) -> np.ndarray:
    """True for every occurrence of a code but its first (codes are numbered in order of first appearance,
    so an occurrence is a first one exactly when its code exceeds every earlier code)."""
    if len(pair_codes) == 0:
        return np.zeros(0, dtype=bool)
    prev_max = np.concatenate([[-1], np.maximum.accumulate(pair_codes)[:-1]])
    return pair_codes <= prev_max


def occurrences(pair_codes: np.ndarray) -> np.ndarray:
    """How many times each element's code occurs in the whole array."""
    if len(pair_codes) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.bincount(pair_codes)[pair_codes]


_P = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier (golden ratio): a polynomial hash of word codes


def ngram_hashes(word_codes: np.ndarray, doc: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of the word n-grams that lie inside one document, and their start positions.
    A hash collision between two different n-grams has probability ~k^2/2^64 for k n-grams."""
    m = len(word_codes) - n + 1
    if m <= 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    h = np.zeros(m, dtype=np.uint64)
    wc = word_codes.astype(np.uint64) + np.uint64(1)
    for k in range(n):  # n <= 10 vector passes, not a per-token loop
        h = h * _P + wc[k : k + m]
    starts = np.nonzero(doc[:m] == doc[n - 1 :])[0]
    return h[starts], starts
