"""Stage `language`: lid.176 labels on paragraphs written for these tests, agreement with the raw model, code
language selection, decisions at the thresholds, bad input, and the recipe check of language codes."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from curate.cli import main
from curate.errors import RecipeError
from curate.stages import language
from curate.workers import language as W
from tests.helpers import read_parts, recipe, run, write_jsonl, write_tree

# Short paragraphs written for this test, 10 languages in 6 scripts (Latin, Cyrillic, Greek, Han, Arabic, Hebrew).
PARAGRAPHS = {
    "en": "The library opens at nine in the morning, and the children usually arrive with their parents soon after.",
    "fr": "La bibliothèque ouvre à neuf heures du matin et les enfants arrivent souvent avec leurs parents.",
    "de": "Die Bibliothek öffnet um neun Uhr morgens, und die Kinder kommen meistens kurz danach mit ihren Eltern.",
    "es": "La biblioteca abre a las nueve de la mañana y los niños suelen llegar poco después con sus padres.",
    "it": "La biblioteca apre alle nove del mattino e i bambini di solito arrivano poco dopo con i loro genitori.",
    "ru": "Библиотека открывается в девять утра, и дети обычно приходят вскоре после этого вместе с родителями.",
    "el": "Η βιβλιοθήκη ανοίγει στις εννέα το πρωί και τα παιδιά συνήθως έρχονται λίγο αργότερα με τους γονείς τους.",
    "zh": "图书馆每天早上九点开门，孩子们通常会在不久之后和父母一起来到这里看书。",
    "ar": "تفتح المكتبة أبوابها في الساعة التاسعة صباحا، ويصل الأطفال عادة بعد ذلك بقليل مع والديهم.",
    "he": "הספרייה נפתחת בתשע בבוקר, והילדים מגיעים בדרך כלל זמן קצר אחר כך עם ההורים שלהם.",
}


@pytest.fixture(scope="module")
def lid(lid_model_path):
    return W.model(str(lid_model_path))


def test_each_paragraph_gets_its_language_and_matches_the_raw_model(lid):
    texts = [p.replace(", ", ",\n") for p in PARAGRAPHS.values()]  # line breaks exercise the preparation
    prepared = language.prepare_texts(pa.array(texts), 10_000)
    labels, scores = W.predict(lid, prepared)
    assert list(labels) == list(PARAGRAPHS)
    raw_labels, raw_probs = lid.f.multilinePredict([t + "\n" for t in prepared], 1, 0.0, "strict")
    assert [lab[0].removeprefix("__label__") for lab in raw_labels] == list(labels)
    assert np.array_equal(np.array([p[0] for p in raw_probs], dtype=np.float64), scores)  # exact agreement


def test_predict_works_under_numpy_2(lid):
    """The official fasttext 0.9.3 wheel's predict raises "Unable to avoid copy" under numpy 2."""
    assert int(np.__version__.split(".")[0]) >= 2
    labels, scores = W.predict(lid, language.prepare_texts(pa.array([PARAGRAPHS["de"]]), 100))
    assert labels[0] == "de" and 0.65 < scores[0] <= 1.0


def test_preparation_joins_lines_and_cuts_at_max_chars():
    out = language.prepare_texts(pa.array(["ab\ncd\r\n\nef", "x" * 50]), 7)
    assert out == ["ab cd ", "x" * 7]  # cut first (7 characters: "ab\ncd\r\n"), then line breaks become one space
    assert language.prepare_texts(["a\ud800b"], 10) == ["a\ufffdb"]  # a lone surrogate cannot reach fastText


def test_bad_input_gets_a_value_and_a_decision(lid):
    texts = ["", "   \n\t ", "😀🎉😀", "word " * 100_000, "Hello Привет 你好 مرحبا", "a\udc80b"]
    prepared = language.prepare_texts(texts, 10_000)
    labels, scores = W.predict(lid, prepared)
    assert len(labels) == len(texts) and np.all((scores >= 0) & (scores <= 1))
    reasons = language.text_reasons(labels, scores, ["en"], 0.65)
    assert reasons[0] == "language.low_score"  # nothing to identify: the score is lid.176's prior
    assert all(r in (None, "language.not_kept", "language.low_score") for r in reasons)


