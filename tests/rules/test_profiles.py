"""Quality rule profiles: what each built-in profile keeps and drops on documents written for the purpose,
and the profile table's integrity."""

from __future__ import annotations

import pyarrow as pa
import pytest

from curate.rules.profiles import builtin_profiles, profile_kinds, resolve
from curate.rules.table import rules
from curate.stages import quality
from tests.curation_samples import JUNK, KEPT_BY_CURATED


def decide(texts: list[str], profile: str, kind: str = "text", lang: str = "en") -> list[str | None]:
    t = pa.table({"id": [str(i) for i in range(len(texts))], "text": texts, "kind": [kind] * len(texts),
                  "source": ["s"] * len(texts), "lang": [lang] * len(texts)})
    return quality.apply(t, quality.active_rules({}, [], profile, {}), profile=profile)["drop_reason"].to_pylist()


def test_curated_keeps_every_kind_of_edited_text():
    """A LaTeX section with equations, a book over 100,000 words with a transcriber's brace, a Q&A with a
    code block, a short arithmetic item, a Markdown guide with fences, and wikitext with a table."""
    assert len(KEPT_BY_CURATED["book"].split()) > 100_000
    assert dict(zip(KEPT_BY_CURATED, decide(list(KEPT_BY_CURATED.values()), "curated"))) == {k: None for k in KEPT_BY_CURATED}


def test_web_rules_would_drop_the_edited_kinds():
    """The reason the `curated` profile exists: web rules drop each edited kind."""
    reasons = dict(zip(KEPT_BY_CURATED, decide(list(KEPT_BY_CURATED.values()), "web")))
    assert reasons == {"latex": "quality.c4_curly_brace", "book": "quality.gopher_max_words",
                       "stackexchange": "quality.c4_curly_brace", "arithmetic": "quality.gopher_min_words",
                       "markdown_guide": "quality.c4_curly_brace", "wikitext": "quality.gopher_min_words"}


@pytest.mark.parametrize("profile", ["web", "curated"])
def test_every_text_profile_but_none_drops_planted_junk(profile):
    reasons = dict(zip(JUNK, decide(list(JUNK.values()), profile)))
    assert all(reasons.values()), reasons
    if profile == "curated":
        assert reasons == {"repeated_line": "quality.gopher_dup_line_chars", "lorem_ipsum": "quality.gopher_dup_line_chars",
                           "keyword_stuffing": "quality.keyword_stuffing", "mojibake": "quality.mojibake",
                           "navigation_menu": "quality.menu_lines"}


def test_none_drops_nothing_but_records_signals():
    t = pa.table({"id": ["a"], "text": [JUNK["lorem_ipsum"]], "kind": ["text"], "source": ["s"], "lang": ["en"]})
    out = quality.apply(t, quality.active_rules({}, [], "none", {}), profile="none")
    assert out["drop_reason"].to_pylist() == [None]
    assert out["quality_signals"].to_pylist()[0]["lorem_ipsum"] == 3


def test_the_drop_detail_names_the_profile():
    t = pa.table({"id": ["a"], "text": [JUNK["mojibake"]], "kind": ["text"], "source": ["s"], "lang": ["en"]})
    out = quality.apply(t, quality.active_rules({}, [], "curated", {}), profile="curated")
    assert out["drop_detail"].to_pylist()[0].startswith("profile=curated mojibake_frac=")


ORDINARY_CODE = {
    # a test module without a single comment line
    "test_module.py": "import pytest\n\nfrom shop.cart import Cart\n\n\ndef test_total():\n    cart = Cart()\n"
                      "    cart.add('apple', 3)\n    assert cart.total() == 3\n\n\ndef test_empty():\n"
                      "    assert Cart().total() == 0\n",
    # a small JSON config: mostly punctuation and digits
    "config.json": '{\n  "port": 8080,\n  "workers": 4,\n  "timeout_s": 30,\n  "retry": [1, 2, 4, 8]\n}\n',
    # a Go file whose doc comment is most of its lines
    "doc.go": "// Package ring implements a fixed-size ring buffer.\n//\n// A Ring holds at most Cap items; Push on a\n"
              "// full ring overwrites the oldest item. The zero value is not usable:\n// call New.\n"
              "//\n// Rings are not safe for concurrent use.\npackage ring\n",
}


