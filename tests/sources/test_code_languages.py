"""Code languages end to end (ingest + language on the local engine): go-enry in code trees and in table
sources without a language, the default `language.code_languages`, selection by Linguist type, the user's
`extensions` override and `include_unknown`. Every file is written here."""

from __future__ import annotations

import pytest

from curate.errors import RecipeError
from curate.sources import code_tree
from curate.workers import language as W
from tests.helpers import read_parts, recipe, run, write_jsonl, write_tree
from tests.sources.test_linguist import CPP_HEADER

TREE = {
    "lib/queue.tcl": "namespace eval queue {\n  proc push {q x} { upvar $q l; lappend l $x }\n}\n",
    "ui/Button.vue": "<template>\n  <button>{{ label }}</button>\n</template>\n<script>\nexport default "
                     "{ props: ['label'] }\n</script>\n",
    "tools/sum.awk": "{ total += $1 }\nEND { print total }\n",
    "m4/ax_foo.m4": "AC_DEFUN([AX_FOO], [\n  AC_MSG_CHECKING([for foo])\n])\n",
    "macros/quote.m4": "define(`quote', `$1')dnl\nquote(`hi')\n",
    "bin/serve": "#!/usr/bin/env tclsh\nputs listening\n",  # no extension: its shebang names it
    "geo/point.h": CPP_HEADER,
    "config.json": '{"port": 8080}\n',
    "data/table.csv": "a,b\n1,2\n",  # Linguist's CSV (data): read, then not kept by default
    "README": "A project.\n",  # no language by name or head: not a document unless include_unknown
    "notes.txt": "Remember the milk.\n",  # Linguist's Text: the same
}


def _code_recipe(tmp_path, lid_model_path, language=None, **source):
    src = {"name": "code", "kind": "code", "format": "code-tree", "paths": [str(tmp_path / "tree")], **source}
    return recipe([src], language={"model": str(lid_model_path), **(language or {})})


def _langs(table) -> dict[str, str | None]:
    return dict(zip((p for p in table["path_or_url"].to_pylist()), table["lang"].to_pylist()))


def _run(tmp_path, local_engine, r):
    run(r, tmp_path / "w", local_engine, ["ingest", "language"])
    ingested = read_parts(tmp_path / "w" / "ingest")
    kept = read_parts(tmp_path / "w" / "language")
    dropped = read_parts(tmp_path / "w" / "language" / "dropped")
    return ingested, kept, dropped


def test_tcl_vue_awk_and_m4_are_kept_with_the_default_settings(tmp_path, local_engine, lid_model_path):
    write_tree(tmp_path / "tree", TREE)
    ingested, kept, dropped = _run(tmp_path, local_engine, _code_recipe(tmp_path, lid_model_path))
    assert _langs(ingested) == {
        "bin/serve": "Tcl", "config.json": "JSON", "data/table.csv": "CSV", "geo/point.h": "C++",
        "lib/queue.tcl": "Tcl", "m4/ax_foo.m4": "M4Sugar", "macros/quote.m4": "M4", "tools/sum.awk": "Awk",
        "ui/Button.vue": "Vue"}  # README and notes.txt are not documents of the tree
    assert sorted(kept["path_or_url"].to_pylist()) == [
        "bin/serve", "config.json", "geo/point.h", "lib/queue.tcl", "m4/ax_foo.m4", "macros/quote.m4",
        "tools/sum.awk", "ui/Button.vue"]
    assert dropped["drop_reason"].to_pylist() == ["language.not_kept"] and dropped["drop_detail"].to_pylist() == ["lang=CSV"]


def test_selection_by_type_and_names(tmp_path, local_engine, lid_model_path):
    write_tree(tmp_path / "tree", TREE)
    r = _code_recipe(tmp_path, lid_model_path, {"code_languages": {"types": ["programming"]}})
    _, kept, _ = _run(tmp_path, local_engine, r)
    assert sorted(set(kept["lang"].to_pylist())) == ["Awk", "C++", "M4", "M4Sugar", "Tcl"]  # not Vue (markup), JSON
    r = _code_recipe(tmp_path, lid_model_path, {"code_languages": {"types": ["programming"], "names": ["vue", "csv"]}})
    _, kept, _ = _run(tmp_path, local_engine, r)
    assert sorted(set(kept["lang"].to_pylist())) == ["Awk", "C++", "CSV", "M4", "M4Sugar", "Tcl", "Vue"]
    r = _code_recipe(tmp_path, lid_model_path, {"code_languages": ["TCL", "awk"]})  # the list form, any case
    _, kept, _ = _run(tmp_path, local_engine, r)
    assert sorted(kept["lang"].to_pylist()) == ["Awk", "Tcl", "Tcl"]


