"""Per-source settings of the row stages: precedence (source > top level > defaults), validation with field
paths, stage identity, and the effect on a run: each source's documents are judged by its own settings."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from curate.errors import RecipeError
from curate.recipe import parse_recipe
from curate.tasks import by_source
from tests.curation_samples import ARITHMETIC, JUNK, KEPT_BY_CURATED
from tests.helpers import read_parts, recipe, run, write_jsonl

TEXT = {"name": "a", "kind": "text", "format": "jsonl", "paths": ["a.jsonl"]}
CODE = {"name": "c", "kind": "code", "format": "jsonl", "paths": ["c.jsonl"]}


def errors_of(raw: dict) -> str:
    with pytest.raises(RecipeError) as exc:
        parse_recipe({"name": "n", **raw}, origin="r.yaml")
    return str(exc.value)


def test_source_keys_win_then_top_level_then_defaults():
    r = parse_recipe({"name": "n", "sources": [
        {**TEXT, "language": {"min_score": 0.3}, "quality": {"profile": "curated", "thresholds": {"mojibake": 0.05}}},
        {**TEXT, "name": "b"}, CODE],
        "language": {"min_score": 0.5, "max_chars": 500}, "quality": {"thresholds": {"gopher_min_words": 20}},
        "ingest": {"max_bytes": 1000}})
    a, b = r.settings("language", "a"), r.settings("language", "b")
    assert (a.min_score, a.max_chars, a.keep) == (0.3, 500, ["en"])  # own, top level, default
    assert (b.min_score, b.max_chars) == (0.5, 500)
    # a source's value replaces the top level's whole: its thresholds dict is its own
    assert r.settings("quality", "a").thresholds == {"mojibake": 0.05}
    assert r.settings("quality", "b").thresholds == {"gopher_min_words": 20}
    assert r.settings("ingest", "a").max_bytes == 1000
    assert [r.quality_profile(s) for s in ("a", "b", "c")] == ["curated", "web", "code"]
    assert r.settings("language", None) is r.language


def test_effective_settings_show_what_differs_and_always_profile_and_identify():
    r = parse_recipe({"name": "n", "sources": [
        {**TEXT, "lang": "en", "language": {"identify": False}, "quality": {"profile": "none"}}, CODE]})
    assert r.effective_settings("language") == {"a": {"identify": False}, "c": {}}
    assert r.effective_settings("quality") == {"a": {"profile": "none"}, "c": {"profile": "code"}}
    assert r.effective_settings("ingest") == {"a": {}, "c": {}}


@pytest.mark.parametrize(("raw", "expected"), [
    ({"sources": [{**TEXT, "near_dedup": {"threshold": 0.5}}]},
     "r.yaml: sources[0].near_dedup: a global stage takes no per-source section (it compares documents across sources)"),
    ({"sources": [{**TEXT, "pack": {"seq_len": 8}}]}, "sources[0].pack: a global stage takes no per-source section"),
    ({"sources": [TEXT, {**TEXT, "name": "b", "quality": {"profile": "curatd"}}]},
     "r.yaml: sources[1].quality.profile: unknown profile 'curatd'; did you mean 'curated'?"),
    ({"sources": [TEXT], "quality": {"profile": "webb"}}, "r.yaml: quality.profile: unknown profile 'webb'; did you mean 'web'?"),
    ({"sources": [{**TEXT, "quality": {"profil": "web"}}]}, "r.yaml: sources[0].quality.profil: unknown key; did you mean 'profile'?"),
    ({"sources": [{**TEXT, "language": {"min_score": 2}}]}, "r.yaml: sources[0].language.min_score: Input should be less than or equal to 1"),
    ({"sources": [{**TEXT, "ingest": {"max_bytes": "big"}}]}, "r.yaml: sources[0].ingest.max_bytes: Input should be a valid integer"),
    ({"sources": [{**TEXT, "quality": {"disable": ["gopher_min_word"]}}]},
     "r.yaml: sources[0].quality.disable[0]: unknown rule 'gopher_min_word'; did you mean 'gopher_min_words'?"),
    ({"sources": [{**TEXT, "language": {"identify": False}}]},
     "r.yaml: sources[0].language.identify: false needs the source's language: set sources[0].lang (e.g. en) or sources[0].lang_field"),
    ({"sources": [TEXT], "language": {"identify": False}},
     "r.yaml: language.identify (applies to sources[0] 'a'): false needs the source's language"),
    ({"sources": [CODE], "quality": {"profile": "curated"}},
     "r.yaml: quality.profile (applies to sources[0] 'c'): profile 'curated' has no rule for code documents"),
    ({"sources": [{**TEXT, "quality": {"profiles": {"x": {"base": "web"}}}}]},
     "r.yaml: sources[0].quality.profiles: profiles are defined at the top level"),
    ({"sources": [TEXT], "quality": {"profiles": {"mine": {"base": "curted"}}}},
     "r.yaml: quality.profiles.mine.base: unknown profile 'curted'; did you mean 'curated'?"),
    ({"sources": [TEXT], "quality": {"profiles": {"p": {"base": "q"}, "q": {"base": "p"}}}},
     "quality.profiles.p.base: profiles based on each other in a circle (p -> q -> p)"),
    ({"sources": [TEXT], "quality": {"profiles": {"web": {"base": "curated"}}}}, "quality.profiles.web: 'web' is a built-in profile"),
    ({"sources": [TEXT], "quality": {"profiles": {"p": {"base": "web", "enable": ["lorem"]}}}},
     "quality.profiles.p.enable[0]: unknown rule 'lorem'"),
])
def test_each_source_mistake_names_its_field(raw, expected):
    assert expected in errors_of(raw)


def test_identify_false_is_accepted_with_lang_or_lang_field():
    parse_recipe({"name": "n", "sources": [{**TEXT, "lang": "en", "language": {"identify": False}},
                                           {**TEXT, "name": "b", "lang_field": "l", "language": {"identify": False}}]})


def test_a_recipe_profile_refines_its_base():
    r = parse_recipe({"name": "n", "sources": [{**TEXT, "quality": {"profile": "mine"}}], "quality": {"profiles": {
        "mine": {"base": "curated", "enable": ["c4_curly_brace"], "disable": ["menu_lines"],
                 "thresholds": {"gopher_min_words": 5}}}}})
    from curate.stages.quality import active_rules

    cfg = r.settings("quality", "a")
    rules = {x.id: x.threshold for x in active_rules(cfg.thresholds, cfg.disable, r.quality_profile("a"), cfg.profiles)}
    assert rules["c4_curly_brace"] == 0 and rules["gopher_min_words"] == 5 and "menu_lines" not in rules
    assert rules["mojibake"] == 0.0004  # inherited from curated at the rule's own threshold


def test_a_source_override_changes_only_its_stage_identity():
    base = {"name": "n", "sources": [TEXT, {**TEXT, "name": "b"}]}
    over = {"name": "n", "sources": [{**TEXT, "quality": {"profile": "curated"}}, {**TEXT, "name": "b"}]}
    r1, r2 = parse_recipe(base), parse_recipe(over)
    assert r1.config_hash("quality") != r2.config_hash("quality")
    for stage in ("ingest", "exact_dedup", "near_dedup", "language", "tokenize", "pack"):
        assert r1.config_hash(stage) == r2.config_hash(stage), stage


def test_by_source_puts_each_sources_decision_back_in_row_order():
    import pyarrow as pa

    t = pa.table({"id": list("abcde"), "source": ["x", "y", "x", "z", "y"]})
    seen = []

    def decide(rows, source):
        seen.append((source, rows["id"].to_pylist()))
        return rows.append_column("tag", pa.array([source] * rows.num_rows))

    out = by_source(t, decide)
    assert out["id"].to_pylist() == list("abcde")
    assert out["tag"].to_pylist() == ["x", "y", "x", "z", "y"]
    assert sorted(seen) == [("x", ["a", "c"]), ("y", ["b", "e"]), ("z", ["d"])]


def test_each_source_is_judged_by_its_own_settings(tmp_path, local_engine, lid_model_path):
    """The same documents under two sources: `web` drops the edited kinds, `curated` keeps them; junk is
    dropped by both; a source with `identify: false` keeps its arithmetic item whatever lid.176 says."""
    docs = [{"text": t} for t in [*KEPT_BY_CURATED.values(), *JUNK.values()]]
    write_jsonl(tmp_path / "web.jsonl", docs)
    write_jsonl(tmp_path / "cur.jsonl", docs)
    write_jsonl(tmp_path / "math.jsonl", [{"text": ARITHMETIC}] * 1 + [{"text": "What is 7 divided by 3?\n7/3"}])
    r = recipe([
        {"name": "web", "kind": "text", "format": "jsonl", "paths": [str(tmp_path / "web.jsonl")], "lang": "en",
         "language": {"identify": False}},
        {"name": "cur", "kind": "text", "format": "jsonl", "paths": [str(tmp_path / "cur.jsonl")], "lang": "en",
         "language": {"identify": False}, "quality": {"profile": "curated"},
         "ingest": {"max_bytes": 4_000_000}},
        {"name": "math", "kind": "text", "format": "jsonl", "paths": [str(tmp_path / "math.jsonl")], "lang": "en",
         "language": {"identify": False}, "quality": {"profile": "curated"}},
    ], language={"model": str(lid_model_path)}, ingest={"max_bytes": 500_000})
    run(r, tmp_path / "w", local_engine, ["ingest", "language", "quality"])
    kept = read_parts(tmp_path / "w" / "quality")
    by_src = {s: sorted(i for i, src in zip(kept["id"].to_pylist(), kept["source"].to_pylist()) if src == s)
              for s in ("web", "cur", "math")}
    n_good = len(KEPT_BY_CURATED)
    assert by_src["cur"] == sorted(f"cur/cur.jsonl#{i + 1}" for i in range(n_good))
    assert by_src["web"] == []  # every edited kind fails a web rule, the book is over web's ingest max_bytes
    assert by_src["math"] == ["math/math.jsonl#1", "math/math.jsonl#2"]
    assert kept.filter(pa_equal(kept["source"], "math"))["lang_score"].null_count == 2
    dropped = pq.read_table(tmp_path / "w" / "ingest" / "dropped").to_pylist()
    assert [(d["source"], d["drop_reason"]) for d in dropped] == [("web", "ingest.too_large")]
    qdrop = pq.read_table(tmp_path / "w" / "quality" / "dropped").to_pylist()
    assert all(d["drop_detail"].startswith(f"profile={'curated' if d['source'] == 'cur' else 'web'} ") for d in qdrop)
    # the effective settings per source are recorded in the manifest and shown by the stats report
    import json

    from stats.report import build_report

    manifest = json.loads((tmp_path / "w" / "quality" / "_manifest.json").read_text())
    assert manifest["source_settings"] == {"web": {"profile": "web"}, "cur": {"profile": "curated"},
                                           "math": {"profile": "curated"}}
    lang = json.loads((tmp_path / "w" / "language" / "_manifest.json").read_text())["source_settings"]
    assert lang["math"]["identify"] is False and lang["web"]["identify"] is False
    build_report(str(tmp_path / "w"), str(tmp_path / "report"))
    report = (tmp_path / "report" / "report.md").read_text()
    assert "| quality | cur | profile=\"curated\" |" in report


def pa_equal(column, value):
    import pyarrow.compute as pc

    return pc.equal(column, value)


def test_the_default_language_model_is_found_from_any_folder(tmp_path, lid_model_path):
    """`curate validate` in a folder that is not the checkout: the default model comes from CURATE_HOME."""
    import os
    import subprocess
    import sys

    write_jsonl(tmp_path / "a.jsonl", [{"text": "hello"}])
    (tmp_path / "r.yaml").write_text("name: r\nsources:\n  - {name: a, kind: text, format: jsonl, paths: [a.jsonl]}\n")
    home = lid_model_path.parent.parent  # CURATE_HOME/assets/lid.176.ftz
    env = {**os.environ, "CURATE_HOME": str(home)}
    ok = subprocess.run([sys.executable, "-m", "curate.cli", "validate", "r.yaml"], cwd=tmp_path, env=env,
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    env["CURATE_HOME"] = str(tmp_path / "empty-home")
    missing = subprocess.run([sys.executable, "-m", "curate.cli", "validate", "r.yaml"], cwd=tmp_path, env=env,
                             capture_output=True, text=True)
    assert missing.returncode == 2
    assert f"language.model: file not found: {tmp_path / 'empty-home' / 'assets' / 'lid.176.ftz'} (run `curate assets`)" in missing.stderr
