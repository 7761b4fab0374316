"""Exact dedup on planted duplicates across files and sources: exactly the copies go, each naming its survivor."""

from __future__ import annotations

import json

import pyarrow as pa

from curate.stages import exact_dedup
from tests.helpers import read_parts, recipe, run, write_jsonl, write_tree


def test_find_losers_first_in_input_order_survives():
    t = pa.table({"text": ["a", "b", "a", "c", "a", "b"], "id": [f"d{i}" for i in range(6)]})
    hashes = pa.concat_tables([exact_dedup.content_hashes(t.slice(0, 3), 0, 0, "exact"),
                               exact_dedup.content_hashes(t.slice(3), 1, 0, "exact")])
    losers = exact_dedup.find_losers(hashes).sort_by([("part", "ascending"), ("row", "ascending")]).to_pylist()
    assert losers == [{"part": 0, "row": 2, "survivor": "d0"}, {"part": 1, "row": 1, "survivor": "d0"},
                      {"part": 1, "row": 2, "survivor": "d1"}]


def test_whitespace_normalisation_only_when_asked():
    t = pa.table({"text": ["a  b\n", "a b", " a\tb "], "id": ["x", "y", "z"]})
    exact = exact_dedup.find_losers(exact_dedup.content_hashes(t, 0, 0, "exact"))
    ws = exact_dedup.find_losers(exact_dedup.content_hashes(t, 0, 0, "whitespace"))
    assert exact.num_rows == 0
    assert sorted(ws["row"].to_pylist()) == [1, 2] and set(ws["survivor"].to_pylist()) == {"x"}


def planted_corpus(tmp_path):
    """Two jsonl files, a code tree and a second source; copies planted across files and sources."""
    base = [f"unique document {i}: " + "lorem " * i for i in range(30)]
    a = [{"text": t} for t in base[:15]] + [{"text": base[3]}, {"text": base[7]}]  # 2 copies within file a
    b = [{"text": t} for t in base[15:]] + [{"text": base[0]}, {"text": base[20]}, {"text": base[20]}]
    write_jsonl(tmp_path / "text/a.jsonl", a)
    write_jsonl(tmp_path / "text/b.jsonl", b)
    write_jsonl(tmp_path / "other/c.jsonl", [{"text": base[5]}, {"text": "only here"}])
    write_tree(tmp_path / "tree", {"x.py": base[9], "y.py": "print(1)\n"})
    sources = [
        {"name": "web", "kind": "text", "format": "jsonl", "paths": [str(tmp_path / "text/*.jsonl")]},
        {"name": "other", "kind": "text", "format": "jsonl", "paths": [str(tmp_path / "other/c.jsonl")]},
        {"name": "tree", "kind": "code", "format": "code-tree", "paths": [str(tmp_path / "tree")]},
    ]
    expected = {  # loser id -> survivor id
        "web/a.jsonl#16": "web/a.jsonl#4", "web/a.jsonl#17": "web/a.jsonl#8", "web/b.jsonl#16": "web/a.jsonl#1",
        "web/b.jsonl#17": "web/b.jsonl#6", "web/b.jsonl#18": "web/b.jsonl#6", "other/c.jsonl#1": "web/a.jsonl#6",
        "tree/x.py": "web/a.jsonl#10",
    }
    return sources, expected


def test_planted_duplicates_across_files_and_sources(tmp_path, local_engine):
    sources, expected = planted_corpus(tmp_path)
    r = recipe(sources, ingest={"partition_bytes": 1024})
    run(r, tmp_path / "w", local_engine, ["ingest", "exact_dedup"])
    dropped = read_parts(tmp_path / "w/exact_dedup/dropped")
    assert dict(zip(dropped["id"].to_pylist(), dropped["drop_detail"].to_pylist())) == expected
    assert set(dropped["drop_reason"].to_pylist()) == {"exact_dedup.duplicate"}
    kept = read_parts(tmp_path / "w/exact_dedup")
    assert len(set(kept["text"].to_pylist())) == kept.num_rows == 30 + 2  # every distinct text once
    survivors = set(expected.values())
    assert survivors <= set(kept["id"].to_pylist())
    m = json.loads((tmp_path / "w/exact_dedup/_manifest.json").read_text())
    assert m["extra"]["duplicates"] == 7
    assert m["ledger"]["web"]["docs_dropped"] == {"exact_dedup.duplicate": 5}
    assert m["ledger"]["other"]["docs_dropped"] == {"exact_dedup.duplicate": 1}
    assert m["ledger"]["tree"]["docs_dropped"] == {"exact_dedup.duplicate": 1}
