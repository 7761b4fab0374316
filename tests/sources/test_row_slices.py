"""A parquet row group or Arrow IPC record batch larger than `ingest.partition_bytes` is read by one task but
written as several parts (equal row slices of it, `Partition.row_slice`): the same documents, ids, order
and drops as one part; repeated `id_field` values numbered as in one part; each slice read alone gives what
the shared stream gives; a killed sliced ingest resumes byte-identical; a well-partitioned file keeps its
partitions (and so the identities of its parts in an existing work directory)."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from curate.sources import open_stream, plan_ingest, read_partition
from curate.workers.ingest import stream_groups
from tests.helpers import read_parts, recipe, run
from tests.sources.test_jsonl_ranges import kill_split_ingest_then_resume


def _table(n: int, seed: int = 0) -> pa.Table:
    """Rows of very different lengths; some without text (ingest.missing_text), some empty (ingest.empty),
    an `id_field` that is missing in some rows (default ids `<file>#<row>`) and repeats in others."""
    rng = random.Random(seed)
    texts = [None if i % 13 == 4 else "" if i % 29 == 3 else f"row {i} " + "w" * rng.choice([0, 5, 300, 2000])
             for i in range(n)]
    return pa.table({"text": texts, "key": [None if i % 7 == 0 else f"k{i % 500}" for i in range(n)]})


def _write(path, table: pa.Table, fmt: str):
    """One row group / one record batch holding the whole table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        pq.write_table(table, path, row_group_size=table.num_rows)
        assert pq.ParquetFile(path).metadata.num_row_groups == 1
    else:
        with ipc.new_file(str(path), table.schema) as writer:
            writer.write_batch(table.combine_chunks().to_batches()[0])
        assert ipc.open_file(str(path)).num_record_batches == 1
    return path


def _recipe(path, fmt: str, partition_bytes: int, **source):
    return recipe([{"name": "s", "kind": "text", "format": fmt, "paths": [str(path)], **source}],
                  ingest={"partition_bytes": partition_bytes})


@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
@pytest.mark.parametrize("id_field", [None, "key"])
def test_one_big_unit_is_several_parts_with_the_documents_ids_order_and_drops_of_one(tmp_path, local_engine, fmt, id_field):
    """Known answer: the same file ingested as one part. The unit holds ~1.6 MB of text: with partition_bytes
    64 KiB it becomes > 20 parts of equal row counts, each holding about 64 KiB of input (rows differ in
    size: the slices are equal in rows, not bytes) and none more than 1.5 x that."""
    path = _write(tmp_path / "data" / f"big.{fmt}", _table(3000), fmt)
    extra = {"id_field": id_field} if id_field else {}
    (one,) = run(_recipe(path, fmt, 1 << 30, **extra), tmp_path / "one", local_engine, ["ingest"])
    (split,) = run(_recipe(path, fmt, 65_536, **extra), tmp_path / "split", local_engine, ["ingest"])
    assert one.manifest["partitions"]["total"] == 1 and split.manifest["partitions"]["total"] > 20
    whole, parts = read_parts(tmp_path / "one" / "ingest"), read_parts(tmp_path / "split" / "ingest")
    assert parts.equals(whole) and whole.num_rows > 2500
    ids = whole["id"].to_pylist()
    assert len(set(ids)) == len(ids) and (f"s/big.{fmt}#1" in ids) == (id_field is None)
    if id_field:
        assert "s/k1#2" in ids and f"s/big.{fmt}#7" in ids  # repeats numbered in file order; row 7 has no key
    dropped = read_parts(tmp_path / "split" / "ingest" / "dropped").sort_by("id")
    assert dropped.equals(read_parts(tmp_path / "one" / "ingest" / "dropped").sort_by("id"))
    assert set(dropped["drop_reason"].to_pylist()) == {"ingest.missing_text", "ingest.empty"}
    for rec in (tmp_path / "split" / "ingest" / "_parts").glob("*.json"):
        assert json.loads(rec.read_text())["ledger"].get("s", {}).get("bytes_in", 0) <= 1.5 * 65_536


