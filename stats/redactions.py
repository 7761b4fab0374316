"""Redaction, from the redact stage's manifest: values replaced per type and source, documents touched;
and the masking of report examples (dropped documents' first characters) so that no value the run
redacts reaches the report through an earlier stage's drops."""

from __future__ import annotations


def redactions(manifest: dict | None) -> dict | None:
    """{"per_type": [[type, source, values]], "documents": {source: n}, "bytes_rewritten": n}; None without
    the stage."""
    if manifest is None:
        return None
    extra = manifest.get("extra", {})
    rows = [[t, s, n] for t, per in sorted(extra.get("redactions", {}).items()) for s, n in sorted(per.items())]
    rewritten = sum(c.get("bytes_rewritten", 0) for c in manifest.get("ledger", {}).values())
    return {"per_type": rows, "documents": extra.get("documents_redacted", {}), "bytes_rewritten": rewritten}


def mask_examples(examples: dict, manifest: dict | None) -> dict:
    """The examples with each `text_head` redacted under its source's settings (placeholders), when the
    run has a redact stage."""
    if manifest is None:
        return examples
    from curate.stages.redact import redact_text

    config = manifest.get("config", {})
    for per_reason in examples.values():
        for e in per_reason.values():
            for x in e["examples"]:
                own = manifest.get("source_settings", {}).get(x["source"], {})
                types = set(own.get("types", config.get("types", [])))
                if x.get("text_head") and types:
                    allow = frozenset(own.get("allow", config.get("allow", [])))
                    x["text_head"] = redact_text(x["text_head"], types, "placeholder", allow, "report")[0]
    return examples
