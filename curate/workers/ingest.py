"""ingest's worker side: read a partition, normalise it, and make source ids unique across partitions.

Ids from a source's `id_field` can repeat (The Stack's `hexsha` repeats for identical files). Within a
partition the k-th repeat becomes `id#k`; across partitions, a pre-pass counts each partition's ids and a
grouped reduce gives every partition, for each of its ids, how many times earlier partitions of the same
source used it, so the numbering continues in input order exactly as if the source were one partition.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import time
from collections.abc import Iterator

import pyarrow as pa
import xxhash

from curate import parts
from curate.errors import SourceError, StrictError
from curate.sources.records import RAW_SCHEMA, RecordBuffer
from curate.stages import ingest
from curate.tasks import PartTask, record_path
from curate.workpath import WorkPath

ID_COUNT_SCHEMA = pa.schema([("bucket", pa.int32()), ("id", pa.string()), ("part", pa.int32()), ("count", pa.int64())])
OFFSET_SCHEMA = pa.schema([("part", pa.int32()), ("id", pa.string()), ("offset", pa.int64())])


def raw_tables(partition, recipe, lenient: bool = False, stream=None) -> Iterator[pa.Table]:
    """The partition's raw records. A file that cannot be read to the end (truncated, corrupt, vanished
    since planning) is an error naming it (exit 1); with `lenient`, the records read before the failure
    are kept and the unreadable rest of the file is one counted `ingest.unreadable` record."""
    from curate.sources import read_partition
    from curate.sources.files import relname_of_error

    try:
        yield from read_partition(partition, recipe, lenient=lenient, stream=stream)
    except (OSError, EOFError, ValueError, pa.ArrowException) as exc:
        if isinstance(exc, StrictError):
            raise
        files = ", ".join(f.uri for f in partition.files[:3])
        if not lenient:
            raise SourceError(f"source {partition.source}: cannot read {files}: {exc}", while_running=True) from None
        buf = RecordBuffer()
        rel = relname_of_error(partition.files)
        buf.add(f"{partition.source}/{rel}#unreadable", error="ingest.unreadable", detail=f"{rel}: {exc}")
        yield buf.take()


def decide(task: PartTask, extra: dict) -> Iterator[pa.Table]:
    recipe = task.recipe
    source = recipe.source(task.partition.source)
    deduper = None
    if getattr(source, "id_field", None):
        offsets = _offsets_for(task)
        deduper = ingest.IdDeduper(offsets)
    tables = raw_tables(task.partition, recipe, lenient=task.options.get("lenient", False), stream=task.options.get("stream"))
    for raw in itertools.chain(tables, [RAW_SCHEMA.empty_table()]):  # the empty table gives empty files their schema
        decided = ingest.normalize(raw, source.name, source.kind, recipe.settings("ingest", source.name).max_bytes, deduper)
        if task.strict:
            bad = ingest.first_strict_violation(decided)
            if bad is not None:
                raise StrictError(f"--strict: source {source.name}: {bad}")
        yield decided
    extra["renamed_ids"] = deduper.renamed if deduper else 0


def _offsets_for(task: PartTask) -> dict[str, int]:
    offsets_dir = task.options.get("offsets_dir")
    if not offsets_dir:
        return {}
    index = task.partition.index
    tables = [parts.read_groups(f, [index]) for f in WorkPath(offsets_dir).files("offsets-*.parquet")]
    return {} if not tables else dict(zip(*(pa.concat_tables(tables)[c].to_pylist() for c in ("id", "offset"))))


def count_ids_group(partitions: list, recipe, out_files: list[str]) -> list[int]:
    """count_ids of partitions read from one stream (the ranges of one compressed file, the row slices of one
    row group; else one partition)."""
    from curate.sources import open_stream

    with open_stream(partitions, recipe) as stream:
        return [count_ids(p, recipe, f, stream) for p, f in zip(partitions, out_files)]


def count_ids(partition, recipe, out_file: str, stream=None) -> int:
    """Pre-pass: how many times each id occurs in one partition, grouped by hash bucket."""
    from curate.sources import skip_in

    if WorkPath(out_file + ".json").is_file():
        skip_in(stream, partition)
        return parts.read_json(out_file + ".json")["rows"]
    ids = [t["id"] for t in raw_tables(partition, recipe, stream=stream)]
    ids = pa.chunked_array(ids, pa.string()) if ids else pa.chunked_array([], pa.string())
    counts = pa.table({"id": ids}).group_by("id").aggregate([("id", "count")]).rename_columns(["id", "count"])
    buckets = pa.array([xxhash.xxh64_intdigest(i.encode("utf-8", "surrogatepass")) & 0xFF for i in counts["id"].to_pylist()], pa.int32())
    table = pa.table({"bucket": buckets, "id": counts["id"], "part": pa.repeat(partition.index, counts.num_rows).cast(pa.int32())
                      if counts.num_rows else pa.array([], pa.int32()), "count": counts["count"]}, schema=ID_COUNT_SCHEMA)
    parts.write_grouped(out_file, table, "bucket")
    parts.write_json(out_file + ".json", {"rows": len(ids)})
    return len(ids)


def reduce_id_counts(count_files: list[str], buckets: list[int], out_file: str) -> int:
    """For ids used by several partitions: each later partition's offset (uses in earlier partitions)."""
    if WorkPath(out_file + ".json").is_file():
        return parts.read_json(out_file + ".json")["repeated"]
    counts = pa.concat_tables([parts.read_groups(f, buckets).cast(ID_COUNT_SCHEMA) for f in count_files])
    offsets = ingest.id_offsets(counts.select(["id", "part", "count"]))
    parts.write_grouped(out_file, offsets.cast(OFFSET_SCHEMA), "part")
    parts.write_json(out_file + ".json", {"repeated": offsets.num_rows})
    return offsets.num_rows