def test_code_profile_keeps_ordinary_files_that_code_strict_drops():
    langs = {"test_module.py": "Python", "config.json": "JSON", "doc.go": "Go"}
    for name, text in ORDINARY_CODE.items():
        assert decide([text], "code", "code", langs[name]) == [None], name
    strict = {name: decide([text], "code-strict", "code", langs[name])[0] for name, text in ORDINARY_CODE.items()}
    assert strict == {"test_module.py": "quality.code_min_comment_frac", "config.json": "quality.data_alpha_frac",
                      "doc.go": "quality.code_max_comment_frac"}


def test_code_profile_drops_minified_code():
    minified = "function a(b){return b*2}" + ";var c=a(1),d=a(2)" * 80
    assert decide([minified], "code", "code", "JavaScript") == ["quality.code_max_line_length"]


def test_profile_table_names_known_rules_of_one_kind_per_profile():
    by_id = {r.id: r for r in rules()}
    for name, members in builtin_profiles().items():
        assert all(rid in by_id for rid in members)
        assert len(profile_kinds(name, {})) <= 1, name
    assert profile_kinds("web", {}) == profile_kinds("curated", {}) == {"text"}
    assert profile_kinds("code", {}) == profile_kinds("code-strict", {}) == {"code"}
    assert set(resolve("code", {})) < set(resolve("code-strict", {}))
    # web is today's text rule set (every Gopher, C4 and FineWeb rule) plus mojibake
    old_text = {r.id for r in rules() if r.applies_to == "text" and r.id.startswith(("gopher_", "c4_", "fineweb_"))}
    assert set(resolve("web", {})) == old_text | {"mojibake"}


def decide_paths(docs: list[tuple[str, str, str]], profile: str) -> list[str | None]:
    """(path, language, text) code documents under a profile."""
    t = pa.table({"id": [str(i) for i in range(len(docs))], "text": [d[2] for d in docs], "kind": ["code"] * len(docs),
                  "source": ["s"] * len(docs), "lang": [d[1] for d in docs], "path_or_url": [d[0] for d in docs]})
    return quality.apply(t, quality.active_rules({}, [], profile, {}), profile=profile)["drop_reason"].to_pylist()


DESIGNER_CS = ("namespace Shop.Forms\n{\n    partial class CartForm\n    {\n        /// <summary>\n"
               "        /// Required designer variable.\n        /// </summary>\n"
               "        private System.ComponentModel.IContainer components = null;\n    }\n}\n")
VENDORED_GO = "// Package ring is a small ring buffer.\npackage ring\n\nfunc New(n int) []int { return make([]int, n) }\n"


def test_linguist_generated_is_dropped_by_code_and_vendored_only_by_code_strict():
    docs = [("Shop/Forms/CartForm.Designer.cs", "C#", DESIGNER_CS),
            ("vendor/github.com/acme/ring/ring.go", "Go", VENDORED_GO),
            ("ring/ring.go", "Go", VENDORED_GO)]
    assert decide_paths(docs, "code") == ["quality.linguist_generated", None, None]
    assert decide_paths(docs, "code-strict") == ["quality.linguist_generated", "quality.linguist_vendored", None]
    t = pa.table({"id": ["a"], "text": [DESIGNER_CS], "kind": ["code"], "source": ["s"], "lang": ["C#"],
                  "path_or_url": [None]})  # no path: Linguist's rules are undefined, never fire
    signals = quality.apply(t, quality.active_rules({}, [], "code", {}))["quality_signals"].to_pylist()[0]
    assert signals["linguist_generated"] is None and signals["linguist_vendored"] is None
