"""Comment extraction for language ID of code comments (curate.rules.code_metrics.comment_text)."""

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.rules.code_metrics import block_comments, comment_text
from curate.rules.table import block_comment_delimiters, comment_prefixes

DOCS = {
    "Python": '"""Module doc."""\nimport os  # trailing\n# A line comment\ndef f():\n    \'\'\'Function\n    doc.\'\'\'\n',
    "C": "/**\n * Block one\n * two\n */\nint x; // after code\n// line\n/* unclosed",
    "Shell": "echo hi\n# shell comment",
    "Lua": "--[[ lua block ]] x = 1\n-- lua line",
    "Go": "x := 1 /* a */ + 2 /* b\x00c\x01d */",
}


def test_blocks_and_docstrings_are_extracted_and_removed_from_the_text():
    """Every block of a language with block syntax, in order, with a continuation line's `*` removed;
    the text keeps a space where each block was; NUL/SOH inside a block cannot cut it."""
    langs = list(DOCS) + [None]
    bodies, rest = block_comments(pa.array(list(DOCS.values()) + ["# no language"]), pa.array(langs))
    assert bodies.to_pylist() == ["Module doc. Function\n    doc.", "\n Block one\n two\n ", "", " lua block ",
                                  " a   b c d ", ""]
    assert rest.to_pylist()[0] == " \nimport os  # trailing\n# A line comment\ndef f():\n     \n"
    assert rest.to_pylist()[1] == " \nint x; // after code\n// line\n/* unclosed"
    assert rest.to_pylist()[4] == "x := 1   + 2  "
    assert rest.to_pylist()[2] == DOCS["Shell"] and rest.to_pylist()[5] == "# no language"


def test_comment_text_is_blocks_then_comment_lines_without_markers():
    """Only lines that start with a comment marker count (not a comment after code); an unclosed block is
    a comment line; a document without comments, or without a known language, gets ""."""
    langs = pa.array(list(DOCS) + ["Python", None])
    got = comment_text(pa.array(list(DOCS.values()) + ["x = 1\n", "# no language"]), langs).to_pylist()
    assert got == ["Module doc. Function\n    doc.  A line comment", "Block one\n two\n   line  unclosed",
                   "shell comment", "lua block   lua line", "a   b c d", "", ""]


def test_block_syntax_is_data_for_languages_with_comment_prefixes():
    blocks = block_comment_delimiters()
    assert blocks["python"] == (('"""', '"""'), ("'''", "'''")) and blocks["c"] == (("/*", "*/"),)
    assert set(blocks) == set(comment_prefixes())  # one table row per language


def test_an_opener_inside_a_string_or_after_code_opens_no_block():
    """A block opens at the start of the text or after whitespace only: `"lib/*"` and `x = "'''"` do not
    swallow the code up to the next closer (which would feed code to language ID)."""
    js = 'const files = glob("lib/*");\nfunction zählen(x) { return x + 1; }\n/* Count the items. */\n'
    py = 'x = "\'\'\'"\ndef f():\n    return 1\n# Done.\n'
    got = comment_text(pa.array([js, py]), pa.array(["JavaScript", "Python"])).to_pylist()
    assert got == ["Count the items.", "Done."]


def test_chunked_input_gives_the_same_texts():
    docs, langs = list(DOCS.values()), list(DOCS)
    whole = comment_text(pa.array(docs), pa.array(langs)).to_pylist()
    chunked = comment_text(pa.chunked_array([docs[:2], docs[2:]], pa.large_string()), pa.chunked_array([langs[:2], langs[2:]]))
    assert chunked.to_pylist() == whole


def test_each_line_of_the_language_table_is_one_language():
    """A quote in a field (VimL's comment marker is `"`) is written as CSV requires, so no row swallows
    the next one (it once hid YAML's row)."""
    from importlib import resources

    lines = resources.files("curate.rules").joinpath("code_languages.csv").read_text("utf-8").strip().splitlines()
    assert len(lines) - 1 == len(comment_prefixes())
    assert comment_prefixes()["viml"] == ('"',) and comment_prefixes()["yaml"] == ("#",)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=50)), max_size=8), st.integers(0, 3))
def test_fast_character_counts_equal_the_regex_rewrite(texts, offset):
    """Property: the byte-lookup class counts (ASCII documents) and counts of matches (others), and the
    encoded-run characters counted only where a match exists, equal removing the matches and comparing
    lengths, on any texts, nulls and sliced arrays included."""
    import numpy as np
    import pyarrow.compute as pc

    from curate.rules import code_metrics as C

    arr = pa.array(texts, pa.string()).slice(min(offset, len(texts)))

    def rewrite(pattern):
        return np.nan_to_num(C._num(pc.utf8_length(arr)) - C._chars_without(arr, pattern))

    assert np.array_equal(C._class_counts(arr, C._ASCII_ALNUM, r"[\pL\pN]"), rewrite(r"[\pL\pN]"))
    assert np.array_equal(C._class_counts(arr, C._ASCII_ALPHA, r"\pL"), rewrite(r"\pL"))
    assert np.array_equal(C._matched_chars(arr, C.ENCODED), rewrite(C.ENCODED))
