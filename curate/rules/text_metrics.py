"""Text quality signals (Gopher quality and repetition, C4, FineWeb), all from one line split, one paragraph
split and one word split of the batch. Definitions follow DataTrove's filters of the same names, with the
differences stated where they are made:

- words: whitespace tokens; "clean" words are lowercased with edge punctuation trimmed, and tokens that were
  only punctuation are not words (DataTrove drops them too, after its own word tokeniser).
- n-gram character fractions count the characters of clean words (no separators) over all clean-word
  characters. `top_Ngram_char_frac` = chars of the most frequent N-gram (first seen on ties) x its count, 0
  when no N-gram repeats; `dup_Ngram_char_frac` = chars of the words covered by any N-gram that occurs
  more than once (every occurrence, as RedPajama-V2's `rps_doc_frac_chars_dupe_ngrams`).
- lines are split on '\\n'; "non-empty" lines have at least one character. Duplicate lines/paragraphs are
  the repeats after a first occurrence (DataTrove's find_duplicates); their character fractions are over all
  characters of the text.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.rules.segments import (
    Segments,
    clean_words,
    codes,
    keyed_by_doc,
    ngram_hashes,
    occurrences,
    repeats,
    split_lines,
    split_regex,
    split_words,
)

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")  # Gopher App. A.1.1
END_PUNCTUATION = r"[.!?\"']\s*$"  # DataTrove's C4 / FineWeb terminal punctuation
POLICY = r"terms of use|privacy policy|cookie policy|uses cookies|use of cookies|use cookies"  # C4 / DataTrove
TOP_NGRAMS = (2, 3, 4)
DUP_NGRAMS = (5, 6, 7, 8, 9, 10)
SHORT_LINE_CHARS = 30  # FineWeb


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with NaN where den is 0 (an undefined metric never fires a rule)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _count(texts: pa.Array, pattern: str, ignore_case: bool = False) -> np.ndarray:
    out = pc.count_substring(texts, pattern, ignore_case=ignore_case)
    return out.to_numpy(zero_copy_only=False).astype(np.float64)


def text_signals(texts: pa.Array) -> dict[str, np.ndarray]:
    """Every text signal of every document of `texts` (a string array), as float64 arrays."""
    n = len(texts)
    chars = pc.utf8_length(texts).to_numpy(zero_copy_only=False).astype(np.float64)
    raw_words = split_words(texts)
    words = clean_words(raw_words)
    lines = split_lines(texts)
    out: dict[str, np.ndarray] = {}
    out.update(_word_signals(texts, raw_words, words))
    out.update(_line_signals(lines, chars))
    out.update(_paragraph_signals(texts, chars))
    out.update(_ngram_signals(words))
    out["lorem_ipsum"] = _count(texts, "lorem ipsum", ignore_case=True)
    out["curly_braces"] = _count(texts, "{")
    out["newline_word_ratio"] = _ratio(_count(texts, "\n"), out["words"])
    assert all(len(v) == n for v in out.values())
    return out


def _word_signals(texts: pa.Array, raw: Segments, words: Segments) -> dict[str, np.ndarray]:
    n_words = words.count()
    is_stop = pc.is_in(words.values, pa.array(STOP_WORDS)).to_numpy(zero_copy_only=False)
    has_alpha = raw.matches(r"\pL")
    ellipses = _count(texts, "...") + _count(texts, "…")
    return {
        "words": n_words,
        "mean_word_length": _ratio(words.sum(words.lengths()), n_words),
        "hash_word_ratio": _ratio(_count(texts, "#"), n_words),
        "ellipsis_word_ratio": _ratio(ellipses, n_words),
        "alpha_word_frac": _ratio(raw.count(has_alpha), raw.count()),
        "stop_words": words.count(is_stop),
    }


def _line_signals(lines: Segments, chars: np.ndarray) -> dict[str, np.ndarray]:
    lengths = lines.lengths()
    nonempty = lengths > 0
    ne = lines.filter(nonempty)
    ne_len = lengths[nonempty]
    n_lines = ne.count()
    dup = repeats(keyed_by_doc(codes(ne.values), ne.doc, ne.n_docs))
    punct_end = ne.matches(END_PUNCTUATION)
    # C4 keeps a line if it ends in terminal punctuation, has >= 3 words, and mentions neither javascript
    # nor a policy phrase; the document needs enough kept lines.
    line_words = pc.count_substring_regex(ne.values, r"\S+").to_numpy(zero_copy_only=False)
    c4_kept = punct_end & (line_words >= 3) & ~ne.matches("javascript", True) & ~ne.matches(POLICY, True)
    return {
        "bullet_line_frac": _ratio(ne.count(ne.matches(r"^\s*[•\-]")), n_lines),
        "ellipsis_line_frac": _ratio(ne.count(ne.matches(r"(\.\.\.|…)\s*$")), n_lines),
        "dup_line_frac": _ratio(ne.count(dup), n_lines),
        "dup_line_char_frac": _ratio(ne.sum(np.where(dup, ne_len, 0)), chars),
        "line_punct_frac": _ratio(ne.count(punct_end), n_lines),
        "short_line_frac": _ratio(ne.count(ne_len <= SHORT_LINE_CHARS), n_lines),
        "c4_kept_lines": ne.count(c4_kept),
    }


def _paragraph_signals(texts: pa.Array, chars: np.ndarray) -> dict[str, np.ndarray]:
    paras = split_regex(pc.utf8_trim_whitespace(texts), r"\n{2,}")
    lengths = paras.lengths()
    paras, lengths = paras.filter(lengths > 0), lengths[lengths > 0]
    dup = repeats(keyed_by_doc(codes(paras.values), paras.doc, paras.n_docs))
    return {
        "dup_para_frac": _ratio(paras.count(dup), paras.count()),
        "dup_para_char_frac": _ratio(paras.sum(np.where(dup, lengths, 0)), chars),
    }


def _ngram_signals(words: Segments) -> dict[str, np.ndarray]:
    word_codes = codes(words.values)
    lengths = words.lengths()
    total = words.sum(lengths)
    cum = np.concatenate([[0], np.cumsum(lengths)])
    out = {}
    for n in TOP_NGRAMS:
        # overlapping occurrences can count a character twice ("x x x x"); a fraction stays <= 1
        out[f"top_{n}gram_char_frac"] = np.minimum(_ratio(_top_ngram_chars(word_codes, words, cum, n), total), 1.0)
    for n in DUP_NGRAMS:
        out[f"dup_{n}gram_char_frac"] = _ratio(_dup_ngram_chars(word_codes, words, lengths, n), total)
    return out


def _ngram_counts(word_codes: np.ndarray, words: Segments, n: int) -> tuple[np.ndarray, np.ndarray]:
    hashes, starts = ngram_hashes(word_codes, words.doc, n)
    pair = keyed_by_doc(codes(pa.array(hashes)), words.doc[starts], words.n_docs)
    return occurrences(pair), starts


def _top_ngram_chars(word_codes: np.ndarray, words: Segments, cum: np.ndarray, n: int) -> np.ndarray:
    counts, starts = _ngram_counts(word_codes, words, n)
    out = np.zeros(words.n_docs)
    if len(starts) == 0:
        return out
    doc = words.doc[starts]
    doc_max = np.zeros(words.n_docs, dtype=np.int64)
    np.maximum.at(doc_max, doc, counts)
    top = (counts == doc_max[doc]) & (counts > 1)
    top_docs, first = np.unique(doc[top], return_index=True)  # the first n-gram with the top count
    s = starts[top][first]
    out[top_docs] = (cum[s + n] - cum[s]) * counts[top][first]
    return out


def _dup_ngram_chars(word_codes: np.ndarray, words: Segments, lengths: np.ndarray, n: int) -> np.ndarray:
    counts, starts = _ngram_counts(word_codes, words, n)
    cover = np.zeros(len(lengths) + 1, dtype=np.int64)
    dup_starts = starts[counts > 1]
    np.add.at(cover, dup_starts, 1)
    np.add.at(cover, dup_starts + n, -1)
    covered = np.cumsum(cover)[:-1] > 0
    return words.sum(np.where(covered, lengths, 0))
