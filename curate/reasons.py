"""Every drop-reason code, with its one-line meaning. Codes are `<stage>.<condition>`.

A stage may only emit codes listed here; tests check every emitted code against this registry, and
`curate explain` prints the meaning next to the code.
"""

REASONS: dict[str, str] = {
    # ingest
    "ingest.malformed_json": "the line is not a valid JSON object (detail: file and line)",
    "ingest.bad_utf8": "the bytes are not valid UTF-8 text",
    "ingest.binary": "the file is binary (contains NUL bytes)",
    "ingest.missing_text": "the record has no value for the source's text field",
    "ingest.wrong_type": "the text field holds a value that is not a string",
    "ingest.empty": "the text is empty or only whitespace",
    "ingest.too_large": "the text is larger than ingest.max_bytes",
    "ingest.unreadable": "the file could not be read to the end (truncated or corrupt; counted under --lenient)",
    # exact_dedup
    "exact_dedup.duplicate": "same content hash as an earlier document (detail: the survivor's id)",
    # near_dedup
    "near_dedup.duplicate": "a near duplicate (shingle Jaccard >= near_dedup.threshold, through a chain of "
                            "verified pairs) of a kept document (detail: the survivor's id, also the cluster id)",
    "near_dedup.indexed_duplicate": "a near duplicate of a kept document of the earlier run named by "
                                    "near_dedup.against (detail: that document's id, also the cluster id)",
    # language
    "language.not_kept": "text: the language label is not in language.keep; code: the language is not in language.code_languages",
    "language.low_score": "text: the language is kept but its score is below language.min_score (detail: label and score)",
    "language.comment_not_kept": "code (with language.code_comments): its comments are identified, with at "
                                 "least code_comments.min_score, as a language not in code_comments.keep "
                                 "(detail: label, score and comment characters)",
    "language.unknown_code_language": "code: the document has no programming language (unknown extension or empty lang)",
    # quality: one code per rule of curate/rules/quality_rules.csv (added below), plus the classifier's
    "quality.classifier_low_score": "the fastText quality classifier's P(high quality) is below quality.classifier.min_score",
    # decontaminate
    "decontaminate.benchmark_overlap": "the document shares at least decontaminate.min_matches word n-grams with a "
                                       "benchmark item, or contains a short item whole (detail: benchmark, item id "
                                       "and shared n-grams)",
    # pack
    "pack.not_selected": "the mixture plan took none of this document's tokens (its source was subsampled to meet the ratio or budget)",
    "pack.tail_dropped": "the plan placed this document only in the last partial sequence, which `pack.last: drop` dropped",
}


def check(code: str) -> str:
    """Returns `code` if it is registered; raises KeyError naming it otherwise (a bug in a stage)."""
    if code not in REASONS:
        raise KeyError(f"unregistered drop reason {code!r}; add it to curate/reasons.py")
    return code


def register(codes: dict[str, str]) -> None:
    """Stage modules register their codes at import time with their meanings."""
    for code, meaning in codes.items():
        if "." not in code or code != code.lower():
            raise ValueError(f"reason code {code!r} must be '<stage>.<condition>' in snake_case")
        REASONS.setdefault(code, meaning)


def _register_quality_rules() -> None:
    from curate.rules.table import reason_codes  # the rule table is data; each row is a reason code

    register(reason_codes())


_register_quality_rules()
