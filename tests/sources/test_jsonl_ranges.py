"""A big uncompressed jsonl file is read in byte ranges (one partition each): the same documents, ids
(`<file>#<line>`, 1-based) and order as reading it whole; a record straddling a boundary is read once; a
killed split ingest resumes byte-identical; a 1-record file and an empty file still work. A big Arrow IPC
file is read in runs of record batches, with the row numbers (default ids) of reading it whole."""

from __future__ import annotations

import json
import random
import signal

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.engine import LocalEngine
from curate.sources import number_lines, plan_ingest, read_partition
from tests.helpers import file_bytes, read_parts, recipe, run, write_jsonl
from tests.test_faults import curate, wait_for, write_recipe


def records(n: int, seed: int = 0) -> list:
    """Records of very different lengths, some blank lines and one malformed line among them."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 17 == 5:
            out.append(b"")  # a blank line: no record, but it has a line number
        elif i % 23 == 7:
            out.append(b"{not json")
        else:
            out.append({"text": f"doc {i} " + "x" * rng.choice([0, 3, 50, 700, 3000]), "n": i})
    return out


def read_all(path, partition_bytes: int, counted: bool = True) -> tuple[pa.Table, int]:
    r = recipe([{"name": "s", "kind": "text", "format": "jsonl", "paths": [str(path)]}],
               ingest={"partition_bytes": partition_bytes})
    plan = plan_ingest(r)
    if counted:
        plan = number_lines(plan, LocalEngine())
    tables = [t for p in plan for t in read_partition(p, r)]
    return pa.concat_tables(tables) if tables else None, len(plan)


@pytest.mark.parametrize("counted", [True, False])
def test_ranges_give_the_documents_ids_and_order_of_one_task(tmp_path, counted):
    """Known answer: the whole file read as one partition. With the line pre-pass (`number_lines`) and
    without it (the reader counts the lines before its range itself)."""
    path = write_jsonl(tmp_path / "big.jsonl", records(400))
    whole, n_whole = read_all(path, 1 << 30)
    split, n_split = read_all(path, 4096, counted)
    assert n_whole == 1 and n_split == -(-path.stat().st_size // 4096) > 50
    assert split.equals(whole)
    ids = whole["id"].to_pylist()
    assert ids[0] == "s/big.jsonl#1" and "s/big.jsonl#6" not in ids and len(ids) == len(set(ids))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 300), min_size=1, max_size=40), st.integers(1024, 4000))
def test_every_record_is_read_once_whatever_the_boundaries(tmp_path_factory, sizes, target):
    """Property: for records of any lengths and any range size (boundaries inside records, on a newline,
    just after one), the ranges together give exactly the lines of the file, each once, with its number."""
    path = write_jsonl(tmp_path_factory.mktemp("p") / "f.jsonl", [{"text": "y" * s, "i": i} for i, s in enumerate(sizes)])
    r = recipe([{"name": "s", "kind": "text", "format": "jsonl", "paths": [str(path)]}], ingest={"partition_bytes": target})
    got = [i for p in number_lines(plan_ingest(r), LocalEngine()) for t in read_partition(p, r) for i in t["id"].to_pylist()]
    assert got == [f"s/f.jsonl#{i + 1}" for i in range(len(sizes))]


def test_a_record_straddling_a_boundary_is_read_once(tmp_path):
    """Three records of 1500 bytes and partition_bytes 1024: 8 ranges of ~563 bytes (MIN_RANGES), most
    of which start inside a record and own nothing; each record is read once, by the range it starts in."""
    path = write_jsonl(tmp_path / "s.jsonl", [{"text": c * 1480} for c in "abc"])
    table, n = read_all(path, 1024)
    assert n == 8 and table["id"].to_pylist() == ["s/s.jsonl#1", "s/s.jsonl#2", "s/s.jsonl#3"]
    assert [t[0] for t in table["text"].to_pylist()] == ["a", "b", "c"]


@pytest.mark.parametrize("content", [[{"text": "z" * 5000}], []], ids=["one-record", "empty"])
def test_one_record_and_empty_files_through_ingest(tmp_path, local_engine, content):
    """A 1-record file larger than partition_bytes is several ranges (8: MIN_RANGES) of which one holds
    the record (the others write empty parts); an empty file is one empty partition."""
    path = write_jsonl(tmp_path / "one.jsonl", content)
    r = recipe([{"name": "s", "kind": "text", "format": "jsonl", "paths": [str(path)]}], ingest={"partition_bytes": 1024})
    (result,) = run(r, tmp_path / "w", local_engine, ["ingest"])
    kept = read_parts(tmp_path / "w" / "ingest")
    assert result.manifest["totals"]["docs_in"] == len(content) and result.manifest["extra"]["files"] == 1
    assert result.manifest["partitions"]["total"] == (8 if content else 1)
    assert (kept["id"].to_pylist() if kept.num_rows else []) == (["s/one.jsonl#1"] if content else [])


def kill_split_ingest_then_resume(tmp_path, path, fmt: str = "jsonl") -> tuple[dict, object]:
    """Ingests `path` (4096-byte partitions) once cleanly and once killed with -9 after 3 finished parts and
    rerun; checks the rerun's parts equal the clean run's byte for byte. Returns (the rerun's manifest, its
    work directory)."""
    recipe_path = write_recipe(tmp_path, [{"name": "s", "kind": "text", "format": fmt, "paths": [str(path)]}],
                               ingest={"partition_bytes": 4096})
    clean = curate("run", str(recipe_path), "--workdir", str(tmp_path / "clean"), "--engine", "local", "--stages", "ingest")
    assert clean.returncode == 0, clean.stderr
    work = tmp_path / "w"
    proc = curate("run", str(recipe_path), "--workdir", str(work), "--engine", "local", "--stages", "ingest",
                  env={"CURATE_TASK_DELAY": "0.3"}, wait=False)
    try:
        wait_for(lambda: len(list((work / "ingest" / "_parts").glob("*.json"))) >= 3 or proc.poll() is not None, 120)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (work / "ingest" / "_manifest.json").exists()
    rerun = curate("run", str(recipe_path), "--workdir", str(work), "--engine", "local", "--stages", "ingest")
    assert rerun.returncode == 0, rerun.stderr
    manifest = json.loads((work / "ingest" / "_manifest.json").read_text())
    assert manifest["partitions"]["reused"] >= 3
    assert file_bytes(work / "ingest") == file_bytes(tmp_path / "clean" / "ingest")
    assert not list(work.rglob(".tmp-*"))
    return manifest, work


@pytest.mark.slow
def test_kill_minus_9_during_a_split_ingest_resumes_byte_identical(tmp_path):
    manifest, _ = kill_split_ingest_then_resume(tmp_path, write_jsonl(tmp_path / "data" / "big.jsonl", records(300, seed=2)))
    assert manifest["partitions"]["total"] > 50


@pytest.mark.parametrize("stream", [False, True], ids=["ipc-file", "ipc-stream"])
def test_arrow_batch_runs_give_the_rows_of_one_task(tmp_path, stream):
    """40 record batches, ids missing in some rows (so default ids `<file>#<row>` show the row numbers):
    runs of batches equal the whole file; a stream-format file (no batch index) stays one partition."""
    import pyarrow.ipc as ipc

    rng = random.Random(4)
    table = pa.table({"text": [f"row {i} " + "w" * rng.randint(0, 400) for i in range(2000)],
                      "key": [None if i % 7 == 0 else f"k{i}" for i in range(2000)]})
    path = tmp_path / "t.arrow"
    with (ipc.new_stream if stream else ipc.new_file)(str(path), table.schema) as writer:
        for batch in table.to_batches(max_chunksize=50):
            writer.write_batch(batch)

    def read(partition_bytes):
        r = recipe([{"name": "s", "kind": "text", "format": "arrow", "paths": [str(path)], "id_field": "key"}],
                   ingest={"partition_bytes": partition_bytes})
        plan = plan_ingest(r)
        return pa.concat_tables([t for p in plan for t in read_partition(p, r)]), len(plan)

    (whole, one), (split, many) = read(1 << 30), read(16_384)
    assert one == 1 and many == (1 if stream else -(-path.stat().st_size // 16_384))
    assert split.equals(whole) and whole.num_rows == 2000 and "s/t.arrow#1995" in whole["id"].to_pylist()


def test_a_file_above_partition_bytes_is_at_least_eight_partitions():
    """Known answers: at most partition_bytes each, and at least MIN_RANGES (8) for a file above it, so the
    later stages balance a big file's parts over the CPUs (2 parts of a 100 MB file would not)."""
    from curate.sources import byte_ranges
    from curate.sources.files import range_count

    mib = 1 << 20
    assert [range_count(s, 64 * mib) for s in (0, 64 * mib, 64 * mib + 1, 100 * mib, 20_000 * mib)] == [1, 1, 8, 8, 313]
    ranges = byte_ranges(100 * mib, 64 * mib)
    assert len(ranges) == 8 and ranges[0][0] == 0 and ranges[-1][1] == 100 * mib
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:])) and max(e - s for s, e in ranges) <= 64 * mib
