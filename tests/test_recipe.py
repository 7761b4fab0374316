"""Recipe validation: each kind of mistake gives exit 2 and names the field path."""

from __future__ import annotations

import textwrap

import pytest

from curate.cli import main
from curate.errors import RecipeError
from curate.recipe import load_recipe, parse_recipe

GOOD_SOURCE = {"name": "a", "kind": "text", "format": "jsonl", "paths": ["x.jsonl"]}


def errors_of(raw: dict) -> str:
    with pytest.raises(RecipeError) as exc:
        parse_recipe(raw, origin="r.yaml")
    return str(exc.value)


def test_defaults_fill_absent_and_empty_sections():
    r = parse_recipe({"name": "n", "sources": [GOOD_SOURCE], "ingest": None})
    assert r.ingest.max_bytes == 10_485_760
    assert r.exact_dedup.normalize == "exact"
    assert r.default_workdir == "work/n"
    assert r.sources[0].text_field == "text"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"name": "n", "sources": [GOOD_SOURCE, {**GOOD_SOURCE, "name": "b", "format": "csv"}]},
         "r.yaml: sources[1].format: must be one of 'jsonl', 'parquet', 'arrow', 'code-tree'"),
        ({"name": "n", "sources": [{**GOOD_SOURCE, "kind": "prose"}]}, "r.yaml: sources[0].kind: Input should be 'code' or 'text'"),
        ({"name": "n", "sources": [GOOD_SOURCE], "ingest": {"max_bytes": -1}}, "r.yaml: ingest.max_bytes: Input should be greater than or equal to 1"),
        ({"name": "n", "sources": [GOOD_SOURCE], "ingest": {"max_byte": 5}}, "r.yaml: ingest.max_byte: unknown key; did you mean 'max_bytes'?"),
        ({"name": "n", "sources": [{**GOOD_SOURCE, "text_feild": "x"}]}, "r.yaml: sources[0].text_feild: unknown key; did you mean 'text_field'?"),
        ({"name": "n", "sources": [GOOD_SOURCE], "seed": "abc"}, "r.yaml: seed: Input should be a valid integer"),
        ({"name": "n", "sources": []}, "r.yaml: sources: List should have at least 1 item"),
        ({"name": "n", "sources": [GOOD_SOURCE, GOOD_SOURCE]}, "r.yaml: sources[1].name: duplicate source name 'a'"),
        ({"name": "n", "sources": [{**GOOD_SOURCE, "format": None}]}, "r.yaml: sources[0].format"),
        ({"name": "n", "sources": [GOOD_SOURCE], "exact_dedup": {"normalize": "nfkc"}}, "r.yaml: exact_dedup.normalize: Input should be 'exact' or 'whitespace'"),
        ({"sources": [GOOD_SOURCE]}, "r.yaml: name: Field required"),
        ({"name": "n", "sources": [GOOD_SOURCE], "bogus": 1}, "r.yaml: bogus: unknown key"),
    ],
)
def test_each_mistake_names_its_field(raw, expected):
    assert expected in errors_of(raw)


def test_duplicate_yaml_keys_are_refused(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("name: a\nname: b\nsources: []\n")
    with pytest.raises(RecipeError, match="duplicate key 'name'"):
        load_recipe(p)


def test_yaml_never_executes_code(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("name: !!python/object/apply:os.system ['echo pwned']\nsources: []\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(p)


def write(tmp_path, text: str):
    p = tmp_path / "recipe.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_cli_validate_exit_codes(tmp_path, capsys):
    (tmp_path / "d.jsonl").write_text('{"text": "hello"}\n')
    good = write(tmp_path, f"""
        name: ok
        sources: [{{name: a, kind: text, format: jsonl, paths: ["{tmp_path}/d.jsonl"]}}]
    """)
    assert main(["validate", str(good)]) == 0
    assert "ok" in capsys.readouterr().out


def test_cli_missing_file_exit_2_before_work(tmp_path, capsys):
    bad = write(tmp_path, f"""
        name: bad
        workdir: {tmp_path}/work
        sources:
          - {{name: a, kind: text, format: jsonl, paths: ["{tmp_path}/nothing-*.jsonl"]}}
    """)
    assert main(["run", str(bad), "--engine", "local"]) == 2
    err = capsys.readouterr().err
    assert "sources[0].paths[0]: no file matches" in err
    assert not (tmp_path / "work").exists()


def test_cli_missing_text_field_names_file_and_field(tmp_path, capsys):
    (tmp_path / "d.jsonl").write_text('{"content": "hello"}\n')
    bad = write(tmp_path, f"""
        name: bad
        sources: [{{name: a, kind: text, format: jsonl, paths: ["{tmp_path}/d.jsonl"]}}]
    """)
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "sources[0].text_field" in err and "d.jsonl" in err and "'text'" in err and "content" in err
    assert "Traceback" not in err


def test_cli_recipe_error_exit_2(tmp_path, capsys):
    bad = write(tmp_path, "name: x\nsources: [{name: a, kind: code, format: tarball, paths: [x]}]\n")
    assert main(["validate", str(bad)]) == 2
    assert "sources[0].format" in capsys.readouterr().err


def test_demo_recipe_is_valid():
    from tests.conftest import ROOT

    r = load_recipe(ROOT / "recipes" / "demo.yaml")
    assert [s.format for s in r.sources] == ["code-tree", "parquet", "jsonl", "jsonl"]