def test_text_decision_boundaries():
    labels = np.array(["en", "en", "en", "de"], dtype=object)
    scores = np.array([0.65, np.nextafter(0.65, 0), 0.99, 0.99])
    assert list(language.text_reasons(labels, scores, ["en"], 0.65)) == [
        None, "language.low_score", None, "language.not_kept"]


def test_code_languages_are_matched_case_insensitively():
    table = pa.table({"id": ["a", "b", "c", "d", "e"], "text": ["x"] * 5, "kind": ["code"] * 4 + ["text"],
                      "source": ["s"] * 5, "lang": ["Python", "PYTHON", "Rust", None, "en"],
                      "path_or_url": [None] * 5, "meta": [None] * 5})
    out = language.decide(table, np.array(["en"], dtype=object), np.array([0.9]), ["en"], 0.65, {"python"})
    assert out["drop_reason"].to_pylist() == [None, None, "language.not_kept", "language.unknown_code_language", None]
    assert out["drop_detail"].to_pylist()[2] == "lang=Rust"
    assert out["lang_score"].to_pylist()[:4] == [None] * 4 and out["lang"].to_pylist()[4] == "en"
    assert out["id"].to_pylist() == table["id"].to_pylist()


def test_unknown_language_code_is_a_recipe_error_naming_the_field(tmp_path, lid_model_path, capsys):
    src = {"name": "t", "kind": "text", "format": "jsonl", "paths": [str(tmp_path / "t.jsonl")]}
    r = recipe([src], language={"keep": ["en", "eng"], "model": str(lid_model_path)})
    with pytest.raises(RecipeError, match=r"language\.keep\[1\]: 'eng' is not a label .*did you mean 'en'"):
        W.check_recipe(r)
    write_jsonl(tmp_path / "t.jsonl", [{"text": "hello"}])
    (tmp_path / "r.yaml").write_text(f"name: t\nsources: [{src}]\nlanguage: {{keep: [eng], model: {lid_model_path}}}\n")
    assert main(["validate", str(tmp_path / "r.yaml")]) == 2
    assert "language.keep[0]" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "r.yaml"), "--engine", "local", "--workdir", str(tmp_path / "w")]) == 2
    assert not (tmp_path / "w").exists()  # refused before any work


def test_code_language_near_miss_is_an_error_and_an_unlisted_name_a_warning(tmp_path, lid_model_path, caplog):
    src = {"name": "t", "kind": "code", "format": "code-tree", "paths": [str(tmp_path)], "extensions": {".qz": "Quuxlang"}}
    ok = ["python", "C++", "Quuxlang", "COBOL", "viml", "Zorblatt"]  # any case; a source's extensions; Linguist
    W.check_recipe(recipe([src], language={"code_languages": ok, "model": str(lid_model_path)}))  # and an alias
    assert "'Zorblatt' is not a Linguist language" in caplog.text
    assert "Quuxlang" not in caplog.text and "COBOL" not in caplog.text and "viml" not in caplog.text
    bad = recipe([src], language={"code_languages": ["Python", "Javascirpt", "Pyhton"], "model": str(lid_model_path)})
    with pytest.raises(RecipeError) as err:
        W.check_recipe(bad)
    assert "language.code_languages[1]: 'Javascirpt' is not a known language; did you mean 'JavaScript'?" in str(err.value)
    assert "language.code_languages[2]" in str(err.value)
    typo = recipe([src], language={"code_languages": {"types": ["markup"], "names": ["Tccl", "Awk"]},
                                   "model": str(lid_model_path)})
    with pytest.raises(RecipeError, match=r"language\.code_languages\.names\[0\]: 'Tccl' is not a known language; "
                       r"did you mean 'Tcl'\?"):
        W.check_recipe(typo)


