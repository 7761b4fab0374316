"""go-enry through `curate.sources.linguist`: ambiguous extensions and shebang scripts written for these tests,
agreement of `detect`'s shortcuts with enry's own answer, the generated language table against enry, name
resolution and types, and Linguist's generated / vendored flags."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest

from curate.sources import linguist

# Files written for these tests: (path, content, Linguist's language or None).
CPP_HEADER = "#pragma once\n#include <vector>\nnamespace geo {\nclass Point {\n public:\n  double x, y;\n};\n}\n"
OBJC_HEADER = "#import <Foundation/Foundation.h>\n@interface Point : NSObject\n@property double x;\n@end\n"
C_HEADER = "#ifndef POINT_H\n#define POINT_H\nstruct point { double x, y; };\ndouble norm(struct point p);\n#endif\n"
FILES = [
    ("geo/point.h", CPP_HEADER, "C++"),
    ("geo/Point.h", OBJC_HEADER, "Objective-C"),
    ("geo/point_c.h", C_HEADER, "C"),
    ("m/fit.m", "function y = fit(x)\n  % least squares\n  y = x' * x;\nend\n", "MATLAB"),
    ("m/App.m", "#import \"App.h\"\n@implementation App\n- (void)run {}\n@end\n", "Objective-C"),
    ("pl/family.pl", "parent(tom, bob).\nancestor(X, Y) :- parent(X, Y).\n", "Prolog"),
    ("pl/count.pl", "use strict;\nuse warnings;\nmy %seen;\nwhile (<>) { $seen{$_}++ }\nprint scalar(keys %seen), \"\\n\";\n", "Perl"),
    ("bin/serve", "#!/usr/bin/env tclsh\nputs \"listening\"\n", "Tcl"),
    ("bin/fields", "#!/usr/bin/awk -f\n{ print $2 }\n", "Awk"),
    ("bin/build", "#!/bin/sh\nset -e\nmake all\n", "Shell"),
    ("bin/report", "#!/usr/bin/env python3\nprint('ok')\n", "Python"),
    ("bin/vimmed", "proc greet {} { puts hi }\n# vim: set ft=tcl:\n", "Tcl"),
    ("ui/Button.vue", "<template>\n  <button @click=\"n++\">{{ n }}</button>\n</template>\n<script>\nexport default "
     "{ data: () => ({ n: 0 }) }\n</script>\n", "Vue"),
    ("lib/queue.tcl", "namespace eval queue {\n  proc push {q x} { upvar $q l; lappend l $x }\n}\n", "Tcl"),
    ("tools/sum.awk", "{ total += $1 }\nEND { print total }\n", "Awk"),
    ("m4/ax_check.m4", "AC_DEFUN([AX_CHECK_FOO], [\n  AC_MSG_CHECKING([for foo])\n])\n", "M4Sugar"),
    ("macros/quote.m4", "define(`quote', `$1')dnl\nquote(`hi')\n", "M4"),
    ("scripts/tail", "{ n++ }\n" * 20 + "# vim: set ft=awk:\n", "Awk"),  # a modeline in the last lines
    ("css/app.min.css", ".a{display:flex;}" * 2000, "CSS"),  # `flex:` looks like Vim's `ex:`; no modeline
    ("CMakeLists.txt", "project(x C)\nadd_executable(x main.c)\n", "CMake"),
    ("Makefile", "all:\n\tcc -o x main.c\n", "Makefile"),
    ("notes.txt", "Remember to water the plants.\n", None),  # Linguist's Text: no language
    ("README", "A project.\n", None),
    ("data/blob.xyzzy", "nothing to see\n", None),
]


@pytest.mark.parametrize(("path", "content", "expected"), FILES, ids=[f[0] for f in FILES])
def test_detect_assigns_linguist_languages(path, content, expected):
    assert linguist.detect(path, content.encode()) == expected


@pytest.mark.parametrize(("path", "content", "expected"), FILES, ids=[f[0] for f in FILES])
def test_detect_agrees_with_enrys_own_answer(path, content, expected):
    """The shortcuts (cached name lookups, heuristics alone) give what enry.get_language gives; also with
    the content past CONTENT_BYTES, which only enry's content strategies would have read."""
    enry = linguist._enry()
    for data in (content.encode(), content.encode() + b"\n" * linguist.CONTENT_BYTES + b"/* tail */\n"):
        answer = enry.get_language(path, data)
        assert linguist.detect(path, data) == (None if answer in ("", "Text") else answer)


