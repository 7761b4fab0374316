"""Stage `language`: natural-language ID for text, programming-language selection for code.

Input: the document schema. Output: the same rows and order; text documents get `lang` = the fastText
lid.176 label (e.g. `en`) and `lang_score` = its probability; code documents keep their `lang` (The Stack's
`lang` column or the extension map's name) and get a null `lang_score`. Natural-language ID is never applied
to code (lid.176 rejects most code as "not English").

Text preparation (`prepare_texts`): the first `max_chars` characters (default 10,000: fastText averages word
vectors, so the label of a long document is settled long before its end, and the cost stays bounded), with
line breaks and other characters fastText treats as line ends turned into spaces (its predict is one line per
call), and lone surrogates replaced by U+FFFD (they cannot be encoded to the UTF-8 fastText reads).

Decisions (`decide`), reason codes:
    language.not_kept                text: the label is not in `keep`; code: the language is not in `code_languages`
    language.low_score               text: the label is kept but its score < `min_score` (RefinedWeb: 0.65)
    language.unknown_code_language   code: no language (unknown extension, empty `lang`)
    language.comment_not_kept        code, only with `code_comments`: its comments and docstrings (at least `min_chars`)
                                     are confidently (>= `min_score`) in a language outside `code_comments.keep`
`drop_detail` is `label=<label> score=<score>` (text) or `lang=<lang>` (code).
References: fastText lid.176 (Joulin et al. 2016, "Bag of Tricks"); RefinedWeb (Penedo et al. 2023) Sec. 3.1
for the 0.65 bound; Lemur (Xu et al. 2023) for the code/text language choices.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.rules import markup
from curate.schema import DROP_DETAIL, DROP_REASON, KIND, LANG, TEXT
from curate.stagespec import Stage

STAGE = Stage(key="language", order=40, kind="row", per_source=True,
              summary="code: programming languages kept; text: fastText lid.176 label and score",
              decide="curate.workers.language:decide", salt="curate.workers.language:models_salt",
              check="curate.workers.language:check")

LABEL_PREFIX = "__label__"
# fastText reads '\n' as the end of a line; '\r', '\v', '\f' and NUL are also its word/line separators.
_LINE_BREAKS = r"[\n\r\v\f\x00\x{85}\x{2028}\x{2029}]+"  # RE2 syntax
_SURROGATE = re.compile(r"[\ud800-\udfff]")
MASK_WINDOW = 4  # masking reads 4 x max_chars characters, so max_chars of prose remain after code is blanked


def prepare_texts(texts: pa.Array | list[str], max_chars: int, mask_markup: bool = False) -> list[str]:
    """The strings fastText is given for `texts`: first `max_chars` characters on one line; with
    `mask_markup`, of the prose (`curate.rules.markup.mask` on a window of `MASK_WINDOW` x max_chars)."""
    if not isinstance(texts, (pa.Array, pa.ChunkedArray)):
        texts = pa.array([_SURROGATE.sub("\ufffd", t) for t in texts], pa.string())
    if mask_markup:
        texts = markup.mask(pc.utf8_slice_codeunits(texts, 0, MASK_WINDOW * max_chars))
    head = pc.utf8_slice_codeunits(texts, 0, max_chars)
    return pc.replace_substring_regex(head, _LINE_BREAKS, " ").to_pylist()


def strip_labels(labels: list[list[str]]) -> np.ndarray:
    """`[['__label__en'], []]` -> `['en', '']` (an empty prediction becomes the empty label)."""
    return np.array([lab[0][len(LABEL_PREFIX):] if lab else "" for lab in labels], dtype=object)


def text_reasons(labels: np.ndarray, scores: np.ndarray, keep: list[str], min_score: float) -> np.ndarray:
    """Reason code (or None) per text document given its top label and score."""
    kept = np.isin(labels.astype(str), np.array(keep, dtype=str))
    reasons = np.full(len(labels), None, dtype=object)
    reasons[~kept] = "language.not_kept"
    reasons[kept & (scores < min_score)] = "language.low_score"  # NaN (not identified) is never low
    return reasons


def trusted_labels(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """With `identify: false`: the text rows' own `lang` as their label ("" when null) and NaN scores."""
    langs = pc.fill_null(table[LANG].filter(pc.equal(table[KIND], "text")), "").to_pylist()
    return np.array(langs, dtype=object), np.full(len(langs), np.nan)


def code_reasons(langs: list[str | None], allowed: set[str]) -> np.ndarray:
    """Reason code (or None) per code document given its language; `allowed` is lowercased."""
    reasons = np.full(len(langs), None, dtype=object)
    for i, lang in enumerate(langs):  # one dict lookup per document, not per token
        if not lang or not lang.strip():
            reasons[i] = "language.unknown_code_language"
        elif lang.lower() not in allowed:
            reasons[i] = "language.not_kept"
    return reasons


