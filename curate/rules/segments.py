"""Shared tokenisation for the quality metrics: one split of a batch's texts into lines, one split of those
lines into whitespace tokens, and one vocabulary of the distinct tokens.

Every metric is then an aggregation over these flat arrays (numpy/Arrow, no Python loop per token): a
segment array holds the pieces of all documents of a batch end to end, with the document index of each
piece, so a per-document statistic is a `bincount` and a per-document duplicate test is a hash grouping.
A per-token property (length, has a letter, number of '#') is computed once per distinct token of the
batch (a few percent of the tokens of natural text) and gathered by token code.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

PUNCTUATION = string.punctuation + "…«»“”‘’–—"
# Exactly the characters of Python's str.isspace() (what `str.split()` splits on), as an RE2 class. Not
# Arrow's utf8_split_whitespace: in pyarrow 26 it sometimes keeps a line's trailing space in its last token
# (a different answer on repeated calls with the same input; tests/rules/test_text_metrics.py found it).
WHITESPACE = (r"[\t\n\x{0b}\f\r\x{1c}-\x{20}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}"
              r"\x{202f}\x{205f}\x{3000}]+")


#: The characters Python splits on and Arrow's ASCII split does not: \x1c-\x1f and the non-ASCII whitespace.
EXOTIC_WHITESPACE = (r"[\x{1c}-\x{1f}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}"
                     r"\x{3000}]")


def split_whitespace(values: pa.Array) -> pa.Array:
    """Each string's `str.split()` pieces (with "" where whitespace leads or trails). Lines without the
    whitespace that Arrow's ASCII split does not know (`EXOTIC_WHITESPACE`), non-ASCII ones included (a
    UTF-8 multi-byte sequence holds no ASCII byte), take Arrow's ascii_split_whitespace, 5x faster than the
    regex split that the other lines take. Why not by ASCII-ness of the line: putting two splits back in
    row order (a take over every piece) cost more than the regex split it saved."""
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    exotic = _exotic_whitespace(values)
    if not exotic.any():
        return pc.ascii_split_whitespace(values)
    if exotic.all():
        return pc.split_pattern_regex(values, WHITESPACE)
    rows = [np.flatnonzero(~exotic), np.flatnonzero(exotic)]
    pieces = [pc.ascii_split_whitespace(values.filter(pa.array(~exotic))),
              pc.split_pattern_regex(values.filter(pa.array(exotic)), WHITESPACE)]
    return in_row_order(rows, pieces)[0]


def _exotic_whitespace(values: pa.Array) -> np.ndarray:
    """True for the strings holding a character of EXOTIC_WHITESPACE; the regex runs only on non-ASCII
    strings, and on ASCII ones only if the data holds a byte \x1c-\x1f at all."""
    exotic = np.zeros(len(values), dtype=bool)
    data = values.buffers()[2]
    if data is None or len(values) == 0:
        return exotic
    ascii_rows = pc.fill_null(pc.string_is_ascii(values), True).to_numpy(zero_copy_only=False)
    if not ascii_rows.all():
        exotic[~ascii_rows] = _bool(pc.match_substring_regex(values.filter(pa.array(~ascii_rows)), EXOTIC_WHITESPACE))
    if ((np.frombuffer(data, np.uint8) - np.uint8(0x1C)) < 4).any():
        exotic |= _bool(pc.match_substring_regex(values, "[\\x1c-\\x1f]"))
    return exotic


def in_row_order(rows: list[np.ndarray], *columns: list[pa.Array]) -> tuple[pa.Array, ...]:
    """Arrays computed group by group put back in row order: group k covers the rows `rows[k]` and gave
    `column[k]` for each of `columns` (every row in exactly one group)."""
    back = pa.array(np.argsort(np.concatenate(rows), kind="stable"))
    return tuple(pa.concat_arrays(column).take(back) for column in columns)


def char_lengths(values: pa.Array) -> np.ndarray:
    """Characters (code points) per string; the byte length when every string is ASCII (same value, and
    `binary_length` reads only the offsets)."""
    if len(values) and pc.all(pc.string_is_ascii(values)).as_py() is not False:
        out = pc.binary_length(values)
    else:
        out = pc.utf8_length(values)
    return pc.fill_null(out, 0).to_numpy(zero_copy_only=False).astype(np.int64)


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
        return char_lengths(self.values)

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


@dataclass
class Coded:
    """Tokens of a batch as codes into a vocabulary of distinct strings; `doc[i]` is the document of token i."""

    code: np.ndarray  # int64 index into `vocab`, per token
    vocab: pa.Array  # the distinct strings
    doc: np.ndarray  # int64, non-decreasing
    n_docs: int

    def count(self, mask: np.ndarray | None = None) -> np.ndarray:
        doc = self.doc if mask is None else self.doc[mask]
        return np.bincount(doc, minlength=self.n_docs).astype(np.float64)

    def sum(self, per_token: np.ndarray) -> np.ndarray:
        return np.bincount(self.doc, weights=per_token, minlength=self.n_docs)

    def vocab_count(self, needle: str) -> np.ndarray:
        """Per token: non-overlapping occurrences of `needle` in it (computed once per distinct token)."""
        return pc.count_substring(self.vocab, needle).to_numpy(zero_copy_only=False)[self.code]

    def vocab_matches(self, pattern: str) -> np.ndarray:
        return _bool(pc.match_substring_regex(self.vocab, pattern))[self.code]

    def vocab_lengths(self) -> np.ndarray:
        return char_lengths(self.vocab)[self.code]


@dataclass
class Tokens(Coded):
    """Whitespace tokens of a batch's lines (as `str.split()`: Unicode whitespace), with each token's line."""

    line: np.ndarray  # int64 index of the token's line in the `lines` it was split from

    @classmethod
    def of_lines(cls, lines: Segments) -> Tokens:
        lists = split_whitespace(lines.values)
        values = pc.list_flatten(lists)
        line = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False).astype(np.int64)
        keep = pc.binary_length(values).to_numpy(zero_copy_only=False) > 0  # "" around leading/trailing space
        values, line = values.filter(pa.array(keep)), line[keep]
        code, vocab = encode(values)
        return cls(code, vocab, lines.doc[line], lines.n_docs, line)

    def words(self) -> Coded:
        """Clean words: tokens lowercased with punctuation trimmed at both ends; tokens that were only
        punctuation are not words (DataTrove drops them too, after its own word tokeniser)."""
        cleaned = pc.utf8_lower(pc.utf8_trim(self.vocab, PUNCTUATION))
        clean_code, clean_vocab = encode(cleaned)
        clean_code[pc.binary_length(cleaned).to_numpy(zero_copy_only=False) == 0] = -1
        per_token = clean_code[self.code]
        keep = per_token >= 0
        return Coded(per_token[keep], clean_vocab, self.doc[keep], self.n_docs)


# ---------------------------------------------------------------------------------------------- duplicates
def encode(values: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """(code of each value, distinct values): codes in order of first appearance (Arrow's hash dictionary)."""
    enc = pc.dictionary_encode(values)
    return enc.indices.to_numpy(zero_copy_only=False).astype(np.int64), enc.dictionary


def codes(values: pa.Array) -> np.ndarray:
    """Integer code of each value, assigned in order of first appearance (Arrow's hash dictionary)."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    return encode(values)[0]


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
