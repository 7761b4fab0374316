"""recipes/lemur.yaml validates offline against tiny files in each real dataset's layout and field names,
and a dry run prints its plan. Only the bucket prefix is replaced; formats, globs and fields are the recipe's."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
import zstandard

from curate.cli import main
from tests.conftest import ROOT

BUCKET = "s3://lemur-data/"
STACK_LANGS = {"python": "Python", "sql": "SQL", "shell": "Shell", "java": "Java", "javascript": "JavaScript",
               "typescript": "TypeScript", "c": "C", "c++": "C++", "go": "Go", "rust": "Rust", "perl": "Perl",
               "markdown": "Markdown"}


def the_stack_file(path: Path, lang: str) -> None:
    """The Stack (v1 dedup) parquet schema, a subset of its columns with their real names."""
    rows = [{"hexsha": f"{i:040x}", "size": 20, "ext": "x", "lang": lang, "max_stars_repo_path": f"src/f{i}",
             "max_stars_repo_name": "org/repo", "max_stars_repo_head_hexsha": "0" * 40,
             "max_stars_repo_licenses": ["mit"], "max_stars_count": i, "max_stars_repo_stars_event_min_datetime": None,
             "max_stars_repo_stars_event_max_datetime": "2020-01-01T00:00:00.000Z", "max_forks_count": 0,
             "content": f"print({i})\n", "avg_line_length": 9.0, "max_line_length": 9, "alphanum_fraction": 0.6}
            for i in range(3)]
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = "".join(json.dumps(r) + "\n" for r in records).encode()
    if path.suffix == ".zst":
        payload = zstandard.ZstdCompressor().compress(payload)
    elif path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)


def build_layout(root: Path) -> None:
    for folder, lang in STACK_LANGS.items():
        the_stack_file(root / f"the-stack-dedup/data/{folder}/train-00000-of-00001.parquet", lang)
    rw = [{"content": "An English web page about data.", "url": "https://example.org/a", "timestamp": "2023-01-01",
           "dump": "CC-MAIN-2023-06", "segment": "1", "image_urls": []}]
    (root / "falcon-refinedweb/data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rw), root / "falcon-refinedweb/data/train-00000-of-05534.parquet")
    for subset in ("wikipedia", "book", "arxiv", "stackexchange"):
        jsonl(root / f"redpajama-1t/{subset}/{subset}_sample.jsonl",
              [{"text": f"A {subset} document.", "meta": {"source": subset}}])
    jsonl(root / "slimpajama-627b/train/chunk1/example_train_0.jsonl.zst",
          [{"text": "A common crawl page.", "meta": {"redpajama_set_name": "RedPajamaCommonCrawl"}}])
    jsonl(root / "dm-mathematics/algebra__linear_1d.jsonl.gz", [{"text": "Solve 2*x = 4 for x. Answer: 2"}])


@pytest.fixture
def local_lemur(tmp_path, lid_model_path) -> Path:
    build_layout(tmp_path / "data")
    text = (ROOT / "recipes/lemur.yaml").read_text().replace(BUCKET, f"{tmp_path}/data/")
    path = tmp_path / "lemur.yaml"
    path.write_text(text)
    return path


def test_lemur_recipe_states_the_paper(lid_model_path):
    r = yaml.safe_load((ROOT / "recipes/lemur.yaml").read_text())
    assert r["pack"]["mixture"] == {"code": 10, "text": 1}
    assert r["pack"]["total_tokens"] == 90_000_000_000 and r["pack"]["seq_len"] == 4096
    assert r["tokenize"]["tokenizer"] == "meta-llama/Llama-2-70b-hf"
    assert all(p.startswith(BUCKET) for s in r["sources"] for p in s["paths"])


def test_lemur_validates_offline(local_lemur, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["validate", str(local_lemur)]) == 0
    out = capsys.readouterr().out
    assert "8 sources" in out and "hub name" in out


def test_lemur_dry_run_prints_the_plan(local_lemur, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    assert main(["run", str(local_lemur), "--workdir", str(tmp_path / "w"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "mixture code 10, text 1 by tokens; 90,000,000,000 tokens; sequences of 4096" in out
    assert "the-stack" in out and "12 files" in out
    for stage in ("ingest", "exact_dedup", "near_dedup", "language", "quality", "tokenize", "pack"):
        assert f"  {stage} " in out
    assert not (tmp_path / "w").exists()


def test_lemur_field_names_match_the_layouts(local_lemur, monkeypatch, tmp_path, capsys):
    """Ingest the imitation files: every source yields its documents, none is dropped for a missing field."""
    monkeypatch.chdir(ROOT)
    assert main(["run", str(local_lemur), "--workdir", str(tmp_path / "w"), "--stages", "ingest", "--engine", "local"]) == 0
    ledger = json.loads((tmp_path / "w/ingest/_manifest.json").read_text())["ledger"]
    assert ledger["the-stack"]["docs_kept"] == 3 * len(STACK_LANGS)
    for name in ("refinedweb", "redpajama-wikipedia", "redpajama-book", "redpajama-arxiv", "redpajama-stackexchange",
                 "slimpajama-cc", "dm-mathematics"):
        assert ledger[name]["docs_kept"] == 1 and not ledger[name]["docs_dropped"], name


def test_lemur_settings_reach_the_stages_per_source(local_lemur):
    """Each Lemur source gets the profile and settings its kind needs: web crawl `web`, edited text `curated`
    (books with whole-book max_bytes), DM Mathematics without language ID, The Stack at 1 MB."""
    from curate.recipe import load_recipe

    r = load_recipe(local_lemur)
    profiles = {s.name: r.quality_profile(s.name) for s in r.sources}
    assert profiles == {"the-stack": "code", "refinedweb": "web", "slimpajama-cc": "web",
                        "redpajama-wikipedia": "curated", "redpajama-book": "curated", "redpajama-arxiv": "curated",
                        "redpajama-stackexchange": "curated", "dm-mathematics": "curated"}
    assert r.settings("ingest", "the-stack").max_bytes == 1_048_576
    assert r.settings("ingest", "redpajama-book").max_bytes == 64 * 1_048_576
    assert r.settings("ingest", "refinedweb").max_bytes == 10_485_760
    assert [s.name for s in r.sources if not r.settings("language", s.name).identify] == ["dm-mathematics"]


def test_lemur_curated_sources_keep_their_documents_through_the_stages(local_lemur, monkeypatch, tmp_path):
    """Documents written for each kind, in each source's layout, through ingest, language and quality with the
    recipe's settings: the edited kinds all survive; a web source drops the same book under its web rules."""
    from tests.curation_samples import ARITHMETIC, KEPT_BY_CURATED

    data = Path(str(local_lemur).replace("lemur.yaml", "data"))
    kinds = {"book": KEPT_BY_CURATED["book"], "arxiv": KEPT_BY_CURATED["latex"],
             "stackexchange": KEPT_BY_CURATED["stackexchange"], "wikipedia": KEPT_BY_CURATED["wikitext"]}
    for subset, text in kinds.items():
        jsonl(data / f"redpajama-1t/{subset}/{subset}_sample.jsonl", [{"text": text, "meta": {"source": subset}}])
    jsonl(data / "dm-mathematics/algebra__linear_1d.jsonl.gz", [{"text": ARITHMETIC}])
    jsonl(data / "slimpajama-627b/train/chunk1/example_train_0.jsonl.zst", [{"text": KEPT_BY_CURATED["latex"]}])
    monkeypatch.chdir(ROOT)
    assert main(["run", str(local_lemur), "--workdir", str(tmp_path / "w"), "--stages", "ingest,language,quality",
                 "--engine", "local"]) == 0
    ledger = json.loads((tmp_path / "w/quality/_manifest.json").read_text())["ledger"]
    for name in ("redpajama-book", "redpajama-arxiv", "redpajama-stackexchange", "redpajama-wikipedia", "dm-mathematics"):
        assert ledger[name]["docs_kept"] == 1, (name, ledger[name])
    assert ledger["slimpajama-cc"]["docs_dropped"] == {"quality.c4_curly_brace": 1}
