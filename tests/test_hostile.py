"""The bad-input suite: every hostile file gives a named drop or a clear error; the ledger balances."""

from __future__ import annotations

import json

import pytest

from curate.cli import main
from tests.helpers import read_parts
from tests.hostile import CASES


def params():
    return [pytest.param(make, case, id=make.__name__, marks=[pytest.mark.slow] if case.slow else [])
            for make, case in CASES.items()]


@pytest.mark.parametrize(("make", "case"), params())
def test_hostile_input(tmp_path, make, case, capsys):
    d = tmp_path / "data"
    d.mkdir()
    source = make(d)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(json.dumps({"name": "hostile", "sources": [source]}))
    work = tmp_path / "w"
    code = main(["run", str(recipe), "--workdir", str(work), "--engine", "local", "--stages", "ingest"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if case.kind == "error":
        assert code == case.exit_code, err
        assert case.message in err
        assert not (work / "ingest" / "_manifest.json").exists()
        return
    assert code == 0, err
    ledger = json.loads((work / "ingest/_manifest.json").read_text())["ledger"].get("h")
    kept = read_parts(work / "ingest")
    dropped = read_parts(work / "ingest/dropped")
    assert kept.num_rows == case.kept
    got = {}
    for r in (dropped["drop_reason"].to_pylist() if dropped.num_rows else []):
        got[r] = got.get(r, 0) + 1
    assert got == case.drops
    if ledger:
        assert ledger["docs_in"] == ledger["docs_kept"] + sum(ledger["docs_dropped"].values()) == case.kept + sum(case.drops.values())
    if kept.num_rows:
        ids = kept["id"].to_pylist()
        assert len(set(ids)) == len(ids)
        assert all(isinstance(i, str) and "\udce9" not in i for i in ids)


def test_tree_never_reads_outside(tmp_path, capsys):
    from tests.hostile import tree_links_and_dotdot

    source = tree_links_and_dotdot(tmp_path)
    (tmp_path / "r.yaml").write_text(json.dumps({"name": "t", "sources": [source]}))
    assert main(["run", str(tmp_path / "r.yaml"), "--workdir", str(tmp_path / "w"), "--engine", "local"]) == 0
    texts = "".join(read_parts(tmp_path / "w/ingest")["text"].to_pylist())
    assert "do not read" not in texts


def test_lenient_turns_an_unreadable_file_into_a_counted_drop(tmp_path, capsys):
    from tests.hostile import truncated_gz

    source = truncated_gz(tmp_path)
    (tmp_path / "r.yaml").write_text(json.dumps({"name": "t", "sources": [source]}))
    work = tmp_path / "w"
    assert main(["run", str(tmp_path / "r.yaml"), "--workdir", str(work), "--engine", "local", "--lenient"]) == 0
    m = json.loads((work / "ingest/_manifest.json").read_text())["ledger"]["h"]
    assert m["docs_dropped"] == {"ingest.unreadable": 1}
    kept = read_parts(work / "ingest")
    assert 0 < kept.num_rows < 500  # what was readable before the truncation, each a whole line
    assert kept["text"].to_pylist() == [f"doc {i} " * 30 for i in range(kept.num_rows)]
    assert m["docs_in"] == kept.num_rows + 1