def test_stage_end_to_end_on_the_local_engine(tmp_path, local_engine, lid_model_path):
    docs = [{"text": t} for t in PARAGRAPHS.values()]
    write_jsonl(tmp_path / "text.jsonl", docs)
    write_tree(tmp_path / "code", {"a.py": "print(1)\n", "b.rs": "fn main() {}\n", "c.c": "int x;\n"})
    r = recipe([{"name": "t", "kind": "text", "format": "jsonl", "paths": [str(tmp_path / "text.jsonl")]},
                {"name": "c", "kind": "code", "format": "code-tree", "paths": [str(tmp_path / "code")]}],
               language={"keep": ["en", "fr"], "model": str(lid_model_path), "code_languages": ["python", "C"]})
    results = run(r, tmp_path / "w", local_engine, ["ingest", "language"])
    kept = read_parts(tmp_path / "w" / "language")
    assert sorted(kept["lang"].to_pylist()) == ["C", "Python", "en", "fr"]
    t = results[-1].manifest["totals"]
    assert t["docs_in"] == 13 and t["docs_kept"] == 4
    assert results[-1].manifest["extra"]["text_docs"] == 10


def _commented(lang: str, comment_lines: int = 2) -> str:
    body = "\n".join(f"# {PARAGRAPHS[lang]}" for _ in range(comment_lines))
    return f"{body}\ndef f(x):\n    return x * 2  # {PARAGRAPHS[lang][:20]}\n"


def test_code_comments_are_identified_only_when_asked(tmp_path, local_engine, lid_model_path):
    """English and German comments (~200 characters), German docstrings, a short Russian comment (under
    min_chars) and code without comments: with code_comments {keep: [en], min_chars: 150} only the two
    German ones are dropped, as language.comment_not_kept, and the label agrees with the model on the
    extracted comment text."""
    docstrings = f'"""{PARAGRAPHS["de"]}"""\ndef f(x):\n    \'\'\'{PARAGRAPHS["de"]}\'\'\'\n    return x\n'
    files = {"en.py": _commented("en"), "de.py": _commented("de"), "ru.py": f"# {PARAGRAPHS['ru'][:40]}\nx = 1\n",
             "none.py": "x = 1\nprint(x)\n", "de_doc.py": docstrings}
    write_tree(tmp_path / "code", files)
    src = [{"name": "c", "kind": "code", "format": "code-tree", "paths": [str(tmp_path / "code")]}]
    lang = {"model": str(lid_model_path), "code_comments": {"keep": ["en"], "min_chars": 150}}
    results = run(recipe(src, language=lang), tmp_path / "on", local_engine, ["ingest", "language"])
    dropped = read_parts(tmp_path / "on" / "language" / "dropped").to_pylist()
    assert [(r["id"].rsplit("/", 1)[-1], r["drop_reason"]) for r in dropped] == [
        ("de.py", "language.comment_not_kept"), ("de_doc.py", "language.comment_not_kept")]
    assert dropped[0]["drop_detail"].startswith("comment label=de score=")
    kept = {r["id"].rsplit("/", 1)[-1]: r for r in read_parts(tmp_path / "on" / "language").to_pylist()}
    assert kept["en.py"]["comment_lang"] == "en" and kept["en.py"]["comment_lang_score"] > 0.5
    assert kept["ru.py"]["comment_lang"] is None and kept["none.py"]["comment_lang_score"] is None
    assert results[-1].manifest["extra"]["code_comments_judged"] == 3
    from curate.rules.code_metrics import comment_text  # the text the model saw, straight to fastText
    text = comment_text(pa.array([files["de.py"]]), pa.array(["Python"]))
    prepared = language.prepare_texts(text, 10_000)
    assert W.predict(W.model(str(lid_model_path)), prepared)[0][0] == "de"
    assert comment_text(pa.array([docstrings]), pa.array(["Python"])).to_pylist() == [f"{PARAGRAPHS['de']} {PARAGRAPHS['de']}"]

    run(recipe(src, language={"model": str(lid_model_path)}), tmp_path / "off", local_engine, ["ingest", "language"])
    off = read_parts(tmp_path / "off" / "language")
    assert off.num_rows == 5 and "comment_lang" not in off.column_names  # off by default: code is never LID'd
    bad = recipe(src, language={**lang, "code_comments": {"keep": ["eng"]}})
    with pytest.raises(RecipeError, match=r"language\.code_comments\.keep\[0\]: 'eng'"):
        W.check_recipe(bad)
