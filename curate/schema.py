"""The document schema shared by every stage, column names, stage keys and their order (declared by the stages)."""

from __future__ import annotations

import pyarrow as pa

from curate.stagespec import stage_keys

ID, TEXT, KIND, SOURCE, LANG, PATH, META = "id", "text", "kind", "source", "lang", "path_or_url", "meta"
DROP_REASON, DROP_DETAIL = "drop_reason", "drop_detail"
BYTES_IN = "bytes_in"  # a rewriting stage's (redact's) bytes of each row before the rewrite: the ledger's bytes in
KINDS = ("code", "text")

#: Columns every stage output has, in this order; stages append their own columns after these.
DOC_SCHEMA = pa.schema(
    [
        pa.field(ID, pa.string(), nullable=False),
        pa.field(TEXT, pa.string(), nullable=False),
        pa.field(KIND, pa.string(), nullable=False),
        pa.field(SOURCE, pa.string(), nullable=False),
        pa.field(LANG, pa.string()),
        pa.field(PATH, pa.string()),
        pa.field(META, pa.string()),  # JSON object of the source columns named in `meta_fields`, or null
    ]
)

#: The schema of `WORKDIR/<stage>/dropped/part-*.parquet`.
DROPPED_SCHEMA = pa.schema(
    [
        pa.field(ID, pa.string(), nullable=False),
        pa.field(SOURCE, pa.string(), nullable=False),
        pa.field("stage", pa.string(), nullable=False),
        pa.field(DROP_REASON, pa.string(), nullable=False),
        pa.field(DROP_DETAIL, pa.string()),
        pa.field("bytes", pa.int64(), nullable=False),
        pa.field("text_head", pa.string()),  # the first TEXT_HEAD_CHARS characters, for reports and explain
    ]
)
TEXT_HEAD_CHARS = 300

#: The pipeline order: every declared stage's key (curate/stagespec.py reads each stage module's `STAGE`).
STAGES = stage_keys()


def stage_key(name: str) -> str:
    """`exact-dedup` and `exact_dedup` name the same stage; returns the canonical snake_case key."""
    return name.strip().replace("-", "_")


def text_bytes(table: pa.Table) -> pa.Array:
    """UTF-8 byte length of every document's text, as int64."""
    import pyarrow.compute as pc

    return pc.cast(pc.binary_length(table[TEXT]), pa.int64())
