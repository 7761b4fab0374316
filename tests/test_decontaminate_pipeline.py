"""decontaminate in a run: user benchmarks (jsonl.gz and parquet), per-source settings, manifest counts,
the stats report, a changed benchmark file redoing the stage, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq

from curate.stagespec import stage_keys
from stats.artifacts import Workdir
from stats.collect import collect
from tests.conftest import ROOT
from tests.helpers import read_parts, recipe, run, write_jsonl, write_parquet

SOLUTION = ("def count_vowels(word):\n    \"\"\"Count how many vowels the given word contains, ignoring case and "
            "treating y as a consonant.\"\"\"\n    return sum(1 for ch in word.lower() if ch in 'aeiou')\n")
QUESTION = ("Natalie sold clips to forty eight of her friends in April and then she sold half as many clips in May "
            "how many clips did she sell altogether")


def corpus(tmp_path):
    code = [{"id": f"c{i}", "text": f"# module {i}\nimport os\n\ndef f{i}(x):\n    return x + {i}\n"} for i in range(6)]
    code[2]["text"] = "import re\n\n" + SOLUTION.replace("count_vowels", "vowels") + "\nprint(vowels('x'))\n"
    code[4]["text"] = "class A:\n" + "\n".join("    " + line for line in SOLUTION.splitlines())
    text = [{"id": f"t{i}", "text": f"A plain paragraph number {i} about gardens and rain."} for i in range(4)]
    text[1]["text"] = "Homework help: " + QUESTION.upper() + "? I think 72."
    notes = [{"id": "n0", "text": "Notes: " + QUESTION}]  # the same contamination, in a source that opts out
    write_jsonl(tmp_path / "src/code.jsonl", code)
    write_jsonl(tmp_path / "src/text.jsonl", text)
    write_jsonl(tmp_path / "src/notes.jsonl", notes)
    write_jsonl(tmp_path / "bench/code.jsonl.gz", [{"task_id": "T/0", "prompt": SOLUTION, "solution": ""},
                                                   {"task_id": "T/1", "prompt": "def unrelated(): pass", "solution": ""}],
                compression="gzip")
    write_parquet(tmp_path / "bench/math.parquet", [{"question": QUESTION, "answer": "72"}])
    benchmarks = [{"name": "mycode", "format": "jsonl", "paths": [str(tmp_path / "bench/code.jsonl.gz")],
                   "fields": ["prompt", "solution"], "id_field": "task_id"},
                  {"name": "mymath", "format": "parquet", "paths": [str(tmp_path / "bench/*.parquet")],
                   "fields": ["question"]}]
    return recipe([{"name": "code", "kind": "code", "format": "jsonl", "paths": [str(tmp_path / "src/code.jsonl")],
                    "lang": "Python", "id_field": "id"},
                   {"name": "text", "kind": "text", "format": "jsonl", "paths": [str(tmp_path / "src/text.jsonl")],
                    "id_field": "id"},
                   {"name": "notes", "kind": "text", "format": "jsonl", "paths": [str(tmp_path / "src/notes.jsonl")],
                    "id_field": "id", "decontaminate": {"benchmarks": []}}],
                  decontaminate={"benchmarks": benchmarks})


def test_contaminated_documents_are_dropped_and_counted(tmp_path, local_engine):
    r = corpus(tmp_path)
    w = tmp_path / "w"
    results = run(r, w, local_engine, ["ingest", "decontaminate"])
    m = results[-1].manifest
    dropped = {d["id"]: d for p in sorted((w / "decontaminate/dropped").glob("*.parquet"))
               for d in pq.read_table(p).to_pylist()}
    assert sorted(dropped) == ["code/c2", "code/c4", "text/t1"]
    assert dropped["code/c2"]["drop_detail"].startswith("benchmark=mycode item=T/0 matches=")
    assert dropped["text/t1"]["drop_detail"] == "benchmark=mymath item=0 matches=16"  # 28 words: 16 13-grams
    assert "notes/n0" in read_parts(w / "decontaminate")["id"].to_pylist()  # its source turned the stage off
    assert m["extra"]["contaminated"] == {"mycode": {"code": 2}, "mymath": {"text": 1}}
    assert m["extra"]["items"] == {"mycode/T/0": 2, "mymath/0": 1}
    assert m["source_settings"]["notes"] == {"benchmarks": []}
    assert m["totals"]["docs_in"] == 11 and m["totals"]["docs_kept"] == 8
    stats = collect(Workdir.open(str(w)))["contamination"]
    assert stats["per_benchmark"] == [["mycode", "code", 2], ["mymath", "text", 1]]
    assert stats["top_items"] == [["mycode/T/0", 2], ["mymath/0", 1]]


def test_a_changed_benchmark_file_redoes_the_stage(tmp_path, local_engine):
    r = corpus(tmp_path)
    w = tmp_path / "w"
    run(r, w, local_engine, ["ingest", "decontaminate"])
    assert run(r, w, local_engine, ["ingest", "decontaminate"])[-1].skipped
    write_parquet(tmp_path / "bench/math.parquet", [{"question": "something else entirely", "answer": "1"}])
    again = run(r, w, local_engine, ["ingest", "decontaminate"])[-1]
    assert not again.skipped and again.manifest["extra"]["contaminated"] == {"mycode": {"code": 2}}


def test_cli_runs_decontaminate_and_redact_by_name_and_by_default(tmp_path):
    assert "decontaminate" in stage_keys()
    proc = subprocess.run([sys.executable, "-m", "curate.cli", "run", "recipes/demo.yaml", "--stages",
                           "decontaminate", "--dry-run", "--workdir", str(tmp_path / "w")], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "decontaminate" in proc.stdout
    default = subprocess.run([sys.executable, "-m", "curate.cli", "run", "recipes/demo.yaml", "--dry-run",
                              "--workdir", str(tmp_path / "w")], cwd=ROOT, capture_output=True, text=True)
    assert default.returncode == 0, default.stderr
    stages = [line.split()[0] for line in default.stdout.split("stages:")[1].splitlines()[1:] if line.startswith("  ")]
    assert stages[stages.index("quality"):stages.index("pack") + 1] == ["quality", "decontaminate", "redact", "tokenize", "pack"]
    named = subprocess.run([sys.executable, "-m", "curate.cli", "run", "recipes/demo.yaml", "--stages", "redact",
                            "--dry-run", "--workdir", str(tmp_path / "w")], cwd=ROOT, capture_output=True, text=True)
    assert named.returncode == 0, named.stderr


def test_a_missing_benchmark_file_is_refused_before_work(tmp_path):
    path = tmp_path / "r.yaml"
    raw = {"name": "t", "sources": [{"name": "a", "kind": "text", "format": "jsonl", "paths": [str(tmp_path / "a.jsonl")]}],
           "decontaminate": {"benchmarks": [{"name": "gone", "paths": [str(tmp_path / "nope.jsonl")],
                                             "fields": ["q"]}]}}
    write_jsonl(tmp_path / "a.jsonl", [{"text": "hi"}])
    path.write_text(json.dumps(raw))
    proc = subprocess.run([sys.executable, "-m", "curate.cli", "run", str(path), "--stages", "ingest,decontaminate",
                           "--engine", "local", "--workdir", str(tmp_path / "w")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "decontaminate.benchmarks[gone].paths[0]: no file matches" in proc.stderr
