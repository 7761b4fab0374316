"""Test-corpus writers and a one-call pipeline runner. Every corpus is generated, small and exact."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curate import pipeline
from curate.recipe import parse_recipe


def write_jsonl(path: Path, records: list, compression: str | None = None) -> Path:
    """Records may be dicts (dumped as JSON) or raw bytes lines (written as they are)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in records)
    if compression == "gzip":
        payload = gzip.compress(payload, mtime=0)
    elif compression == "zstd":
        import zstandard

        payload = zstandard.ZstdCompressor().compress(payload)
    path.write_bytes(payload)
    return path


def write_parquet(path: Path, records: list[dict], row_group_size: int = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(records), path, row_group_size=row_group_size)
    return path


def write_tree(root: Path, files: dict[str, bytes | str]) -> Path:
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def recipe(sources: list[dict], name: str = "t", **sections):
    return parse_recipe({"name": name, "sources": sources, **sections})


def run(recipe_obj, workdir: Path, engine, stages: list[str] | None = None, **kw):
    ctx = pipeline.Context(recipe_obj, workdir, engine, **kw)  # a path or a bucket URI
    return pipeline.run(ctx, pipeline.select_stages(stages))


def read_parts(directory: Path) -> pa.Table:
    files = sorted(Path(directory).glob("part-*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]) if files else pa.table({})


def file_bytes(directory: Path) -> dict[str, bytes]:
    """Every part file (kept and dropped) of a stage folder, by relative name, for byte comparisons."""
    d = Path(directory)
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("part-*.parquet"))}
