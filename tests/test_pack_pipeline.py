"""tokenize + pack end to end: lossless round trip, ledger, loading with datasets, determinism, Ray = local."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from curate import cli
from curate.parts import sha256_file
from tests.helpers import read_parts, recipe, run, write_jsonl

N_CODE, N_TEXT = 240, 60


def _code(i: int) -> str:
    return f"def f{i}(x):\r\n\treturn x * {i}  # café {i}\n" + "".join(f"    y{j} = x + {j}\n" for j in range(10 + i % 30))


def _text(i: int) -> str:
    return f"Paragraph {i}: naïve prose — “quoted” 日本語 {i}. " * (1 + i % 3)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from curate.tokenizer_train import train

    root = tmp_path_factory.mktemp("corpus")
    write_jsonl(root / "code.jsonl", [{"text": _code(i)} for i in range(N_CODE)])
    write_jsonl(root / "text.jsonl", [{"text": _text(i)} for i in range(N_TEXT)])
    train(iter([_code(i) for i in range(50)] + [_text(i) for i in range(20)]), 600, root / "tok.json")
    return root


def _recipe(corpus: Path, seed: int = 0, **pack):
    pack = {"mixture": {"code": 10, "text": 1}, "max_epochs": {"prose": 2}, "seq_len": 32, "shard_tokens": 4000,
            **pack}
    return recipe([{"name": "py", "kind": "code", "format": "jsonl", "paths": [str(corpus / "code.jsonl")], "lang": "python"},
                   {"name": "prose", "kind": "text", "format": "jsonl", "paths": [str(corpus / "text.jsonl")], "lang": "en"}],
                  seed=seed, tokenize={"tokenizer": str(corpus / "tok.json")}, pack=pack)


def _shards(workdir: Path) -> list[pa.Table]:
    return [pa.ipc.open_stream(p.read_bytes()).read_all() for p in sorted((workdir / "shards").glob("shard-*.arrow"))]


def _run(corpus, workdir, engine, **kw):
    return run(_recipe(corpus, **kw), workdir, engine, ["ingest", "tokenize", "pack"])


def test_round_trip_ledger_and_manifest(corpus, tmp_path, local_engine):
    """Decoding every sequence and splitting on EOS gives back exactly the planned documents: every text
    document twice (max_epochs 2 bounds the plan), the selected code once, the rest `pack.not_selected`."""
    from tokenizers import Tokenizer

    results = _run(corpus, tmp_path, local_engine)
    tok = Tokenizer.from_file(str(corpus / "tok.json"))
    eos = tok.token_to_id("<|endoftext|>")
    stream = []
    for t in _shards(tmp_path):
        for ids, pad in zip(t["input_ids"].to_pylist(), t["n_pad_tokens"].to_pylist()):
            stream.extend(ids[: len(ids) - pad])
    bounds = [-1, *np.nonzero(np.array(stream) == eos)[0]]
    assert bounds[-1] == len(stream) - 1  # nothing after the last EOS: no document was cut
    got = Counter(tok.decode(stream[a + 1:b], skip_special_tokens=False) for a, b in zip(bounds, bounds[1:]))

    pack = results[-1].manifest
    dropped = read_parts(tmp_path / "pack" / "dropped")
    not_selected = set(dropped["id"].to_pylist())
    tokenized = read_parts(tmp_path / "tokenize")
    want = Counter()
    for doc_id, text, kind in zip(*(tokenized[c].to_pylist() for c in ("id", "text", "kind"))):
        if kind == "text":
            want[text] += 2
        elif doc_id not in not_selected:
            want[text] += 1
    assert got == want
    assert 0 < len(not_selected) < N_CODE
    assert set(dropped["drop_reason"].to_pylist()) == {"pack.not_selected"}
    ledger = pack["ledger"]
    assert ledger["py"]["docs_in"] == N_CODE == ledger["py"]["docs_kept"] + ledger["py"]["docs_dropped"]["pack.not_selected"]
    assert ledger["prose"]["docs_kept"] == N_TEXT

    manifest = json.loads((tmp_path / "shards" / "manifest.json").read_text())
    assert manifest["plan"]["bound"] == "source prose" and manifest["tokenizer"]["eos_id"] == eos
    assert len(manifest["shards"]) >= 2
    for s in manifest["shards"]:
        assert sha256_file(tmp_path / "shards" / s["file"]) == s["sha256"]
        assert abs(s["code_tokens"] / s["text_tokens"] / 10 - 1) <= 0.01
    assert manifest["totals"]["text_tokens"] == 2 * results[-2].manifest["extra"]["tokens_text"]

    from curate.explain import explain  # every document's fate, through the shards
    text_id = tokenized["id"].to_pylist()[tokenized["kind"].to_pylist().index("text")]
    assert explain(tmp_path, text_id)[-1].startswith("pack: packed, 2 copies, starting in shard-")
    code_id = next(i for i, k in zip(tokenized["id"].to_pylist(), tokenized["kind"].to_pylist())
                   if k == "code" and i not in not_selected)
    assert explain(tmp_path, code_id)[-1].startswith("pack: packed, 1 copy, starting in shard-")
    assert any(line.startswith("pack: DROPPED pack.not_selected") for line in explain(tmp_path, next(iter(not_selected))))


def test_shards_load_with_datasets_and_pyarrow(corpus, tmp_path, local_engine):
    import datasets

    _run(corpus, tmp_path, local_engine)
    shard = sorted((tmp_path / "shards").glob("shard-*.arrow"))[0]
    table = _shards(tmp_path)[0]
    ds = datasets.Dataset.from_file(str(shard))
    assert ds.num_rows == table.num_rows
    assert ds[0]["input_ids"] == table["input_ids"][0].as_py() and len(ds[0]["input_ids"]) == 32
    assert ds[-1]["doc_ids"] == table["doc_ids"][-1].as_py()


def test_byte_identical_reruns_and_seed_changes_order_only(corpus, tmp_path, local_engine):
    _run(corpus, tmp_path / "a", local_engine)
    _run(corpus, tmp_path / "b", local_engine)
    _run(corpus, tmp_path / "c", local_engine, seed=7)
    files = {w: sorted((tmp_path / w / "shards").glob("shard-*.arrow")) for w in "abc"}
    assert [p.read_bytes() for p in files["a"]] == [p.read_bytes() for p in files["b"]]
    assert [p.read_bytes() for p in files["a"]] != [p.read_bytes() for p in files["c"]]
    totals = {w: json.loads((tmp_path / w / "shards" / "manifest.json").read_text())["totals"] for w in "ac"}
    assert {k: v for k, v in totals["a"].items() if k != "bytes"} == {k: v for k, v in totals["c"].items() if k != "bytes"}


@pytest.mark.ray
def test_ray_matches_local(corpus, tmp_path, local_engine, ray_engine):
    _run(corpus, tmp_path / "local", local_engine)
    _run(corpus, tmp_path / "ray", ray_engine)
    local = sorted((tmp_path / "local" / "shards").glob("shard-*.arrow"))
    ray = sorted((tmp_path / "ray" / "shards").glob("shard-*.arrow"))
    assert len(local) >= 2 and [p.read_bytes() for p in local] == [p.read_bytes() for p in ray]


def test_cli_refuses_a_bad_tokenizer_before_work(corpus, tmp_path, capsys):
    bad = tmp_path / "r.yaml"
    bad.write_text(json.dumps({"name": "t", "sources": [{"name": "py", "kind": "code", "format": "jsonl",
                                                         "paths": [str(corpus / "code.jsonl")]}],
                               "tokenize": {"tokenizer": str(tmp_path / "nope.json")}}))
    assert cli.main(["validate", str(bad)]) == 2
    assert cli.main(["run", str(bad), "--engine", "local", "--workdir", str(tmp_path / "w")]) == 2
    assert "tokenize.tokenizer" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_empty_text_side_is_a_clear_error(corpus, tmp_path, local_engine):
    from curate.errors import StageError

    r = recipe([{"name": "py", "kind": "code", "format": "jsonl", "paths": [str(corpus / "code.jsonl")]}],
               tokenize={"tokenizer": str(corpus / "tok.json")}, pack={"seq_len": 32})
    with pytest.raises(StageError, match="no text document reaches pack"):
        run(r, tmp_path, local_engine, ["ingest", "tokenize", "pack"])
