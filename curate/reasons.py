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
