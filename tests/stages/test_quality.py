"""Stage `quality`: each rule fires just past its threshold and not at it, on documents whose statistic is
known exactly; the stage keeps rows and order, names the first rule that fired, and survives bad input."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.errors import RecipeError
from curate.rules.code_metrics import code_signals
from curate.rules.table import rules
from curate.rules.text_metrics import text_signals
from curate.stages import quality
from tests.helpers import recipe

RULES = {r.id: r for r in rules()}


def table(texts: list[str], kind: str = "text", lang: str | None = "en") -> pa.Table:
    n = len(texts)
    return pa.table({"id": [f"d{i}" for i in range(n)], "text": texts, "kind": [kind] * n, "source": ["s"] * n,
                     "lang": [lang] * n, "path_or_url": [None] * n, "meta": [None] * n})


def reasons(texts: list[str], rule_ids: list[str], kind: str = "text", lang: str | None = "en") -> list:
    active = [RULES[i] for i in rule_ids]
    return quality.apply(table(texts, kind, lang), active)["drop_reason"].to_pylist()


def distinct_words(n: int) -> str:
    return " ".join(f"w{i:05d}x" for i in range(n))  # 7-letter words, all different


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=1, max_value=120))
def test_min_words_fires_below_50_only(n):
    assert reasons([distinct_words(n)], ["gopher_min_words"]) == [None if n >= 50 else "quality.gopher_min_words"]


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=1, max_value=14))
def test_mean_word_length_window_3_to_10(length):
    text = " ".join(chr(97 + i % 26) * length for i in range(60))
    got = reasons([text], ["gopher_min_mean_word_length", "gopher_max_mean_word_length"])[0]
    assert got == ("quality.gopher_min_mean_word_length" if length < 3 else
                   "quality.gopher_max_mean_word_length" if length > 10 else None)


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=25))
def test_hash_ratio_fires_past_one_in_ten(hashes):
    text = distinct_words(100) + " #" * hashes  # '#' alone is punctuation, not a word: 100 words
    assert text_signals(pa.array([text]))["hash_word_ratio"][0] == hashes / 100
    assert reasons([text], ["gopher_hash_ratio"]) == [None if hashes <= 10 else "quality.gopher_hash_ratio"]


@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=1, max_value=9), st.integers(min_value=0, max_value=9))
def test_duplicate_lines_fraction_is_exact(unique, repeats):
    lines = [f"line number {i} here" for i in range(unique)] + ["line number 0 here"] * repeats
    sig = text_signals(pa.array(["\n".join(lines)]))
    assert sig["dup_line_frac"][0] == repeats / (unique + repeats)
    fired = reasons(["\n".join(lines)], ["gopher_dup_lines"])[0]
    assert fired == ("quality.gopher_dup_lines" if repeats / (unique + repeats) > 0.3 else None)


def test_top_bigram_and_duplicate_ngram_fractions_are_exact():
    text = "aa bb aa bb aa bb cc dddd"  # top 2-gram "aa bb" x3 = 12 chars of 18; 5-gram "aa bb aa bb aa" once
    sig = text_signals(pa.array([text]))
    assert sig["top_2gram_char_frac"][0] == 12 / 18
    assert sig["dup_5gram_char_frac"][0] == 0.0
    text2 = "one two three four five six one two three four five"  # the 5-gram repeats: 10 of 11 words covered
    sig2 = text_signals(pa.array([text2]))
    assert sig2["dup_5gram_char_frac"][0] == (len(text2.replace(" ", "")) - 3) / len(text2.replace(" ", ""))
    assert sig2["dup_6gram_char_frac"][0] == 0.0


def test_c4_and_fineweb_signals():
    text = "Lorem ipsum dolor.\nA much longer line that mentions javascript in it.\nshort\n{x}\nThe end of it all."
    sig = text_signals(pa.array([text]))
    assert sig["lorem_ipsum"][0] == 1 and sig["curly_braces"][0] == 1
    assert sig["c4_kept_lines"][0] == 2  # the first and the last line: >= 3 words, terminal punctuation, no js
    assert sig["line_punct_frac"][0] == 3 / 5 and sig["short_line_frac"][0] == 4 / 5  # <= 30 characters
    assert reasons([text], ["c4_lorem_ipsum"]) == ["quality.c4_lorem_ipsum"]


@pytest.mark.parametrize("longest, fires", [(1000, False), (1001, True)])
def test_code_max_line_length_and_its_sql_exception(longest, fires):
    text = "x = 1\n" * 100 + "y" * longest + "\n"
    assert reasons([text], ["code_max_line_length"], "code", "Python") == [
        "quality.code_max_line_length" if fires else None]
    assert reasons([text], ["code_max_line_length"], "code", "SQL") == [None]  # StarCoder: no rule for SQL


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=40))
def test_alnum_fraction_boundary(alnum):
    text = "a" * alnum + "." * (100 - alnum)
    assert code_signals(pa.array([text]), pa.array(["C"]))["alnum_frac"][0] == alnum / 100
    assert reasons([text], ["code_alnum_frac"], "code", "C") == [None if alnum >= 25 else "quality.code_alnum_frac"]


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=1, max_value=120))
def test_xml_header_only_in_the_first_100_characters(offset):
    text = " " * offset + '<?xml version="1.0"?>\n<a>text</a>\n'
    fired = reasons([text], ["xml_header"], "code", "XML")[0]
    assert fired == ("quality.xml_header" if offset + len("<?xml version=") <= 100 else None)


@pytest.mark.parametrize("chars, fires", [(49, True), (50, False), (5000, False), (5001, True)])
def test_json_size_window(chars, fires):
    text = '{"k": "' + "v" * (chars - 10) + '"}\n'
    assert len(text) == chars - 10 + 10
    got = reasons([text], ["data_min_chars", "data_max_chars"], "code", "JSON")[0]
    assert (got is not None) == fires
    assert reasons([text], ["data_min_chars", "data_max_chars"], "code", "Python") == [None]  # JSON/YAML only


def test_autogenerated_marker_only_in_the_first_five_lines():
    head = ["# line"] * 4
    assert reasons(["\n".join([*head, "# Auto-generated file, DO NOT EDIT", "x=1"])], ["code_autogenerated"],
                   "code", "Python") == ["quality.code_autogenerated"]
    assert reasons(["\n".join([*head, "x = 1", "# generated by hand"])], ["code_autogenerated"], "code", "Python") == [None]


def test_encoded_blob_and_comment_fraction():
    blob = "A" * 1025
    sig = code_signals(pa.array([f"x = '{blob}'\n", "# c\n# c\nx = 1\ny = 2\n", "{}"]), pa.array(["Python", "Python", "JSON"]))
    assert sig["max_encoded_run"][0] == 1025 and sig["max_encoded_run"][1] == 0
    assert sig["comment_line_frac"][1] == 0.5
    assert np.isnan(sig["comment_line_frac"][2])  # JSON has no comments: the comment rules never fire


def test_comment_fraction_rules_skip_yaml():
    """YAML has a comment marker (for comment extraction) but is data: a config without comments, or one
    that is mostly comments, is not dropped by the comment-to-code rules; Python is."""
    rules = ["code_min_comment_frac", "code_max_comment_frac"]
    bare, chatty = "name: x\nversion: 1\n", "# a\n# b\n# c\n# d\n# e\nk: v\n"
    assert reasons([bare, chatty], rules, "code", "YAML") == [None, None]
    assert reasons(["x = 1\ny = 2\n", chatty], rules, "code", "Python") == [
        "quality.code_min_comment_frac", "quality.code_max_comment_frac"]


def test_html_visible_text():
    visible = "Hello there, this is visible text. " * 2
    page = f"<html><script>var x = 1;</script><body><p>{visible}</p></body></html>"
    sig = code_signals(pa.array([page]), pa.array(["HTML"]))
    assert sig["visible_chars"][0] == len(visible.strip())
    assert reasons([page], ["html_visible_chars"], "code", "HTML") == ["quality.html_visible_chars"]


def test_apply_keeps_rows_records_signals_and_names_the_first_rule():
    texts = [distinct_words(10), distinct_words(60), "lorem ipsum " + distinct_words(60)]
    out = quality.apply(table(texts), quality.active_rules({}, ["c4_too_few_lines", "fineweb_line_punct",
                                                            "gopher_stop_words"], "web"))
    assert out["id"].to_pylist() == ["d0", "d1", "d2"]
    assert out["drop_reason"].to_pylist() == ["quality.gopher_min_words", None, "quality.c4_lorem_ipsum"]
    assert out["drop_detail"].to_pylist()[0] == "words=10 < 50"
    assert out["quality_flags"].to_pylist()[1] == []
    assert out["quality_signals"].to_pylist()[1]["words"] == 60
    assert out["quality_signals"].to_pylist()[1]["max_line_length"] is None  # a code signal on a text row
    score = out["quality_score"].to_pylist()
    assert score[1] == 1.0 and 0 < score[0] < 1


def test_bad_input_never_raises():
    texts = ["", "   \n\n\t", "😀" * 50, "x" * 200_000, "Hello Привет 你好 مرحبا " * 20, "\n" * 1000]
    for kind, lang in (("text", "en"), ("code", "Python"), ("code", None), ("code", "HTML")):
        out = quality.apply(table(texts, kind, lang), quality.active_rules({}, []))
        assert out.num_rows == len(texts)
        assert all(0.0 <= s <= 1.0 for s in out["quality_score"].to_pylist())
    assert quality.apply(table(texts), quality.active_rules({}, []))["drop_reason"].to_pylist()[0] == "quality.gopher_min_words"


def test_recipe_thresholds_override_and_unknown_rules_are_refused():
    src = [{"name": "a", "kind": "text", "format": "jsonl", "paths": ["x.jsonl"]}]
    r = recipe(src, quality={"thresholds": {"gopher_min_words": 5}, "disable": ["c4_curly_brace"]})
    active = {x.id: x for x in quality.active_rules(r.quality.thresholds, r.quality.disable)}
    assert active["gopher_min_words"].threshold == 5 and "c4_curly_brace" not in active
    with pytest.raises(RecipeError, match=r"quality\.thresholds\.gopher_min_word: unknown rule.*'gopher_min_words'"):
        recipe(src, quality={"thresholds": {"gopher_min_word": 5}})
    with pytest.raises(RecipeError, match=r"quality\.disable\[0\]: unknown rule"):
        recipe(src, quality={"disable": ["nope"]})
