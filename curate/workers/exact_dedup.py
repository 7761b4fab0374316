"""exact_dedup's worker side: hash parts, group hashes by bucket range, mark losers in each part."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from curate import parts
from curate.schema import TEXT
from curate.stages import exact_dedup
from curate.tasks import PartTask
from curate.workpath import WorkPath


def decide(task: PartTask, extra: dict) -> Iterator[pa.Table]:
    index = parts.part_index(task.name)
    losers = [parts.read_groups(f, [index]) for f in WorkPath(task.options["losers_dir"]).files("losers-*.parquet")]
    losers = pa.concat_tables(losers) if losers else exact_dedup.LOSER_SCHEMA.empty_table()
    first_row = 0
    for batch in parts.iter_part(task.input_part):
        yield exact_dedup.mark_losers(batch, first_row, losers)
        first_row += batch.num_rows


def hash_part(input_part: str, out_file: str, normalize: str) -> int:
    """exact_dedup phase 1: content hashes of one part, grouped by bucket. Returns the row count."""
    if WorkPath(out_file + ".json").is_file():  # the record is written after the data: both are complete
        return parts.read_json(out_file + ".json")["rows"]
    index = parts.part_index(input_part)
    tables, first_row = [], 0
    for batch in parts.iter_part(input_part, columns=["id", TEXT]):
        tables.append(exact_dedup.content_hashes(batch, index, first_row, normalize))
        first_row += batch.num_rows
    parts.write_grouped(out_file, pa.concat_tables(tables), "bucket")
    parts.write_json(out_file + ".json", {"rows": first_row})
    return first_row


def reduce_hashes(hash_files: list[str], buckets: list[int], out_file: str) -> int:
    """exact_dedup phase 2: losers among the documents of a range of buckets, grouped by part."""
    if WorkPath(out_file + ".json").is_file():
        return parts.read_json(out_file + ".json")["losers"]
    hashes = pa.concat_tables([parts.read_groups(f, buckets).cast(exact_dedup.HASH_SCHEMA) for f in hash_files])
    losers = exact_dedup.find_losers(hashes)
    parts.write_grouped(out_file, losers, "part")
    parts.write_json(out_file + ".json", {"losers": losers.num_rows})
    return losers.num_rows


def groups(ctx, up: dict, inputs: list[WorkPath], d: WorkPath) -> tuple[dict, dict]:
    """exact_dedup's global phases (its declared `prepare`): hash every part, then find the losers of each
    bucket range; the losers' files reach every part's `decide`."""
    from curate.pipeline import bucket_ranges
    from curate.stages.exact_dedup import BUCKETS

    hashes = [str(d / "_work" / "hashes" / f"{p.stem}.parquet") for p in inputs]
    normalize = ctx.recipe.exact_dedup.normalize
    rows = ctx.engine.map(hash_part, [(str(p), h, normalize) for p, h in zip(inputs, hashes)], desc="exact_dedup: hash")
    ranges = bucket_ranges(sum(rows), ctx.engine.num_cpus, BUCKETS)
    losers_dir = d / "_work" / "losers"
    reduce_args = [(hashes, r, str(losers_dir / f"losers-{r[0]:03d}-{r[-1]:03d}.parquet")) for r in ranges]
    n_losers = ctx.engine.map(reduce_hashes, reduce_args, desc="exact_dedup: group")
    return {"losers_dir": str(losers_dir)}, {"duplicates": sum(n_losers), "bucket_ranges": len(ranges), "normalize": normalize}
