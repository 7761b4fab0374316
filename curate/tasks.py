"""Worker-side tasks: read a partition, call the pure stage functions, write outputs atomically.

These are plain functions of picklable arguments; the engine runs them in Ray workers or in-process.
A row task streams its input in batches, so its memory is bounded by the batch, not the partition.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from curate import parts
from curate.ledger import Ledger
from curate.schema import (
    BYTES_IN,
    DOC_SCHEMA,
    DROP_DETAIL,
    DROP_REASON,
    DROPPED_SCHEMA,
    TEXT,
    TEXT_HEAD_CHARS,
)
from curate.stagespec import declarations, load
from curate.workpath import WorkPath


@dataclass(frozen=True)
class PartTask:
    """One partition's work in a row-wise stage; everything a worker needs."""

    stage: str
    name: str  # part-NNNNN: the output part's name, the same as the input partition's
    identity: str  # fingerprint of the input partition
    config_hash: str
    out_dir: str
    recipe: object
    input_part: str | None = None  # upstream part file (all stages but ingest)
    partition: object | None = None  # curate.sources.Partition (ingest)
    strict: bool = False
    options: dict = field(default_factory=dict)


def record_path(out_dir: parts.Where, name: str) -> WorkPath:
    return WorkPath(out_dir) / "_parts" / f"{name}.json"


def is_done(task: PartTask) -> bool:
    """A partition is done when its record exists and names the same input and configuration."""
    path = record_path(task.out_dir, task.name)
    if not path.is_file():
        return False
    rec = parts.read_json(path)
    return rec.get("identity") == task.identity and rec.get("config_hash") == task.config_hash


def run_part(task: PartTask) -> dict:
    """Runs one partition through its stage's decide function and writes kept, dropped and the record."""
    started = time.time()
    out = WorkPath(task.out_dir)
    kept_writer = parts.ParquetPartWriter(out / f"{task.name}.parquet")
    dropped_writer = parts.ParquetPartWriter(out / "dropped" / f"{task.name}.parquet", DROPPED_SCHEMA)
    ledger = Ledger(task.stage)
    extra: dict = {}
    try:
        for decided in decider(task.stage)(task, extra):
            nbytes = decided["bytes"] if "bytes" in decided.column_names else None
            ledger.count(decided, nbytes, decided[BYTES_IN] if BYTES_IN in decided.column_names else None)
            kept, dropped = split(decided, task.stage)
            kept_writer.write(kept)
            dropped_writer.write(dropped)
        outputs = {"kept": kept_writer.close(), "dropped": dropped_writer.close()}
    except BaseException:
        kept_writer.abort()
        dropped_writer.abort()
        raise
    record = {
        "name": task.name,
        "identity": task.identity,
        "config_hash": task.config_hash,
        "ledger": ledger.to_json(),
        "outputs": outputs,
        "extra": extra,
        "seconds": round(time.time() - started, 3),
    }
    parts.write_json(record_path(out, task.name), record)
    return record


def split(decided: pa.Table, stage: str) -> tuple[pa.Table, pa.Table]:
    """Kept rows (without the decision columns) and dropped rows in the dropped-file schema."""
    is_dropped = pc.is_valid(decided[DROP_REASON])
    kept = decided.filter(pc.invert(is_dropped)).drop_columns(
        [c for c in (DROP_REASON, DROP_DETAIL, "bytes", BYTES_IN) if c in decided.column_names])
    if stage == "ingest":
        kept = kept.select(DOC_SCHEMA.names).cast(DOC_SCHEMA)
    dropped = decided.filter(is_dropped)
    nbytes = dropped["bytes"] if "bytes" in dropped.column_names else pc.cast(pc.binary_length(dropped[TEXT]), pa.int64())
    dropped_out = pa.table(
        {
            "id": dropped["id"],
            "source": dropped["source"],
            "stage": pa.repeat(stage, dropped.num_rows) if dropped.num_rows else pa.array([], pa.string()),
            DROP_REASON: dropped[DROP_REASON],
            DROP_DETAIL: dropped[DROP_DETAIL],
            "bytes": pc.fill_null(nbytes, 0),
            "text_head": pc.utf8_slice_codeunits(dropped[TEXT], 0, TEXT_HEAD_CHARS),
        },
        schema=DROPPED_SCHEMA,
    )
    return kept, dropped_out


def by_source(batch: pa.Table, decide: Callable[[pa.Table, str | None], pa.Table]) -> pa.Table:
    """`decide(rows, source)` on each source's rows of the batch (row stages read their settings per source),
    the decided rows put back in the batch's order. A part holds one source's documents, so this is
    normally one call on the whole batch; columns one source's settings add and another's do not
    (`comment_lang`) are null for the other's rows."""
    import numpy as np

    sources = batch["source"].combine_chunks()
    names = pc.unique(sources).to_pylist()
    if len(names) <= 1:
        return decide(batch, names[0] if names else None)  # an empty batch: the top-level settings
    codes = pc.index_in(sources, value_set=pa.array(names)).to_numpy(zero_copy_only=False)
    rows = [np.flatnonzero(codes == k) for k in range(len(names))]
    decided = [decide(batch.take(pa.array(r)), name) for r, name in zip(rows, names)]
    back = pa.array(np.argsort(np.concatenate(rows), kind="stable"))
    return pa.concat_tables(decided, promote_options="default").take(back)


# ---------------------------------------------------------------------------------------------- deciders
_RESOURCES: dict = {}


def cached(key, factory: Callable):
    """A per-process resource (a fastText model, a tokenizer), built once per worker and reused by every
    partition that worker runs; Ray keeps worker processes alive between tasks."""
    if key not in _RESOURCES:
        _RESOURCES[key] = factory()
    return _RESOURCES[key]


#: stage key -> "module:function" of its decider, a generator `(task, extra) -> decided tables` (same rows
#: as the input batch, same order, plus `drop_reason`/`drop_detail`); `extra` collects per-part counters.
#: Read from the stages' declarations (curate/stagespec.py).
DECIDERS: dict[str, str] = {d.key: d.decide for d in declarations() if d.decide}


def decider(stage: str) -> Callable[[PartTask, dict], Iterator[pa.Table]]:
    return load(DECIDERS[stage])


