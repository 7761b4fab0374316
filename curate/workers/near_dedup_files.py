"""near_dedup's phase files: a phase task writes its output once (its `.json` record after the data), reads
groups of bucketed files (and earlier runs' index files, flagged), and writes tables grouped by bucket.
Shared by the phases in `curate.workers.near_dedup` and verification in `curate.workers.near_dedup_verify`."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate import parts
from curate.memory import peak_rss_mb, reset_peak_rss
from curate.stages import components as C
from curate.stages import near_dedup as N
from curate.workpath import WorkPath


def _once(out: str, fn: Callable[[], dict]) -> dict:
    """Runs fn (which writes `out`) unless `out.json`, written after the data, says it already ran."""
    if WorkPath(out + ".json").is_file():
        return parts.read_json(out + ".json")
    reset_peak_rss()  # a Ray worker runs many tasks: the figure is this task's own peak
    started = time.perf_counter()
    result = fn()
    result["rss_mb"], result["task_seconds"] = peak_rss_mb(task=True), round(time.perf_counter() - started, 3)
    parts.write_json(out + ".json", result)
    return result


def _read(files: list[str], buckets: list[int], indexed: Sequence[tuple[str, int]] = (),
          where: Callable[[pa.Table], pa.Table] | None = None) -> pa.Table | None:
    """The groups `buckets` of `files`, and of earlier runs' index files `indexed` ((path, level) pairs)
    with their node ids flagged (N.index_nodes). An index is as large as the earlier run, so its files are
    read one group (one bucket of one part) at a time and cut down by `where` at once: memory holds the
    rows kept, not the index's share of the range. Columns one side lacks (an index built with verify:
    signature) are null."""
    tables = [parts.read_groups(f, buckets) for f in files]
    for f, level in indexed:
        for group in parts.iter_groups(f, buckets):
            group = _flagged(group, level)
            tables.append(where(group) if where is not None else group)
    tables = [t.drop_columns(["bucket"]) for t in tables if t.num_rows]
    return pa.concat_tables(tables, promote_options="default") if tables else None


def _doc_in(docs: pa.Array) -> Callable[[pa.Table], pa.Table]:
    return lambda t: t.filter(pc.is_in(t["doc"], value_set=docs))


def _flagged(t: pa.Table, level: int) -> pa.Table:
    i = t.schema.get_field_index("doc")
    return t.set_column(i, "doc", pa.array(N.index_nodes(t["doc"].to_numpy(), level), pa.int64())) if t.num_rows else t


def _write(out: str, table: pa.Table, key_column: str | None = None, key: np.ndarray | None = None) -> None:
    bucket = C.node_bucket(table[key_column].to_numpy()) if key is None else key
    # random 64-bit hashes neither dictionary-encode nor compress: written plain, 3x faster, ~the same size
    parts.write_grouped(out, table.append_column("bucket", pa.array(bucket, pa.int32())), "bucket", parts.SCRATCH_PARQUET)