def run(ctx, upstream: str | None):
    """ingest's driver: plan the partitions of every source, number ids, read and normalise each partition."""
    from curate import pipeline
    from curate.sources import number_lines, plan_ingest, split_compressed

    started = time.time()
    plan = plan_ingest(ctx.recipe)
    config_hash = ctx.recipe.config_hash("ingest") + (":lenient" if ctx.lenient else "")
    input_fp = hashlib.sha256(json.dumps([p.fingerprint for p in plan]).encode()).hexdigest()
    if (skip := pipeline._up_to_date(ctx, "ingest", config_hash, input_fp)) is not None:
        return skip
    plan = split_compressed(plan, ctx.recipe, ctx.engine)  # a big compressed file: several parts, one reader
    plan = number_lines(plan, ctx.engine)  # big jsonl files are read in ranges: their line numbers first
    pipeline.prepare_stage_dir(ctx, "ingest", config_hash, input_fp)
    out = str(ctx.dir("ingest"))
    options = {**_ingest_id_offsets(ctx, plan, ctx.dir("ingest")), "lenient": ctx.lenient}
    tasks = [PartTask("ingest", p.name, p.fingerprint, config_hash, out, ctx.recipe, partition=p, strict=ctx.strict,
                      options=options) for p in plan]
    try:
        records, reused = _run_tasks(ctx, tasks)
    except StrictError:
        parts.reset_stage(ctx.dir("ingest"))  # --strict: no partial stage output
        raise
    extra = {"renamed_ids": sum(r["extra"].get("renamed_ids", 0) for r in records),
             "files": len({f.uri for p in plan for f in p.files})}  # a file read in ranges is one file
    manifest = pipeline.finish_stage(ctx, "ingest", config_hash=config_hash, input_info={"stage": None, "fingerprint": input_fp},
                            records=records, reused=reused, started=started, expected_in=None, extra=extra)
    return pipeline.StageResult("ingest", manifest, False)


def _run_tasks(ctx, tasks: list[PartTask]) -> tuple[list[dict], int]:
    """pipeline.run_part_tasks, with the ranges of one compressed file (the row slices of one row group) as
    one engine task (`run_group`)."""
    from curate.tasks import is_done

    todo = [t for t in tasks if not is_done(t)]
    reused = len(tasks) - len(todo)
    by_index = {t.partition.index: t for t in tasks}
    groups = [[by_index[p.index] for p in g] for g in stream_groups([t.partition for t in tasks])]
    ctx.engine.map(run_group, [g for g in groups if any(not is_done(t) for t in g)], desc="ingest")
    return [parts.read_json(record_path(t.out_dir, t.name)) for t in tasks], reused


def stream_groups(plan: list) -> list[list]:
    """The plan's partitions in runs read from one stream: the ranges of a compressed file together, the row
    slices of one parquet row group or arrow record batch together."""
    from curate.sources import same_stream

    groups: list[list] = []
    for p in plan:
        if groups and same_stream(groups[-1][-1], p):
            groups[-1].append(p)
        else:
            groups.append([p])
    return groups


def run_group(tasks: list[PartTask]) -> None:
    """Runs partitions in order from one stream (decompressed lines, or a row group's rows); a partition done
    by an earlier attempt is passed over (its records read, not parsed), so each part is still the unit of
    resume."""
    from curate.sources import open_stream, skip_in
    from curate.tasks import is_done, run_part

    with open_stream([t.partition for t in tasks], tasks[0].recipe) as stream:
        for i, task in enumerate(tasks):
            if is_done(task):
                skip_in(stream, task.partition)
                continue
            if i and (delay := float(os.environ.get("CURATE_TASK_DELAY", "0"))):
                time.sleep(delay)  # the crash tests' delay, per part here as the engine gives it per task
            run_part(dataclasses.replace(task, options={**task.options, "stream": stream}) if stream else task)


def _ingest_id_offsets(ctx, plan: list, d: WorkPath) -> dict:
    """Pre-pass for sources whose `id_field` values may repeat across their partitions: count ids per
    partition, then group by id hash to give each partition its numbering offsets."""
    from curate.pipeline import bucket_ranges

    per_source: dict[str, int] = {}
    for p in plan:
        per_source[p.source] = per_source.get(p.source, 0) + 1
    todo = [p for p in plan if getattr(ctx.recipe.source(p.source), "id_field", None) and per_source[p.source] > 1]
    if not todo:
        return {}
    counts = [str(d / "_work" / "ids" / f"{p.name}.parquet") for p in todo]
    where = dict(zip((p.index for p in todo), counts))
    groups = [g for g in stream_groups(plan) if g[0].index in where]
    rows = [n for ns in ctx.engine.map(count_ids_group, [(g, ctx.recipe, [where[p.index] for p in g]) for g in groups],
                                       desc="ingest: count ids") for n in ns]
    offsets_dir = d / "_work" / "id_offsets"
    ranges = bucket_ranges(sum(rows), ctx.engine.num_cpus, 256)
    ctx.engine.map(reduce_id_counts, [(counts, r, str(offsets_dir / f"offsets-{r[0]:03d}-{r[-1]:03d}.parquet"))
                                        for r in ranges], desc="ingest: number ids")
    return {"offsets_dir": str(offsets_dir)}





def check(recipe, workdir, selected, explicit, dry_run) -> None:
    """Missing files and fields are refused before any engine starts (exit 2)."""
    from curate.sources import plan_ingest

    plan_ingest(recipe)
