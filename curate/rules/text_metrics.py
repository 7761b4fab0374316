"""Text quality signals (Gopher quality and repetition, C4, FineWeb), all from one line split of the batch,
one whitespace split of those lines (with a vocabulary of the distinct tokens) and one paragraph split.
Definitions follow DataTrove's filters of the same names, with the differences stated where they are made:

- words: whitespace tokens (Unicode whitespace, as `str.split()`); "clean" words are lowercased with edge
  punctuation trimmed, and tokens that were only punctuation are not words (DataTrove drops them too, after
  its own word tokeniser). Lowercasing is Arrow's `utf8_lower`, which differs from Python's `str.lower()`
  on 76 code points of this Python (3.11): Greek final sigma (Σ -> σ, never ς: "ΟΔΟΣ" and "οδος" are two
  words here, one in Python), 'İ' (-> 'i' without the combining dot) and letters newer than this Python's
  Unicode tables. Counts of '#', '...', '…' and '{' are summed over tokens, which equals counting them in
  the text, since none of them contains whitespace.
- n-gram character fractions count the characters of clean words (no separators) over all clean-word
  characters. `top_Ngram_char_frac` = chars of the most frequent N-gram (first seen on ties) x its count, 0
  when no N-gram repeats; `dup_Ngram_char_frac` = chars of the words covered by any N-gram that occurs
  more than once (every occurrence, as RedPajama-V2's `rps_doc_frac_chars_dupe_ngrams`); see `ngrams`.
- lines are split on '\\n'; "non-empty" lines have at least one character; a line's words for C4's
  three-word minimum are its whitespace tokens. Duplicate lines/paragraphs are the repeats after a first
  occurrence (DataTrove's find_duplicates); their character fractions are over all characters of the text.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.rules.ngrams import dup_ngram_chars, repeated_ngrams, top_ngram_chars
from curate.rules.segments import (
    Coded,
    Segments,
    Tokens,
    char_lengths,
    codes,
    keyed_by_doc,
    repeats,
    split_lines,
    split_regex,
)

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")  # Gopher App. A.1.1
END_PUNCTUATION = r"[.!?\"']\s*$"  # DataTrove's C4 / FineWeb terminal punctuation
POLICY = r"terms of use|privacy policy|cookie policy|uses cookies|use of cookies|use cookies"  # C4 / DataTrove
TOP_NGRAMS = (2, 3, 4)
DUP_NGRAMS = (5, 6, 7, 8, 9, 10)
SHORT_LINE_CHARS = 30  # FineWeb
STUFFING_MIN_WORDS = 20  # DM Mathematics items of 20+ words reach 0.22; shorter ones repeat a pair by chance
LONG_DOC_WORDS = 50  # Gopher's minimum document length: long enough to hold an English stop word
MENU_MIN_LINES = 5
# a bar of links ("Home | About | Contact", not a table row, which starts with '|'), breadcrumbs, footers
BOILERPLATE = (r"^[^|!{]\S[^|]*( [|»·•] [^|]+){2,}$|all rights reserved|^\s*(©|\(c\)|copyright ©)|powered by "
               r"|^\s*(follow us|you are here|share this|skip to content|back to top)")  # menu_line_frac is defined for documents of at least this many non-empty lines
# UTF-8 read as Windows-1252 or Latin-1 ("é" -> "Ã©", "’" -> "â€™"), and U+FFFD left by a lossy decoder
_CP1252_HIGH = r"\x{80}-\x{BF}€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ"
MOJIBAKE = f"[ÂÃ][{_CP1252_HIGH}]|â€[{_CP1252_HIGH}]|" + r"\x{FFFD}"


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with NaN where den is 0 (an undefined metric never fires a rule)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _count(texts: pa.Array, pattern: str, ignore_case: bool = False) -> np.ndarray:
    out = pc.count_substring(texts, pattern, ignore_case=ignore_case)
    return out.to_numpy(zero_copy_only=False).astype(np.float64)


def text_signals(texts: pa.Array) -> dict[str, np.ndarray]:
    """Every text signal of every document of `texts` (a string array), as float64 arrays."""
    texts = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    n = len(texts)
    chars = char_lengths(texts).astype(np.float64)
    lines = split_lines(texts)
    line_len = lines.lengths()
    nonempty = line_len > 0
    ne, ne_len = lines.filter(nonempty), line_len[nonempty]
    tokens = Tokens.of_lines(ne)
    words = tokens.words()
    out: dict[str, np.ndarray] = {}
    out.update(_word_signals(tokens, words))
    out.update(_line_signals(ne, ne_len, tokens, chars))
    out.update(_paragraph_signals(texts, chars))
    out.update(_ngram_signals(words))
    # on a short document one repeated pair is a large share: defined from STUFFING_MIN_WORDS words
    out["long_top_2gram_char_frac"] = np.where(out["words"] >= STUFFING_MIN_WORDS, out["top_2gram_char_frac"], np.nan)
    out["long_stop_words"] = np.where(out["words"] >= LONG_DOC_WORDS, out["stop_words"], np.nan)
    out["lorem_ipsum"] = _count(texts, "lorem ipsum", ignore_case=True)
    out["mojibake_frac"] = _ratio(_mojibake_sequences(texts), chars)
    out["curly_braces"] = tokens.sum(tokens.vocab_count("{"))
    out["newline_word_ratio"] = _ratio(np.maximum(lines.count() - 1, 0), out["words"])  # n lines = n '\n' + 1
    assert all(len(v) == n for v in out.values())
    return out


def _word_signals(tokens: Tokens, words: Coded) -> dict[str, np.ndarray]:
    n_words = words.count()
    is_stop = pc.is_in(words.vocab, pa.array(STOP_WORDS)).to_numpy(zero_copy_only=False)[words.code]
    ellipses = tokens.vocab_count("...") + tokens.vocab_count("…")
    return {
        "words": n_words,
        "mean_word_length": _ratio(words.sum(words.vocab_lengths()), n_words),
        "hash_word_ratio": _ratio(tokens.sum(tokens.vocab_count("#")), n_words),
        "ellipsis_word_ratio": _ratio(tokens.sum(ellipses), n_words),
        "alpha_word_frac": _ratio(tokens.count(tokens.vocab_matches(r"\pL")), tokens.count()),
        "stop_words": words.count(is_stop),
    }


def _line_signals(ne: Segments, ne_len: np.ndarray, tokens: Tokens, chars: np.ndarray) -> dict[str, np.ndarray]:
    n_lines = ne.count()
    dup = repeats(keyed_by_doc(codes(ne.values), ne.doc, ne.n_docs))
    punct_end = ne.matches(END_PUNCTUATION)
    # one pass finds policy and boilerplate lines together; the policy test then runs on those lines only
    menu = ne.matches(POLICY + "|" + BOILERPLATE, True)
    policy = menu.copy()
    policy[menu] = ne.filter(menu).matches(POLICY, True)
    # C4 keeps a line if it ends in terminal punctuation, has >= 3 words, and mentions neither javascript
    # nor a policy phrase; the document needs enough kept lines. The javascript test runs on the candidates only.
    c4_kept = punct_end & (np.bincount(tokens.line, minlength=len(ne_len)) >= 3)
    cand = ne.filter(c4_kept)
    c4_kept[c4_kept] = ~cand.matches("javascript", True) & ~policy[c4_kept]
    # navigation and boilerplate: a policy or boilerplate line (above), or a short line ending in a word (a menu item)
    short = ~menu & (ne_len <= SHORT_LINE_CHARS)
    menu[short] = ne.filter(short).matches(r"[\pL\pN]\s*$")
    return {
        "menu_line_frac": np.where(n_lines >= MENU_MIN_LINES, _ratio(ne.count(menu), n_lines), np.nan),
        "policy_line_char_frac": _ratio(ne.sum(np.where(policy, ne_len, 0)), chars),
        "bullet_line_frac": _ratio(ne.count(ne.matches(r"^\s*[•\-]")), n_lines),
        "ellipsis_line_frac": _ratio(ne.count(ne.matches(r"(\.\.\.|…)\s*$")), n_lines),
        "dup_line_frac": _ratio(ne.count(dup), n_lines),
        "dup_line_char_frac": _ratio(ne.sum(np.where(dup, ne_len, 0)), chars),
        "line_punct_frac": _ratio(ne.count(punct_end), n_lines),
        "short_line_frac": _ratio(ne.count(ne_len <= SHORT_LINE_CHARS), n_lines),
        "c4_kept_lines": ne.count(c4_kept),
    }


def _mojibake_sequences(texts: pa.Array) -> np.ndarray:
    """Mojibake sequences per document (counted, not replaced); only non-ASCII documents can have any."""
    out = np.zeros(len(texts))
    rows = ~pc.fill_null(pc.string_is_ascii(texts), True).to_numpy(zero_copy_only=False)
    if rows.any():
        out[rows] = pc.count_substring_regex(texts.filter(pa.array(rows)), MOJIBAKE).to_numpy(zero_copy_only=False)
    return out


def _paragraph_signals(texts: pa.Array, chars: np.ndarray) -> dict[str, np.ndarray]:
    paras = split_regex(pc.utf8_trim_whitespace(texts), r"\n{2,}")
    lengths = paras.lengths()
    paras, lengths = paras.filter(lengths > 0), lengths[lengths > 0]
    dup = repeats(keyed_by_doc(codes(paras.values), paras.doc, paras.n_docs))
    return {
        "dup_para_frac": _ratio(paras.count(dup), paras.count()),
        "dup_para_char_frac": _ratio(paras.sum(np.where(dup, lengths, 0)), chars),
    }


def _ngram_signals(words: Coded) -> dict[str, np.ndarray]:
    lengths = words.vocab_lengths()
    total = words.sum(lengths)
    cum = np.concatenate([[0], np.cumsum(lengths)])
    out = {}
    for n, starts, counts in repeated_ngrams(words.code, words.doc, max(DUP_NGRAMS)):
        if n in TOP_NGRAMS:
            top = top_ngram_chars(n, starts, counts, words.doc, cum, words.n_docs)
            # overlapping occurrences can count a character twice ("x x x x"); a fraction stays <= 1
            out[f"top_{n}gram_char_frac"] = np.minimum(_ratio(top, total), 1.0)
        if n in DUP_NGRAMS:
            dup = dup_ngram_chars(n, starts, counts, words.doc, lengths, words.n_docs)
            out[f"dup_{n}gram_char_frac"] = _ratio(dup, total)
    return out
