"""redact in a full run (ingest → redact → tokenize → pack → stats): no original of a positive case in any
byte of the stages after it, the shards (decoded too) or the report; counts per type and source; the
ledger's bytes; a source that turns redaction off."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from curate.stages import redact as R
from tests.helpers import read_parts, recipe, run, write_jsonl
from tests.redact_cases import NEGATIVE, POSITIVE


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    from curate.engine import LocalEngine
    from curate.tokenizer_train import train

    root = tmp_path_factory.mktemp("redact")
    filler = "def helper(values):\n    return [v * 2 for v in values]\n"
    code = [{"id": f"p{i}", "text": filler + doc} for i, (_, doc, _) in enumerate(POSITIVE)]
    code += [{"id": f"n{i}", "text": filler + doc} for i, (_, doc) in enumerate(NEGATIVE)]
    code.append({"id": "dup", "text": code[1]["text"]})  # exact_dedup drops it: the report's example is masked
    raw = [{"id": "r0", "text": filler + "# by keep.me@rawsource-mail.de\n"}]  # its source turns redaction off
    write_jsonl(root / "code.jsonl", code)
    write_jsonl(root / "raw.jsonl", raw)
    train(iter([d["text"] for d in code] * 3), 400, root / "tok.json")
    r = recipe([{"name": "code", "kind": "code", "format": "jsonl", "paths": [str(root / "code.jsonl")],
                 "lang": "Python", "id_field": "id"},
                {"name": "raw", "kind": "code", "format": "jsonl", "paths": [str(root / "raw.jsonl")], "lang": "Python",
                 "id_field": "id", "redact": {"types": []}}],
               tokenize={"tokenizer": str(root / "tok.json")},
               pack={"mixture": {"code": 1, "text": 0}, "seq_len": 64, "shard_tokens": 2000})
    w = root / "w"
    results = {res.stage: res.manifest for res in run(r, w, LocalEngine(), ["ingest", "exact_dedup", "redact", "tokenize", "pack"])}
    from stats.report import build_report

    build_report(str(w), str(root / "report"))
    return root, w, results, code


def test_no_original_in_any_output_byte(done):
    from tokenizers import Tokenizer

    root, w, _, _ = done
    files = [p for d in ("redact", "tokenize", "pack", "shards") for p in (w / d).rglob("*") if p.is_file()]
    files += [p for p in (root / "report").rglob("*") if p.is_file()]
    assert len(files) > 10
    report = (root / "report/report.md").read_text()
    assert "exact_dedup.duplicate" in report and "EMAIL>" in report  # the dropped duplicate's head, masked
    blob = b"".join(p.read_bytes() for p in files)
    tok = Tokenizer.from_file(str(root / "tok.json"))
    decoded = "".join(tok.decode(ids, skip_special_tokens=False)
                      for p in sorted((w / "shards").glob("*.arrow"))
                      for ids in pa.ipc.open_stream(p.read_bytes()).read_all()["input_ids"].to_pylist())
    assert "def helper" in decoded  # the shards hold the documents
    for _, _, value in POSITIVE:
        assert value.encode() not in blob, value
        assert value not in decoded, value


def test_counts_bytes_and_a_source_turned_off(done):
    _, w, results, code = done
    m = results["redact"]
    want = {t: sum(1 for k, _, _ in POSITIVE if k == t) for t in R.TYPES}
    assert {t: m["extra"]["redactions"][t].get("code", 0) for t in R.TYPES} == want
    assert m["extra"]["documents_redacted"] == {"code": len(POSITIVE), "raw": 0}
    ledger = m["ledger"]["code"]
    assert ledger["docs_in"] == ledger["docs_kept"] == len(code) - 1  # the duplicate went in exact_dedup
    assert ledger["bytes_in"] - ledger["bytes_kept"] == ledger["bytes_rewritten"] != 0
    assert "bytes_rewritten" not in m["ledger"]["raw"]
    kept = read_parts(w / "redact")
    raw = kept.filter(pa.compute.equal(kept["source"], "raw"))
    assert "keep.me@rawsource-mail.de" in raw["text"][0].as_py()  # off for this source: unchanged
    assert results["tokenize"]["ledger"]["code"]["bytes_in"] == ledger["bytes_kept"]
    assert json.loads(json.dumps(m["source_settings"]["raw"])) == {"types": []}