@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
def test_each_slice_read_alone_gives_what_the_shared_stream_gives(tmp_path, fmt):
    """Property over slice counts: slices read alone (skipping the rows before them) and read in order from
    one RowStream both give every row once, with its row number, in order."""
    path = _write(tmp_path / f"t.{fmt}", _table(500, seed=2), fmt)
    for partition_bytes in (10_000, 33_333, 100_000):
        r = _recipe(path, fmt, partition_bytes)
        plan = plan_ingest(r)
        assert len(plan) > 1 and all(p.row_slice for p in plan)
        alone = [i for p in plan for t in read_partition(p, r) for i in t["id"].to_pylist()]
        assert alone == [f"s/t.{fmt}#{i}" for i in range(500)]
        shared = []
        for group in stream_groups(plan):
            with open_stream(group, r) as stream:
                shared += [i for p in group for t in read_partition(p, r, stream=stream) for i in t["id"].to_pylist()]
        assert shared == alone


def test_units_below_partition_bytes_keep_their_partitions(tmp_path):
    """A parquet file of row groups smaller than partition_bytes is cut by runs of row groups, as before
    (no row slices, the same fingerprints: an existing work directory's parts are reused); a big row group
    among small ones is sliced alone, the small ones around it still run together."""
    small = tmp_path / "s.parquet"
    pq.write_table(_table(3000, seed=1), small, row_group_size=100)
    plan = plan_ingest(_recipe(small, "parquet", 200_000))
    assert len(plan) >= 8 and all(p.row_slice is None for p in plan)
    assert [p.row_groups for p in plan][:2] == [(0, plan[0].row_groups[1]), (plan[0].row_groups[1], plan[1].row_groups[1])]
    mixed = tmp_path / "m.parquet"
    with pq.ParquetWriter(mixed, _table(3).schema) as writer:
        for n in (20, 20, 3000, 20):
            writer.write_table(_table(n, seed=n))
    plan = plan_ingest(_recipe(mixed, "parquet", 200_000))
    assert plan[0].row_groups == (0, 2) and plan[0].row_slice is None and plan[-1].row_groups == (3, 4)
    sliced = [p for p in plan if p.row_slice]
    assert {p.row_groups for p in sliced} == {(2, 3)} and len(sliced) == sliced[0].row_slice[1] >= 8


def test_dry_run_counts_the_slices(tmp_path):
    """The slices come from the footer (row group sizes; the arrow file's size and batch count): the dry
    run's partition count is the run's."""
    from curate.dryrun import describe

    path = _write(tmp_path / "big.parquet", _table(3000), "parquet")
    r = _recipe(path, "parquet", 65_536)
    n = len(plan_ingest(r))
    assert n > 20 and f"inputs: {n} partitions" in describe(r, tmp_path / "w", ["ingest"], plan_ingest(r))


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
def test_kill_minus_9_during_a_sliced_ingest_resumes_byte_identical(tmp_path, fmt):
    path = _write(tmp_path / "data" / f"big.{fmt}", _table(600, seed=5), fmt)
    manifest, work = kill_split_ingest_then_resume(tmp_path, path, fmt)
    assert manifest["partitions"]["total"] > 40
    assert read_parts(work / "ingest").num_rows > 500


@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
def test_a_remote_big_unit_is_sliced_the_same(tmp_path, s3, monkeypatch, fmt):
    """The same file in a bucket (the loopback S3 server, through pyarrow's filesystem): the same slices,
    and their rows, read from one shared stream, are those of the local file."""
    client, bucket, endpoint = s3
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    path = _write(tmp_path / f"big.{fmt}", _table(800, seed=4), fmt)
    client.upload_file(str(path), bucket, f"in/big.{fmt}")

    def rows(where):
        r = _recipe(where, fmt, 40_000)
        plan, out = plan_ingest(r), []
        for group in stream_groups(plan):
            with open_stream(group, r) as stream:
                out += [t for p in group for t in read_partition(p, r, stream=stream)]
        return [p.row_slice for p in plan], pa.concat_tables(out)

    (local_slices, local), (remote_slices, remote) = rows(path), rows(f"s3://{bucket}/in/big.{fmt}")
    assert remote_slices == local_slices and len(local_slices) > 8
    assert remote.equals(local)
