"""Repeated word n-grams within each document of a batch, for Gopher's repetition signals (Rae et al. 2021,
Table A1), from one random 64-bit value per distinct word.

Hashes: the n-gram starting at word i has the polynomial hash h_n(i) = h_{n-1}(i) * P + v(word i+n-1), so the
hashes for n = 2..10 are built one from the other with one multiply-add each; a document's own random value is
added to the key, so equal n-grams of different documents are different keys. Two different n-grams (or
documents) share a key with probability ~k^2 / 2^64 for k keys.

Pruning: if an n-gram occurs twice in a document, so do the (n-1)-grams starting at its position and at the
next one. So only positions where both of those (n-1)-grams repeat can start a repeated n-gram; every other
position starts an n-gram that occurs once. Counting is done on these candidates only, which shrink quickly
with n on natural text (one hash factorisation per n over the candidates of the whole batch, no loop over
documents).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from curate.rules.segments import occurrences

_P = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier
_DOC_SALT = np.uint64(0xD6E8FEB86659FD93)


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (Steele et al. 2014): a bijection of uint64 that spreads consecutive codes
    over the whole 64-bit range. uint64 arithmetic wraps modulo 2^64, which is what a hash wants."""
    z = x.astype(np.uint64) + _P
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _counts(keys: np.ndarray) -> np.ndarray:
    """How often each key occurs. pandas' hash factorisation (a dependency, also of ray[data]) takes half the
    time of Arrow's dictionary_encode on these keys (a million keys, half of them distinct, per 8 MB of
    text); the counts are the same whoever numbers the keys."""
    import pandas as pd

    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    key_codes, _ = pd.factorize(keys, size_hint=len(keys))
    return occurrences(key_codes)


def repeated_ngrams(word_code: np.ndarray, doc: np.ndarray, max_n: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """For n = 2..max_n: (n, starts, counts): the start positions of every n-gram that may occur more than once
    in its document, and how often it occurs there. Positions not listed start an n-gram occurring once."""
    v = mix64(word_code)
    doc_key = mix64(doc.astype(np.uint64) ^ _DOC_SALT)
    pos = np.arange(len(v))
    h = v
    counts = _counts(h + doc_key)
    is_start = np.zeros(len(v) + 1, dtype=bool)  # is_start[i]: an (n-1)-gram repeating at i
    for n in range(2, max_n + 1):
        rep = np.nonzero(counts > 1)[0]
        starts = pos[rep]
        is_start[starts] = True
        ok = is_start[starts + 1]  # the (n-1)-gram at the next position repeats too
        is_start[starts] = False
        if n == 2:  # two words may straddle documents; longer n-grams join two (n-1)-grams that overlap
            ok[ok] = doc[starts[ok]] == doc[starts[ok] + 1]  # in a word, so lie in one document
        pos = starts[ok]
        h = h[rep[ok]] * _P + v[pos + n - 1]
        counts = _counts(h + doc_key[pos])
        yield n, pos, counts


def top_ngram_chars(n: int, starts: np.ndarray, counts: np.ndarray, doc: np.ndarray, cum: np.ndarray,
                    n_docs: int) -> np.ndarray:
    """Per document: characters of its most frequent n-gram (the first one seen on ties) x its count; 0 when
    no n-gram repeats. `cum` is the cumulative word length (cum[i] = characters of words before word i)."""
    out = np.zeros(n_docs)
    rep = counts > 1
    s_all, c_all = starts[rep], counts[rep]
    if len(s_all) == 0:
        return out
    d = doc[s_all]
    doc_max = np.zeros(n_docs, dtype=np.int64)
    np.maximum.at(doc_max, d, c_all)
    top = c_all == doc_max[d]
    top_docs, first = np.unique(d[top], return_index=True)  # d is sorted: the first top n-gram per document
    s = s_all[top][first]
    out[top_docs] = (cum[s + n] - cum[s]) * c_all[top][first]
    return out


def dup_ngram_chars(n: int, starts: np.ndarray, counts: np.ndarray, doc: np.ndarray, lengths: np.ndarray,
                    n_docs: int) -> np.ndarray:
    """Per document: characters of the words covered by any n-gram occurring more than once (every occurrence)."""
    dup = starts[counts > 1]
    w = len(lengths)
    depth = np.cumsum(np.bincount(dup, minlength=w + 1) - np.bincount(dup + n, minlength=w + 1))[:w]
    covered = depth > 0
    return np.bincount(doc[covered], weights=lengths[covered], minlength=n_docs)
