"""JSON lines output (`PREFIX.jsonl`), for inspection and for tools that take token ids or text.

One line per entry:
    unit sequence   {"index", "input_ids", "doc_ids", "doc_lengths", "doc_starts"}   (padding stripped)
    unit document   {"id", "n_tokens", "input_ids"}
With `--text`, `input_ids` is replaced by the decoded text: `"texts"` (one per piece of the sequence) or
`"text"` (the document).
"""

from __future__ import annotations

import json
from pathlib import Path

from curate.export.output import AppendedFile
from curate.export.text import Decoder
from curate.export.units import Entries


def entry_records(entries: Entries, decoder: Decoder | None) -> list[dict]:
    """The JSON objects of one shard's entries, in order."""
    tokens, offsets = entries.tokens, entries.offsets.tolist()
    if entries.rows is None:  # documents
        ids = entries.doc_ids.tolist()
        texts = decoder.documents(entries) if decoder else None
        return [{"id": ids[i], "n_tokens": offsets[i + 1] - offsets[i],
                 **({"text": texts[i]} if decoder else {"input_ids": tokens[offsets[i]:offsets[i + 1]].tolist()})}
                for i in range(len(entries))]
    rows = entries.rows
    piece = rows.offsets.tolist()
    doc_ids, lengths, starts = rows.doc_ids.tolist(), rows.doc_lengths.tolist(), rows.doc_starts.tolist()
    texts = decoder.pieces(entries) if decoder else None
    out = []
    for i, g in enumerate(entries.index.tolist()):
        a, b = piece[i], piece[i + 1]
        body = {"texts": texts[a:b]} if decoder else {"input_ids": tokens[offsets[i]:offsets[i + 1]].tolist()}
        out.append({"index": g, **body, "doc_ids": doc_ids[a:b], "doc_lengths": lengths[a:b], "doc_starts": starts[a:b]})
    return out


class JsonlWriter:
    def __init__(self, prefix: Path, decoder: Decoder | None):
        self.path = prefix.parent / f"{prefix.name}.jsonl"
        self.decoder = decoder
        self.out: AppendedFile | None = None

    def describe(self) -> dict:
        return {"files": [self.path.name], "text": self.decoder is not None}

    def start(self, positions: dict | None) -> None:
        self.out = AppendedFile(self.path, positions["jsonl"] if positions else None)

    def write(self, k: int, entries: Entries) -> dict:
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in entry_records(entries, self.decoder))
        self.out.write(lines.encode("utf-8"))
        return {"jsonl": self.out.sync()}

    def finish(self, n_shards: int, entries: int, tokens: int) -> list[dict]:
        return [self.out.close()]
