"""The vectorised text signals equal a plain per-document Python reference written from the definitions
(whitespace tokens, clean words, n-gram counts per document), on generated batches where words, lines and
n-grams repeat often and documents share words, so a count leaking across documents would show."""

from __future__ import annotations

import string
from collections import Counter

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.rules.ngrams import mix64
from curate.rules.text_metrics import STOP_WORDS, text_signals

PUNCT = string.punctuation + "…«»“”‘’–—"
TOKENS = ["the", "of", "cat", "Dog", "dog.", "éte", "x1", "42", "#", "...", "…", "{a}", "-", "•", "(b)", "and,"]
SEPARATORS = [" ", " ", " ", "\n", "\n\n", "\t", "\u00a0", " \n "]


def reference(text: str) -> dict[str, float]:
    """The definitions, one document at a time."""
    tokens = text.split()
    words = [w for w in (t.strip(PUNCT).lower() for t in tokens) if w]
    lens = [len(w) for w in words]
    total = sum(lens)
    out = {"words": len(words), "stop_words": sum(w in STOP_WORDS for w in words),
           "hash_word_ratio": text.count("#") / len(words) if words else np.nan,
           "ellipsis_word_ratio": (text.count("...") + text.count("…")) / len(words) if words else np.nan,
           "alpha_word_frac": sum(any(c.isalpha() for c in t) for t in tokens) / len(tokens) if tokens else np.nan,
           "curly_braces": text.count("{"), "newline_word_ratio": text.count("\n") / len(words) if words else np.nan}
    for n in range(2, 11):
        grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
        counts = Counter(grams)
        if n <= 4:
            top = max(counts.values(), default=0)
            first = next((i for i, g in enumerate(grams) if counts[g] == top), None)
            chars = sum(lens[first:first + n]) * top if top > 1 else 0
            out[f"top_{n}gram_char_frac"] = min(chars / total, 1.0) if total else np.nan
        if n >= 5:
            covered = {j for i, g in enumerate(grams) if counts[g] > 1 for j in range(i, i + n)}
            out[f"dup_{n}gram_char_frac"] = sum(lens[j] for j in covered) / total if total else np.nan
    return out


def documents():
    pieces = st.lists(st.tuples(st.sampled_from(TOKENS), st.sampled_from(SEPARATORS)), max_size=80)
    return pieces.map(lambda ps: "".join(t + s for t, s in ps))


@settings(max_examples=60, deadline=None)
@given(st.lists(documents(), min_size=1, max_size=6))
def test_signals_equal_the_per_document_reference(texts):
    got = text_signals(pa.array(texts))
    for i, text in enumerate(texts):
        for name, want in reference(text).items():
            value = got[name][i]
            assert (np.isnan(want) and np.isnan(value)) or value == want, (name, text)


def test_ngrams_do_not_cross_documents_and_long_repeats_are_found():
    a = " ".join(f"w{i}" for i in range(20))
    got = text_signals(pa.array([a, a, a + " " + a]))  # the same words in three documents; only the last repeats
    assert list(got["dup_10gram_char_frac"]) == [0.0, 0.0, 1.0]
    assert list(got["top_2gram_char_frac"][:2]) == [0.0, 0.0]


def test_word_hash_spreads_consecutive_codes():
    h = mix64(np.arange(100_000))
    assert len(np.unique(h)) == 100_000  # a bijection
    assert 0.45 < np.mean((h >> np.uint64(63)).astype(float)) < 0.55  # top bit balanced


def test_whitespace_class_is_python_isspace_and_splitting_is_repeatable():
    """The token split equals str.split() for every character (Unicode whitespace included, nothing
    else), and gives the same answer on every call (Arrow's utf8_split_whitespace did not: a trailing space
    leaked into a token now and then)."""
    import pyarrow.compute as pc

    from curate.rules.segments import WHITESPACE, Tokens, split_lines

    probes = [chr(c) for c in range(0x3100) if c not in range(0xD800, 0xE000)]
    split = pc.split_pattern_regex(pa.array(["a" + c + "b" for c in probes]), WHITESPACE).to_pylist()
    assert [c for c, parts in zip(probes, split) if len(parts) == 2] == [c for c in probes if c.isspace()]
    texts = pa.array(["the of of of of\xa0dog. dog.\néte # x1\xa042\n\n… the and, the the of\xa0",
                      "the the the the the of of of dog. dog. dog. x1\nof the of the the "])
    want = [t.split() for t in texts.to_pylist()]
    for _ in range(300):
        lines = split_lines(texts)
        tokens = Tokens.of_lines(lines.filter(lines.lengths() > 0))
        got = [[] for _ in want]
        for code, doc in zip(tokens.code, tokens.doc):
            got[doc].append(tokens.vocab[code].as_py())
        assert got == want


_SPLIT_CHARS = st.sampled_from(list("ab. ") + ["\t", "\n", "\x0b", "\x0c", "\r", "\x1c", "\x1f", "\x85", "\xa0",
                                               "\u2028", "\u3000", "é"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(_SPLIT_CHARS, max_size=30), max_size=20))
def test_split_whitespace_is_str_split_on_every_path(lines):
    """Whatever mix of lines (plain ASCII take Arrow's ASCII split; ASCII with \\x1c-\\x1f, which Python
    splits on and Arrow's ASCII split does not, and non-ASCII take the regex), each line's non-empty pieces
    are exactly `str.split()`, in line order."""
    from curate.rules.segments import split_whitespace

    got = [[p for p in parts if p] for parts in split_whitespace(pa.array(lines, pa.string())).to_pylist()]
    assert got == [line.split() for line in lines]


def test_ascii_split_is_repeatable_with_trailing_spaces():
    """Arrow's Unicode split once kept a trailing space now and then; the ASCII one it now uses for plain
    lines is checked the same way: 300 calls, one answer, equal to str.split()."""
    from curate.rules.segments import split_whitespace

    lines = pa.array([f"the of {'dog. ' * (i % 5)}x{i} " + " " * (i % 3) for i in range(500)])
    want = [line.split() for line in lines.to_pylist()]
    for _ in range(300):
        assert [[p for p in parts if p] for parts in split_whitespace(lines).to_pylist()] == want