def test_extensions_override_enry_and_include_unknown_reads_the_rest(tmp_path, local_engine, lid_model_path):
    write_tree(tmp_path / "tree", TREE)
    r = _code_recipe(tmp_path, lid_model_path, extensions={".h": "C", ".TXT": "Text Notes"}, include_unknown=True)
    ingested, kept, dropped = _run(tmp_path, local_engine, r)
    langs = _langs(ingested)
    assert langs["geo/point.h"] == "C" and langs["notes.txt"] == "Text Notes"  # the user's map wins
    assert langs["README"] is None  # read, as before, with no language ...
    reasons = dict(zip(dropped["id"].to_pylist(), dropped["drop_reason"].to_pylist()))
    assert reasons["code/README"] == "language.unknown_code_language"  # ... and dropped by the language stage
    assert reasons["code/notes.txt"] == "language.not_kept" and "geo/point.h" in kept["path_or_url"].to_pylist()


def test_listing_reads_heads_only_of_files_unknown_by_name(tmp_path, monkeypatch):
    write_tree(tmp_path / "tree", {**TREE, "bin/notes": "plain words\n", "bin/vimmed": "x\n# vim: set ft=awk:\n"})
    opened = []
    real_open = open

    def spy(path, *a, **k):
        opened.append(str(path).rsplit("/tree/", 1)[-1])
        return real_open(path, *a, **k)

    monkeypatch.setattr("builtins.open", spy)
    code_tree._head_names_language.cache_clear()
    src = recipe([{"name": "c", "kind": "code", "format": "code-tree", "paths": [str(tmp_path / "tree")]}]).sources[0]
    listed = [f.relname for f in code_tree.list_tree(str(tmp_path / "tree"), src)]
    assert sorted(opened) == ["README", "bin/notes", "bin/serve", "bin/vimmed", "notes.txt"]
    assert "bin/serve" in listed and "bin/vimmed" in listed and "bin/notes" not in listed and "README" not in listed


def test_table_code_source_without_a_language_field_gets_enrys(tmp_path, local_engine, lid_model_path):
    records = [{"text": TREE["lib/queue.tcl"], "path": "src/queue.tcl"},
               {"text": CPP_HEADER, "path": "include/point.h"},
               {"text": TREE["ui/Button.vue"], "path": "web/Button.vue"},
               {"text": "#!/usr/bin/awk -f\n{ print $1 }\n"},  # no path: the content's shebang speaks
               {"text": "x = 1\n"}]  # no path, nothing in the content: unknown
    write_jsonl(tmp_path / "code.jsonl", records)
    stack = [{"content": CPP_HEADER, "lang": "C", "path": "a.h"}, {"content": "let x = 1\n", "lang": "VimL", "path": "b.vim"}]
    write_jsonl(tmp_path / "stack.jsonl", stack)
    r = recipe([{"name": "j", "kind": "code", "format": "jsonl", "paths": [str(tmp_path / "code.jsonl")], "path_field": "path"},
                {"name": "s", "kind": "code", "format": "jsonl", "paths": [str(tmp_path / "stack.jsonl")],
                 "text_field": "content", "lang_field": "lang", "path_field": "path"}],
               language={"model": str(lid_model_path)})
    ingested, kept, dropped = _run(tmp_path, local_engine, r)
    assert ingested["lang"].to_pylist() == ["Tcl", "C++", "Vue", "Awk", None, "C", "VimL"]  # the source's own lang kept
    assert sorted(kept["lang"].to_pylist()) == ["Awk", "C", "C++", "Tcl", "VimL", "Vue"]  # VimL: Vim Script's alias
    assert dropped["drop_reason"].to_pylist() == ["language.unknown_code_language"]


def test_default_code_languages_cover_the_old_extension_map_and_the_chosen_extras():
    from curate.sources.extensions import known_languages
    from curate.sources.linguist import DEFAULT_CODE_NAMES, language_type

    allowed = W.allowed_code_languages(None)
    assert [name for name in known_languages() if name not in allowed] == []
    assert {"tcl", "vue", "awk", "m4", "m4sugar", "json", "yaml", "toml", "markdown", "restructuredtext"} <= allowed
    assert "text" not in allowed and "csv" not in allowed and "svg" not in allowed
    assert {language_type(n) for n in DEFAULT_CODE_NAMES} == {"data", "prose"}  # the rest come by type


@pytest.mark.parametrize(("value", "message"), [
    ({"types": ["programing"]}, "language.code_languages.types[0]: Input should be 'programming'"),
    ({"type": ["programming"]}, "language.code_languages.type: unknown key; did you mean 'types'?"),
    ({}, "language.code_languages: name at least one type or language"),
    ([3], "language.code_languages[0]: must be a language name"),
])
def test_code_languages_shapes_are_checked(value, message):
    with pytest.raises(RecipeError, match=message.replace("[", r"\[").replace("]", r"\]").replace("?", r"\?")):
        recipe([{"name": "c", "kind": "code", "format": "code-tree", "paths": ["."]}], language={"code_languages": value})
