"""Synthesized packed output: shards written by the pack stage's own `build_sequences`, with a manifest.

The documents form one stream cut into shards at sequence boundaries, as pack cuts it, so a document can
continue from one shard into the next. Every document ends with EOS (id 0), the last sequence is padded
with EOS. Returns the documents too, for round trips.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from curate.stages.pack import build_sequences

EOS = 0


@dataclass
class Packed:
    workdir: Path
    seq_len: int
    docs: list[tuple[str, np.ndarray]]  # in stream order: id, tokens (EOS last)
    tables: list[pa.Table]  # each shard's sequences

    @property
    def sequences(self) -> pa.Table:
        return pa.concat_tables(self.tables)


def write_packed(workdir: Path, sizes=(7, 5, 9, 4, 6), seq_len: int = 16, seed: int = 0, vocab: int = 300,
                 pad: int = 5, batch_rows: int = 3, lengths: list[int] | None = None) -> Packed:
    """Shards of `sizes` sequences (the last one with `pad` padding tokens), record batches of `batch_rows`;
    documents of random lengths up to 3 sequences, or of the given `lengths` first."""
    rng = np.random.default_rng(seed)
    dtype = np.uint16 if vocab <= 65536 else np.uint32
    total = sum(sizes) * seq_len - pad
    docs, n = [], 0
    while n < total:
        wanted = lengths[len(docs)] if lengths and len(docs) < len(lengths) else rng.integers(2, 3 * seq_len)
        length = int(min(wanted, total - n))
        tokens = rng.integers(1, vocab, size=length).astype(dtype)
        tokens[-1] = EOS
        docs.append((f"src/doc-{len(docs)}", tokens))
        n += length
    stream = np.concatenate([t for _, t in docs])
    doc_start = np.cumsum([0] + [len(t) for _, t in docs])
    shards_dir = workdir / "shards"
    shards_dir.mkdir(parents=True)
    records, tables, bound = [], [], 0
    for k, size in enumerate(sizes):
        lo, hi = bound, min(bound + size * seq_len, total)
        bound += size * seq_len
        first = int(np.searchsorted(doc_start, lo, side="right") - 1)
        last = int(np.searchsorted(doc_start, hi, side="left"))
        starts = np.maximum(doc_start[first:last], lo)
        ends = np.minimum(doc_start[first + 1:last + 1], hi)
        ids = pa.array([docs[d][0] for d in range(first, last)])
        table = build_sequences(stream[lo:hi], ends - starts, ids, starts == doc_start[first:last],
                                np.zeros(last - first, np.int8), seq_len, EOS)
        path = shards_dir / f"shard-{k:05d}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            for batch in table.to_batches(max_chunksize=batch_rows):
                writer.write_batch(batch)
        data = path.read_bytes()
        records.append({"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                        "sequences": table.num_rows, "code_tokens": int(hi - lo), "text_tokens": 0,
                        "pad_tokens": int(size * seq_len - (hi - lo))})
        tables.append(table)
    manifest = {"format": "arrow-ipc-stream", "seq_len": seq_len, "shards": records, "schema": tables[0].schema.names,
                "totals": {"sequences": sum(sizes), "code_tokens": int(total), "text_tokens": 0, "pad_tokens": pad,
                           "bytes": sum(r["bytes"] for r in records)},
                "tokenizer": {"dtype": np.dtype(dtype).name, "vocab_size": vocab, "eos_id": EOS, "bos_id": None,
                              "tokenizer": "tok.json", "sha256": "0" * 64},
                "recipe": {"name": "synthetic", "hash": "0" * 64, "seed": seed},
                "plan": {"mixture": {"code": 1, "text": 0}, "groups": []}}
    (shards_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return Packed(workdir, seq_len, docs, tables)