def test_name_and_head_classification_used_for_listing():
    assert linguist.by_name("src/lib/queue.tcl") == "Tcl"
    assert linguist.by_name("a/CMakeLists.txt") == "CMake"  # the file name wins over `.txt`
    assert linguist.by_name("notes.txt") is None  # `.txt` may be Text: only the content can say
    assert linguist.by_name("README") is None and linguist.by_name("bin/serve") is None
    assert linguist.by_name("geo/point.h") in {"C", "C++", "Objective-C"}  # a candidate; detect decides
    assert linguist.by_head(b"#!/usr/bin/env tclsh\nputs hi\n") == "Tcl"
    assert linguist.by_head(b"# -*- mode: awk -*-\n{ print }\n") == "Awk"
    assert linguist.by_head(b"Remember the milk.\n") is None and linguist.by_head(b"") is None


def test_table_matches_enry_row_by_row():
    """Every row's type is what enry says for that exact name; names are unique case-insensitively; every
    language enry assigns to the test files is in the table."""
    enry = linguist._enry()
    rows = list(linguist.languages().values())
    assert len(rows) > 700 and len({n.lower() for n, _ in rows}) == len(rows)
    assert [(n, t) for n, t in rows if enry.get_language_type(n) != t] == []
    assert {t for _, t in rows} == set(linguist.TYPES)
    assert {expected for _, _, expected in FILES if expected} <= {n for n, _ in rows}


def test_generator_finds_the_names_in_a_library(tmp_path):
    """Known answer: a blob holding `TclVue` back to back (as Go stores strings) yields exactly the languages
    spelled inside it: Tcl, Vue, and V (a language too); the extension `.awk` adds Awk, and its prefix `.aw`
    (every prefix is tried) PHP's."""
    blob = tmp_path / "libfake.so"
    blob.write_bytes(b"\x00\x01TclVue\x02")
    assert linguist.generate(str(blob)) == [("Tcl", "programming"), ("V", "programming"), ("Vue", "markup")]
    blob.write_bytes(b"\x00\x01TclVue\x02\x00.awk\x00")
    assert [n for n, _ in linguist.generate(str(blob))] == ["Awk", "PHP", "Tcl", "V", "Vue"]


def test_names_resolve_case_insensitively_and_through_aliases():
    assert linguist.canonical("TCL") == "Tcl" and linguist.canonical("vue") == "Vue"
    assert linguist.canonical("viml") == "Vim Script"  # The Stack v1's spelling, a Linguist alias
    assert linguist.canonical("cpp") == "C++" and linguist.canonical("protobuf") == "Protocol Buffer"
    assert linguist.canonical("FORTRAN") == "Fortran"
    assert linguist.canonical("Klingon Script") is None and linguist.canonical("") is None
    types = {n: linguist.language_type(n) for n in ("python", "Vue", "json", "MARKDOWN", "M4Sugar", "nope")}
    assert types == {"python": "programming", "Vue": "markup", "json": "data", "MARKDOWN": "prose",
                     "M4Sugar": "programming", "nope": "unknown"}


def test_selections_by_type_and_name():
    programming = linguist.selection(["programming"], [])
    assert "tcl" in programming and "awk" in programming and "vue" not in programming and "json" not in programming
    assert "viml" in programming  # an alias of a member is a member
    chosen = linguist.selection(["markup"], ["JSON", "viml"])
    assert "vue" in chosen and "json" in chosen and "vim script" in chosen and "python" not in chosen
    assert len(linguist.selection(["prose"], [])) == len(linguist.names_of_types(["prose"]))


def test_generated_and_vendored_flags():
    pb2 = "# Generated by the protocol buffer compiler.  DO NOT EDIT!\n# source: point.proto\nimport sys\n"
    minified = "var a=function(b){return b*2},c=" + "1+" * 200 + "1;"
    paths = pa.array(["point_pb2.py", "dist/app.min.js", "src/app.js", "main.py", None, "vendor/lib/x.go",
                      "web/node_modules/left-pad/index.js", "src/vendored_words.py"])
    texts = pa.array([pb2, minified, "let a = 1;\nlet b = 2;\n", "print(1)\n", pb2, "package x\n", "module.exports = 1\n",
                      "WORDS = []\n"])
    # Linguist counts node_modules/ as generated as well as vendored
    assert linguist.generated_flags(paths, texts).tolist() == [True, True, False, False, False, False, True, False]
    # minified files (`*.min.js`) and dist/ are Linguist's vendored paths too
    assert linguist.vendored_flags(paths).tolist() == [False, True, False, False, False, True, True, False]
    chunked = pa.chunked_array([paths[:3], paths[3:]])
    assert linguist.vendored_flags(chunked).tolist() == linguist.vendored_flags(paths).tolist()


