"""`curate train-quality` on a generated separable dataset, and the quality stage scoring with the model."""

from __future__ import annotations

import random
import re

from curate.cli import main
from curate.rules.table import rule_ids
from tests.helpers import read_parts, recipe, run, write_jsonl, write_parquet

GOOD = "river mountain library garden teacher science history music forest ocean".split()
BAD = "casino viagra winner clickhere cheap bonus jackpot prize freebet lottery".split()


def docs(vocab: list[str], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(vocab) for _ in range(30)) for _ in range(n)]


def test_train_quality_separates_and_the_stage_uses_the_model(tmp_path, local_engine, capsys):
    write_jsonl(tmp_path / "pos.jsonl", [{"text": t} for t in docs(GOOD, 150, 1)])
    write_parquet(tmp_path / "neg.parquet", [{"text": t} for t in docs(BAD, 150, 2)], row_group_size=50)
    model = tmp_path / "q.bin"
    assert main(["train-quality", "--positive", str(tmp_path / "pos.jsonl"), "--negative",
                 str(tmp_path / "neg.parquet"), "--out", str(model)]) == 0
    out = capsys.readouterr().out
    accuracy = float(re.search(r"held-out accuracy ([0-9.]+) on 60 documents", out).group(1))
    assert accuracy >= 0.95 and model.is_file()

    fresh = docs(GOOD, 5, 3) + docs(BAD, 5, 4)
    write_jsonl(tmp_path / "in.jsonl", [{"text": t, "id": f"d{i}"} for i, t in enumerate(fresh)])
    r = recipe([{"name": "t", "kind": "text", "format": "jsonl", "paths": [str(tmp_path / "in.jsonl")], "id_field": "id"}],
               quality={"disable": rule_ids(),  # random words from 10 repeat n-grams: the classifier alone decides
                        "classifier": {"model": str(model), "min_score": 0.5}})
    run(r, tmp_path / "w", local_engine, ["ingest", "quality"])
    kept = read_parts(tmp_path / "w" / "quality")
    assert sorted(kept["id"].to_pylist()) == [f"t/d{i}" for i in range(5)]
    assert min(kept["quality_classifier_score"].to_pylist()) > 0.5
    dropped = read_parts(tmp_path / "w" / "quality" / "dropped")
    assert set(dropped["drop_reason"].to_pylist()) == {"quality.classifier_low_score"} and dropped.num_rows == 5
