"""A compressed jsonl file larger than `ingest.partition_bytes` once decompressed is read by one task but
written as several parts (byte ranges of its decompressed stream): the same documents, ids and order as
one part; repeated `id_field` values numbered as in one part; a killed split ingest resumes byte-identical."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.engine import LocalEngine
from curate.sources import plan_ingest, read_partition, split_compressed
from tests.helpers import read_parts, recipe, run, write_jsonl
from tests.sources.test_jsonl_ranges import kill_split_ingest_then_resume, records


def _recipe(path, partition_bytes: int, **source):
    return recipe([{"name": "s", "kind": "text", "format": "jsonl", "paths": [str(path)], **source}],
                  ingest={"partition_bytes": partition_bytes})


@pytest.mark.parametrize("compression,suffix", [("gzip", ".jsonl.gz"), ("zstd", ".jsonl.zst")])
def test_split_output_has_the_documents_ids_and_order_of_one_part(tmp_path, local_engine, compression, suffix):
    """Known answer: the same file ingested as one part. Every part holds about partition_bytes of input
    (at most one record more), and there are ceil(decompressed size / partition_bytes) of them."""
    path = write_jsonl(tmp_path / f"big{suffix}", records(400, seed=3), compression)
    plain = write_jsonl(tmp_path / "plain" / "big.jsonl", records(400, seed=3))
    (one,) = run(_recipe(path, 1 << 30), tmp_path / "one", local_engine, ["ingest"])
    (split,) = run(_recipe(path, 4096), tmp_path / "split", local_engine, ["ingest"])
    whole, parts = read_parts(tmp_path / "one" / "ingest"), read_parts(tmp_path / "split" / "ingest")
    assert one.manifest["partitions"]["total"] == 1
    assert split.manifest["partitions"]["total"] == -(-plain.stat().st_size // 4096) > 50
    assert parts.equals(whole) and whole.num_rows > 300
    assert whole["id"].to_pylist()[:2] == [f"s/big{suffix}#1", f"s/big{suffix}#2"]
    dropped = read_parts(tmp_path / "split" / "ingest" / "dropped")
    assert dropped.sort_by("id").equals(read_parts(tmp_path / "one" / "ingest" / "dropped").sort_by("id"))
    for rec in (tmp_path / "split" / "ingest" / "_parts").glob("*.json"):
        assert json.loads(rec.read_text())["ledger"].get("s", {}).get("bytes_in", 0) <= 4096 + 3100


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 300), min_size=1, max_size=40), st.integers(1024, 4000))
def test_each_range_read_alone_gives_what_the_shared_stream_gives(tmp_path_factory, sizes, target):
    """Property: a range read alone (skipping the decompressed lines before it) and the ranges read in order
    from one stream both give every line of the file once, with its number."""
    path = write_jsonl(tmp_path_factory.mktemp("c") / "f.jsonl.gz", [{"text": "y" * s} for s in sizes], "gzip")
    r = _recipe(path, target)
    plan = split_compressed(plan_ingest(r), r, LocalEngine())
    alone = [i for p in plan for t in read_partition(p, r) for i in t["id"].to_pylist()]
    assert alone == [f"s/f.jsonl.gz#{i + 1}" for i in range(len(sizes))]
    from curate.sources.jsonl import LineStream

    with LineStream(str(path)) as stream:
        shared = [i for p in plan for t in read_partition(p, r, stream=stream) for i in t["id"].to_pylist()]
    assert shared == alone


def test_repeated_ids_are_numbered_as_in_one_part(tmp_path, local_engine):
    """An `id_field` whose values repeat across the ranges: the k-th use is `id#k` in file order."""
    rows = [{"text": f"doc {i} " + "z" * 300, "key": f"k{i % 7}"} for i in range(120)]
    path = write_jsonl(tmp_path / "ids.jsonl.zst", rows, "zstd")
    run(_recipe(path, 1 << 30, id_field="key"), tmp_path / "one", local_engine, ["ingest"])
    (split,) = run(_recipe(path, 2048, id_field="key"), tmp_path / "split", local_engine, ["ingest"])
    assert split.manifest["partitions"]["total"] > 10
    ids = read_parts(tmp_path / "split" / "ingest")["id"].to_pylist()
    assert ids == read_parts(tmp_path / "one" / "ingest")["id"].to_pylist() and len(set(ids)) == 120
    assert ids[:8] == [f"s/k{i}" for i in range(7)] + ["s/k0#2"]


def test_a_small_compressed_file_stays_one_partition_with_its_identity(tmp_path, local_engine):
    """Below partition_bytes once decompressed: one whole-file partition, as before (work dirs stay valid)."""
    path = write_jsonl(tmp_path / "s.jsonl.gz", [{"text": "a b c"}], "gzip")
    r = _recipe(path, 4096)
    assert split_compressed(plan_ingest(r), r, LocalEngine()) == plan_ingest(r)
    (result,) = run(r, tmp_path / "w", local_engine, ["ingest"])
    assert read_parts(tmp_path / "w" / "ingest")["id"].to_pylist() == ["s/s.jsonl.gz#1"]


@pytest.mark.slow
def test_kill_minus_9_during_a_split_compressed_ingest_resumes_byte_identical(tmp_path):
    path = write_jsonl(tmp_path / "data" / "big.jsonl.gz", records(300, seed=5), "gzip")
    manifest, work = kill_split_ingest_then_resume(tmp_path, path)
    assert manifest["partitions"]["total"] > 40
    assert read_parts(work / "ingest").num_rows > 250


def test_dry_run_says_which_compressed_files_are_measured_at_run_time(tmp_path):
    """The plan counts a compressed file as one partition (its decompressed size is unknown until read); the
    dry run says so, for the files that may hold more than partition_bytes and not for the small ones."""
    from curate.dryrun import describe

    big = write_jsonl(tmp_path / "big.jsonl.gz", records(400, seed=3), "gzip")
    small = write_jsonl(tmp_path / "s" / "small.jsonl.gz", records(2, seed=3), "gzip")
    for path, partition_bytes, said in ((big, 4096, True), (small, 1 << 30, False)):
        r = _recipe(path, partition_bytes)
        text = describe(r, tmp_path / "w", ["ingest"], plan_ingest(r))
        assert ("1 compressed jsonl file(s) counted as one partition each here" in text) is said, text