def test_fill_missing_keeps_given_languages_and_detects_the_rest():
    langs = pa.array(["C", None, None, None, None])
    paths = pa.array(["a.h", "lib/q.tcl", None, None, "x.h"])
    texts = pa.array([CPP_HEADER, "proc a {} {}\n", "#!/usr/bin/awk -f\n{ print }\n", "just words\n", None])
    assert linguist.fill_missing(langs, paths, texts).to_pylist() == ["C", "Tcl", "Awk", None, None]


def _tree_of_ambiguous_files() -> dict[str, bytes]:
    """Written for this test: doctools-like `.inc` fragments that Linguist's heuristics leave open (the
    classifier decides), copied into a second directory, `.inc` files the heuristics settle (PHP,
    Assembly), and `.n` files (Roff manpages, Nemerle) that enry's manpage strategy also sees."""
    files = {}
    for i in range(24):
        fragment = f"[section {{Part {i}}}]\n[para] Paragraph {i} describes [cmd cmd{i}].\n[list_begin definitions]\n"
        files[f"doc/part{i}.inc"] = fragment.encode()
        files[f"copy/part{i}.inc"] = fragment.encode()
        if i % 4 == 0:
            files[f"php/page{i}.inc"] = f"<?php echo {i}; ?>\n".encode()
            files[f"asm/x{i}.inc"] = f"; routine {i}\nmov ax, bx\n".encode()
    for i in range(20):
        files[f"man/tool{i}.n"] = f".TH TOOL{i} n\n.SH NAME\ntool{i} \\- does {i}\n".encode()
    files["src/Main.n"] = b"using System;\nmodule Main {}\n"
    return files


def test_tree_languages_are_enrys_whichever_shortcut_answers(monkeypatch):
    """Every file of a tree gets enry.get_language's answer (today's), whether detect settles it by the
    heuristics alone, sends the extension straight to enry's whole strategy once its heuristics rarely
    settle, or takes a copy's cached answer; the cached path calls enry once per distinct file."""
    files = _tree_of_ambiguous_files()
    real = linguist._enry()
    expected = {p: (None if (a := real.get_language(p, c)) in ("", "Text") else a) for p, c in files.items()}
    calls = []

    class CountingEnry:
        def __getattr__(self, name):
            return getattr(real, name)

        def get_language(self, path, content):
            calls.append(path)
            return real.get_language(path, content)

    monkeypatch.setattr(linguist, "_enry", CountingEnry)
    linguist.clear_caches()
    assert {p: linguist.detect(p, c) for p, c in files.items()} == expected
    inc_candidates = linguist._name_candidates("x.inc")[1]
    assert expected["doc/part0.inc"] in inc_candidates  # the classifier's choice among the 12
    assert expected["php/page0.inc"] == "PHP" and expected["asm/x0.inc"] == "Assembly"
    assert expected["man/tool0.n"] == "Roff" and expected["src/Main.n"] == "Nemerle"
    assert not linguist._heuristics_worth_it(inc_candidates)  # .inc switched to enry's whole strategy
    assert linguist._heuristics_worth_it(linguist._name_candidates("x.n")[1])  # .n stays on the heuristics
    assert not any(p.endswith(".n") for p in calls)  # settled by the heuristics, enry's whole call never made
    assert sorted(calls) == sorted(set(calls))  # copies (same base name, same content) asked once
    assert not any(p.startswith("copy/") for p in calls)
    first_calls = set(calls)
    calls.clear()
    assert {p: linguist.detect(p, c) for p, c in files.items()} == expected
    # the second pass: what went through enry's whole strategy comes from the cache; only the .inc files
    # that the heuristics settled before the switch (PHP, Assembly) are new to it
    assert first_calls.isdisjoint(calls) and all(p.startswith(("php/", "asm/")) for p in calls)


@pytest.mark.parametrize(("text", "may"), [(b"# VIM: set FT=tcl:\n", True), (b"/* Vim600: filetype=c */", True),
                                           (b"; ex: syntax = awk", True), (b"# -*- mode: tcl -*-\n", True),
                                           (b".a{display:flex;}" * 50, False), (b"a = vi:x", False),
                                           (b"vi: set ft tcl", False), (b"no marks here\n", False)])
def test_modeline_precheck_matches_case_insensitively(text, may):
    """The precheck searches the lowercased text: the answers of the case-insensitive patterns it replaced."""
    old = bool(re.search(rb"-\*-[^\n]*-\*-", text) or (re.search(rb"(?:vi|ex)(?:m[<=>]?[0-9]*)?:", text, re.I)
                                                         and re.search(rb"(?:ft|filetype|syntax)[ \t]*=", text, re.I)))
    assert linguist._may_hold_modeline(text) == old == may
