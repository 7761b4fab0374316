"""Artifacts of the stages that are written elsewhere (near_dedup, tokenize, pack), made by hand in
their documented layout, so the report's generic sections run on known numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from curate.ledger import Ledger
from curate.schema import DROP_REASON

SEQ_LEN = 8
NEAR_EXTRA = {"bands": 16, "rows": 8, "audit": {"pairs": 12, "false_positive_rate": 0.25},
              "cluster_sizes": {"1": 28, "2": 2}}


def _manifest(stage: str, tables: list[pa.Table], seconds: float, extra: dict, config: dict) -> dict:
    ledger = Ledger(stage)
    for t in tables:
        ledger.count(t.append_column(DROP_REASON, pa.nulls(t.num_rows, pa.string())))
    return {"stage": stage, "recipe": {"name": "t", "hash": "f" * 64, "seed": 7}, "config": config, "extra": extra,
            "ledger": ledger.to_json(), "totals": ledger.total().to_json(), "versions": {"python": "3.11", "pyarrow": "x"},
            "engine": "local", "partitions": {"total": len(tables)}, "seconds": seconds,
            "started_at": "2024-01-01T00:00:00Z", "finished_at": "2024-01-01T00:00:02Z"}


def copy_stage(workdir: Path, upstream: str, stage: str, add=None, extra=None, config=None) -> list[pa.Table]:
    """`stage` keeps every document of `upstream`, with the columns `add(table)` returns appended."""
    out = []
    for part in sorted((workdir / upstream).glob("part-*.parquet")):
        t = pq.read_table(part)
        for name, col in (add(t) if add else {}).items():
            t = t.append_column(name, col)
        (workdir / stage).mkdir(parents=True, exist_ok=True)
        pq.write_table(t, workdir / stage / part.name)
        out.append(t)
    m = _manifest(stage, out, 2.0, extra or {}, config or {})
    (workdir / stage / "_manifest.json").write_text(json.dumps(m))
    return out


def later_columns(t: pa.Table) -> dict[str, pa.Array]:
    """n_tokens = chars // 4 + 1; scores and signals derived from the length, so tests can recompute them."""
    chars = pc.utf8_length(t["text"]).to_numpy(zero_copy_only=False)
    return {"n_tokens": pa.array(chars // 4 + 1, pa.int64()),
            "lang_score": pa.array([None if i % 5 == 0 else (c % 100) / 100 for i, c in enumerate(chars)], pa.float64()),
            "quality_score": pa.array([min(1.0, c / 1000) for c in chars], pa.float64()),
            "quality_signals": pa.StructArray.from_arrays(  # typed arrays: an empty part has the same fields
                [pa.array(chars < 40, pa.bool_()), pa.array([c % 3 == 0 for c in chars], pa.bool_()),
                 pa.array(chars.astype("float64"), pa.float64())], names=["too_short", "odd_length", "chars"])}


def write_shards(workdir: Path, manifest_overrides: dict | None = None) -> list[pa.Table]:
    """Two shards of 8-token sequences; the second sequence of shard 0 continues document c1."""
    rows = [
        [(["c1"], [8], [True], 8, 0, 0), (["c1", "t1"], [2, 5], [False, True], 2, 5, 1)],
        [(["c2", "c3"], [4, 4], [True, True], 8, 0, 0), (["c4"], [6], [True], 6, 0, 2),
         (["t2", "c5"], [3, 5], [True, True], 5, 3, 0)],
    ]
    d = workdir / "shards"
    d.mkdir(parents=True, exist_ok=True)
    tables, entries = [], []
    for i, seqs in enumerate(rows):
        t = pa.table({
            "input_ids": pa.FixedSizeListArray.from_arrays(pa.array([1] * SEQ_LEN * len(seqs), pa.uint16()), SEQ_LEN),
            "doc_ids": pa.array([s[0] for s in seqs], pa.list_(pa.string())),
            "doc_lengths": pa.array([s[1] for s in seqs], pa.list_(pa.int32())),
            "doc_starts": pa.array([s[2] for s in seqs], pa.list_(pa.bool_())),
            "n_code_tokens": pa.array([s[3] for s in seqs], pa.int32()),
            "n_text_tokens": pa.array([s[4] for s in seqs], pa.int32()),
            "n_pad_tokens": pa.array([s[5] for s in seqs], pa.int32()),
        })
        with ipc.new_stream(d / f"shard-{i:05d}.arrow", t.schema) as w:
            w.write_table(t, max_chunksize=2)
        tables.append(t)
        entries.append({"file": f"shard-{i:05d}.arrow", "sequences": t.num_rows})
    totals = {k: sum(pc.sum(t[f"n_{k}_tokens"]).as_py() for t in tables) for k in ("code", "text", "pad")}
    manifest = {"shards": entries, "seq_len": SEQ_LEN, "totals": {"sequences": 5, "code_tokens": totals["code"],
                "text_tokens": totals["text"], "pad_tokens": totals["pad"]},
                "plan": {"mixture": {"code": 10, "text": 1}, "epochs": {"web": 1.5}},
                "tokenizer": {"sha256": "ab" * 32, "vocab_size": 100, "eos_id": 0}}
    manifest.update(manifest_overrides or {})
    (d / "manifest.json").write_text(json.dumps(manifest))
    return tables


def full_run(workdir: Path) -> None:
    """near_dedup, tokenize and pack artifacts on top of a real ingest + exact_dedup run."""
    copy_stage(workdir, "exact_dedup", "near_dedup", extra=NEAR_EXTRA)
    copy_stage(workdir, "near_dedup", "tokenize", add=later_columns, config={"tokenizer": "assets/demo-tokenizer.json"})
    write_shards(workdir)