def decide(table: pa.Table, labels: np.ndarray, scores: np.ndarray, keep: list[str], min_score: float,
           code_languages: set[str]) -> pa.Table:
    """The decided table: `labels`/`scores` are the model's answers for the text rows, in row order."""
    n = table.num_rows
    is_text = pc.equal(table[KIND], "text").to_numpy(zero_copy_only=False)
    langs = np.array(table[LANG].to_pylist(), dtype=object)
    lang_score = np.full(n, np.nan)
    reasons = np.full(n, None, dtype=object)
    details = np.full(n, None, dtype=object)
    text_idx = np.nonzero(is_text)[0]
    code_idx = np.nonzero(~is_text)[0]
    langs[text_idx] = np.where(labels == "", None, labels)
    lang_score[text_idx] = scores
    reasons[text_idx] = text_reasons(labels, scores, keep, min_score)
    reasons[code_idx] = code_reasons(list(langs[code_idx]), code_languages)
    for i in np.nonzero(reasons != None)[0]:  # noqa: E711 (numpy elementwise); dropped rows only
        details[i] = (f"label={langs[i]} score={lang_score[i]:.4f}" if is_text[i] and not np.isnan(lang_score[i])
                      else f"label={langs[i]} (identify: false)" if is_text[i] else f"lang={langs[i]}")
    out = table.set_column(table.schema.get_field_index(LANG), LANG, pa.array(list(langs), pa.string()))
    return (out.append_column("lang_score", pa.array(lang_score, pa.float32(), mask=~is_text | np.isnan(lang_score)))
               .append_column(DROP_REASON, pa.array(list(reasons), pa.string()))
               .append_column(DROP_DETAIL, pa.array(list(details), pa.string())))


def comment_candidates(table: pa.Table, min_chars: int, max_chars: int) -> tuple[np.ndarray, list[str]]:
    """(rows, prepared comment texts) of the code documents that are still kept and have at least
    `min_chars` characters of comments (`curate.rules.code_metrics.comment_text`)."""
    from curate.rules.code_metrics import comment_text

    is_code = pc.equal(table[KIND], "code").to_numpy(zero_copy_only=False)
    kept = pc.is_null(table[DROP_REASON]).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(is_code & kept)
    if rows.size == 0:
        return rows, []
    picked = table.take(pa.array(rows))
    comments = comment_text(picked[TEXT].combine_chunks(), picked[LANG].combine_chunks())
    chars = pc.utf8_length(pc.utf8_trim_whitespace(comments)).to_numpy(zero_copy_only=False)
    enough = chars >= min_chars
    return rows[enough], prepare_texts(comments.filter(pa.array(enough)), max_chars)


def decide_comments(table: pa.Table, rows: np.ndarray, texts: list[str], labels: np.ndarray,
                    scores: np.ndarray, keep: list[str], min_score: float) -> pa.Table:
    """Adds `comment_lang` / `comment_lang_score` (null where not judged) and drops the judged code rows
    whose comments are confidently in a language outside `keep`; other rows' decisions are untouched."""
    n = table.num_rows
    judged = np.zeros(n, bool)
    judged[rows] = True
    comment_lang = np.full(n, None, dtype=object)
    comment_lang[rows] = np.where(labels == "", None, labels)
    comment_score = np.full(n, np.nan)
    comment_score[rows] = scores
    dropping = ~np.isin(labels.astype(str), np.array(keep, dtype=str)) & (scores >= min_score)
    drop = np.zeros(n, bool)
    drop[rows[dropping]] = True
    details = np.full(n, None, dtype=object)  # written for the dropped rows only
    details[rows[dropping]] = [f"comment label={lab} score={sc:.4f} chars={len(t)}"
                               for lab, sc, t in zip(labels[dropping], scores[dropping], np.array(texts, object)[dropping])]
    mask = pa.array(drop)
    reason = pc.if_else(mask, "language.comment_not_kept", table[DROP_REASON])
    detail = pc.if_else(mask, pa.array(list(details), pa.string()), table[DROP_DETAIL])
    out = table.set_column(table.schema.get_field_index(DROP_REASON), DROP_REASON, reason)
    out = out.set_column(out.schema.get_field_index(DROP_DETAIL), DROP_DETAIL, detail)
    return (out.append_column("comment_lang", pa.array(list(comment_lang), pa.string()))
               .append_column("comment_lang_score", pa.array(comment_score, pa.float32(), mask=~judged)))


def text_column(table: pa.Table) -> pa.Array:
    """The text of the rows that get natural-language ID."""
    return table[TEXT].filter(pc.equal(table[KIND], "text"))
