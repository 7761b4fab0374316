"""Readers: every format and compression round-trips a generated corpus; bad records become named drops."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from curate.errors import SourceError, StrictError
from tests.helpers import read_parts, recipe, run, write_jsonl, write_parquet, write_tree

TEXTS = [f"document number {i}\n\twith a tab, unicode é ✓ 漢字 and a line\r\n" for i in range(7)]


def kept_and_dropped(workdir, stage="ingest"):
    kept = read_parts(workdir / stage)
    dropped = read_parts(workdir / stage / "dropped")
    return kept, dropped


@pytest.mark.parametrize("compression,suffix", [(None, ".jsonl"), ("gzip", ".jsonl.gz"), ("zstd", ".jsonl.zst")])
def test_jsonl_round_trip(tmp_path, local_engine, compression, suffix):
    write_jsonl(tmp_path / f"a{suffix}", [{"text": t, "k": i} for i, t in enumerate(TEXTS)], compression)
    r = recipe([{"name": "s", "kind": "text", "format": "jsonl", "paths": [str(tmp_path / f"*{suffix}")], "lang": "en"}])
    run(r, tmp_path / "w", local_engine, ["ingest"])
    kept, dropped = kept_and_dropped(tmp_path / "w")
    assert kept["text"].to_pylist() == TEXTS
    assert kept["id"].to_pylist() == [f"s/a{suffix}#{i + 1}" for i in range(7)]
    assert set(kept["kind"].to_pylist()) == {"text"} and set(kept["lang"].to_pylist()) == {"en"}
    assert dropped.num_rows == 0


@pytest.mark.parametrize("compressed", [False, True])
def test_parquet_round_trip_the_stack_layout(tmp_path, local_engine, compressed):
    rows = [{"content": t, "hexsha": f"h{i % 5}", "lang": "Python", "max_stars_repo_path": f"r/{i}.py",
             "max_stars_count": i} for i, t in enumerate(TEXTS)]
    path = write_parquet(tmp_path / "stack" / "data.parquet", rows, row_group_size=2)
    if compressed:
        import gzip

        (tmp_path / "stack" / "data.parquet.gz").write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
    r = recipe([{"name": "stack", "kind": "code", "format": "parquet", "paths": [str(tmp_path / "stack/*")],
                 "text_field": "content", "id_field": "hexsha", "lang_field": "lang",
                 "path_field": "max_stars_repo_path", "meta_fields": ["max_stars_count"]}],
               ingest={"partition_bytes": 1024})
    run(r, tmp_path / "w", local_engine, ["ingest"])
    kept, _ = kept_and_dropped(tmp_path / "w")
    assert kept["text"].to_pylist() == TEXTS
    # hexsha repeats (h0..h4 then h0, h1): later occurrences get #2, in input order
    assert kept["id"].to_pylist() == ["stack/h0", "stack/h1", "stack/h2", "stack/h3", "stack/h4", "stack/h0#2", "stack/h1#2"]
    assert kept["path_or_url"].to_pylist() == [f"r/{i}.py" for i in range(7)]
    assert [json.loads(m)["max_stars_count"] for m in kept["meta"].to_pylist()] == list(range(7))
    manifest = json.loads((tmp_path / "w/ingest/_manifest.json").read_text())
    assert manifest["extra"]["renamed_ids"] == 2


@pytest.mark.parametrize("stream", [False, True])
def test_arrow_round_trip(tmp_path, local_engine, stream):
    table = pa.table({"text": TEXTS, "id": [f"doc{i}" for i in range(7)]})
    path = tmp_path / "a.arrow"
    with pa.OSFile(str(path), "wb") as sink:
        writer = ipc.new_stream(sink, table.schema) if stream else ipc.new_file(sink, table.schema)
        writer.write_table(table, max_chunksize=3)
        writer.close()
    r = recipe([{"name": "arr", "kind": "text", "format": "arrow", "paths": [str(path)], "id_field": "id"}])
    run(r, tmp_path / "w", local_engine, ["ingest"])
    kept, _ = kept_and_dropped(tmp_path / "w")
    assert kept["text"].to_pylist() == TEXTS
    assert kept["id"].to_pylist() == [f"arr/doc{i}" for i in range(7)]


def test_code_tree_round_trip_and_languages(tmp_path, local_engine):
    files = {"pkg/a.py": "import os\n", "pkg/b.c": "int main(){}\n", "c.go": "package main\n", "notes.bin": "xx"}
    write_tree(tmp_path / "tree", files)
    r = recipe([{"name": "t", "kind": "code", "format": "code-tree", "paths": [str(tmp_path / "tree")]}])
    run(r, tmp_path / "w", local_engine, ["ingest"])
    kept, _ = kept_and_dropped(tmp_path / "w")
    got = {row["id"]: (row["lang"], row["text"]) for row in kept.to_pylist()}
    assert got == {"t/c.go": ("Go", "package main\n"), "t/pkg/a.py": ("Python", "import os\n"),
                   "t/pkg/b.c": ("C", "int main(){}\n")}  # .bin is not source code: not a document of the tree


def test_code_tree_links_never_escape(tmp_path, local_engine):
    (tmp_path / "outside.py").write_text("SECRET = 1\n")
    write_tree(tmp_path / "tree", {"a.py": "x = 1\n"})
    (tmp_path / "tree" / "evil.py").symlink_to(tmp_path / "outside.py")
    (tmp_path / "tree" / "alias.py").symlink_to(tmp_path / "tree" / "a.py")
    r = recipe([{"name": "t", "kind": "code", "format": "code-tree", "paths": [str(tmp_path / "tree")]}])
    run(r, tmp_path / "w", local_engine, ["ingest"])
    kept, _ = kept_and_dropped(tmp_path / "w")
    assert sorted(kept["id"].to_pylist()) == ["t/a.py", "t/alias.py"]
    assert "SECRET" not in "".join(kept["text"].to_pylist())


def bad_jsonl(tmp_path):
    lines = [
        json.dumps({"text": "good one"}).encode(),
        b'{"text": "unterminated',
        b'{"text": "caf\xe9 latin-1"}',
        json.dumps({"text": "   \n\t "}).encode(),
        json.dumps({"text": "x" * 200}).encode(),
        json.dumps({"body": "no text field"}).encode(),
        json.dumps({"text": 42}).encode(),
        b"[1, 2, 3]",
        json.dumps({"text": "nul \u0000 inside is fine in JSON text"}).encode(),
        b"[" * 100000 + b"]" * 100000,
        json.dumps({"text": "good two"}).encode(),
    ]
    return write_jsonl(tmp_path / "bad.jsonl", lines)


EXPECTED_REASONS = {
    2: "ingest.malformed_json", 3: "ingest.bad_utf8", 4: "ingest.empty", 5: "ingest.too_large",
    6: "ingest.missing_text", 7: "ingest.wrong_type", 8: "ingest.malformed_json", 10: "ingest.malformed_json",
}


def test_bad_records_are_counted_drops(tmp_path, local_engine):
    bad_jsonl(tmp_path)
    r = recipe([{"name": "b", "kind": "text", "format": "jsonl", "paths": [str(tmp_path / "bad.jsonl")]}],
               ingest={"max_bytes": 100})
    run(r, tmp_path / "w", local_engine, ["ingest"])
    kept, dropped = kept_and_dropped(tmp_path / "w")
    assert kept["id"].to_pylist() == ["b/bad.jsonl#1", "b/bad.jsonl#9", "b/bad.jsonl#11"]
    got = dict(zip(dropped["id"].to_pylist(), dropped["drop_reason"].to_pylist()))
    assert got == {f"b/bad.jsonl#{line}": reason for line, reason in EXPECTED_REASONS.items()}
    details = dict(zip(dropped["id"].to_pylist(), dropped["drop_detail"].to_pylist()))
    assert details["b/bad.jsonl#2"].startswith("bad.jsonl:2:")
    m = json.loads((tmp_path / "w/ingest/_manifest.json").read_text())
    c = m["ledger"]["b"]
    assert c["docs_in"] == 11 and c["docs_kept"] == 3 and sum(c["docs_dropped"].values()) == 8


def test_binary_and_undecodable_code_files(tmp_path, local_engine):
    write_tree(tmp_path / "tree", {"ok.py": "print(1)\n", "nul.py": b"abc\x00def", "latin.py": b"x = '\xe9'\n",
                                   "empty.py": b"", "big.py": "#" * 500})
    r = recipe([{"name": "t", "kind": "code", "format": "code-tree", "paths": [str(tmp_path / "tree")]}],
               ingest={"max_bytes": 100})
    run(r, tmp_path / "w", local_engine, ["ingest"])
    kept, dropped = kept_and_dropped(tmp_path / "w")
    assert kept["id"].to_pylist() == ["t/ok.py"]
    assert dict(zip(dropped["id"].to_pylist(), dropped["drop_reason"].to_pylist())) == {
        "t/nul.py": "ingest.binary", "t/latin.py": "ingest.bad_utf8", "t/empty.py": "ingest.empty",
        "t/big.py": "ingest.too_large"}
    ledger = json.loads((tmp_path / "w/ingest/_manifest.json").read_text())["ledger"]["t"]
    assert ledger["bytes_in"] == 9 + 7 + 8 + 0 + 500  # the bytes of every file, as read


def test_parquet_wrong_types_and_binary_text(tmp_path, local_engine):
    write_parquet(tmp_path / "n.parquet", [{"text": 1}, {"text": 2}])
    pq.write_table(pa.table({"text": pa.array([b"fine", b"\xff\xfe", None], pa.binary())}), tmp_path / "b.parquet")
    r = recipe([{"name": "n", "kind": "text", "format": "parquet", "paths": [str(tmp_path / "n.parquet")]},
                {"name": "b", "kind": "text", "format": "parquet", "paths": [str(tmp_path / "b.parquet")]}])
    run(r, tmp_path / "w", local_engine, ["ingest"])
    kept, dropped = kept_and_dropped(tmp_path / "w")
    assert kept["id"].to_pylist() == ["b/b.parquet#0"]
    assert dict(zip(dropped["id"].to_pylist(), dropped["drop_reason"].to_pylist())) == {
        "n/n.parquet#0": "ingest.wrong_type", "n/n.parquet#1": "ingest.wrong_type",
        "b/b.parquet#1": "ingest.bad_utf8", "b/b.parquet#2": "ingest.missing_text"}


def test_strict_fails_naming_file_and_line_and_leaves_no_output(tmp_path, local_engine):
    bad_jsonl(tmp_path)
    r = recipe([{"name": "b", "kind": "text", "format": "jsonl", "paths": [str(tmp_path / "bad.jsonl")]}])
    with pytest.raises(StrictError, match=r"ingest.malformed_json: bad.jsonl:2"):
        run(r, tmp_path / "w", local_engine, ["ingest"], strict=True)
    assert not list((tmp_path / "w").rglob("*.parquet"))
    assert not (tmp_path / "w" / "ingest" / "_manifest.json").exists()


def test_truncated_compressed_file_is_a_clear_error(tmp_path, local_engine):
    path = write_jsonl(tmp_path / "t.jsonl.gz", [{"text": f"doc {i} " * 50} for i in range(200)], "gzip")
    path.write_bytes(path.read_bytes()[:300])
    r = recipe([{"name": "t", "kind": "text", "format": "jsonl", "paths": [str(path)]}])
    with pytest.raises(SourceError, match="t.jsonl.gz") as exc:
        run(r, tmp_path / "w", local_engine, ["ingest"])
    assert exc.value.exit_code == 1
    assert not (tmp_path / "w" / "ingest" / "_manifest.json").exists()
