"""The raw-record table that every reader yields, before ingest normalises it.

Readers never drop anything: a record they cannot decode is still a row, with `read_error` set to the
reason code and `read_detail` saying where (file and line). Ingest turns those into counted drops.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

RAW_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.string()),
        pa.field("lang", pa.string()),
        pa.field("path_or_url", pa.string()),
        pa.field("meta", pa.string()),
        pa.field("read_error", pa.string()),
        pa.field("read_detail", pa.string()),
        pa.field("raw_bytes", pa.int64(), nullable=False),
    ]
)


@dataclass
class RecordBuffer:
    """Collects raw records column-wise and flushes them as bounded-size Arrow tables."""

    flush_bytes: int = 32 * 1024 * 1024
    columns: dict[str, list] = field(default_factory=lambda: {f.name: [] for f in RAW_SCHEMA})
    pending_bytes: int = 0

    def add(self, id, text=None, lang=None, path=None, meta=None, error=None, detail=None, raw_bytes=0):
        c = self.columns
        c["id"].append(id)
        c["text"].append(text)
        c["lang"].append(lang)
        c["path_or_url"].append(path)
        c["meta"].append(meta)
        c["read_error"].append(error)
        c["read_detail"].append(detail)
        c["raw_bytes"].append(raw_bytes)
        self.pending_bytes += raw_bytes

    def full(self) -> bool:
        return self.pending_bytes >= self.flush_bytes

    def take(self) -> pa.Table:
        table = pa.table(self.columns, schema=RAW_SCHEMA)
        self.columns = {f.name: [] for f in RAW_SCHEMA}
        self.pending_bytes = 0
        return table

    def __len__(self) -> int:
        return len(self.columns["id"])
