"""End to end: conservation, determinism (Ray == in-process, any workdir), skip, resume, explain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curate import pipeline
from curate.cli import main
from curate.errors import StageError
from curate.ledger import Ledger
from tests.helpers import file_bytes, recipe, run
from tests.stages.test_exact_dedup import planted_corpus

STAGES = ["ingest", "exact_dedup"]


def corpus(tmp_path):
    sources, _ = planted_corpus(tmp_path / "data")
    return recipe(sources, ingest={"partition_bytes": 1024})


def manifests(workdir: Path) -> dict[str, dict]:
    return {s: json.loads((workdir / s / "_manifest.json").read_text()) for s in STAGES}


def test_conservation_per_stage_and_source(tmp_path, local_engine):
    run(corpus(tmp_path), tmp_path / "w", local_engine, STAGES)
    m = manifests(tmp_path / "w")
    for stage, man in m.items():
        for source, c in man["ledger"].items():
            assert c["docs_in"] == c["docs_kept"] + sum(c["docs_dropped"].values()), (stage, source)
            assert c["bytes_in"] == c["bytes_kept"] + sum(c["bytes_dropped"].values()), (stage, source)
    for before, after in zip(STAGES, STAGES[1:]):  # every stage reads exactly what the one before kept
        for source, c in m[after]["ledger"].items():
            kept = m[before]["ledger"][source]
            assert (c["docs_in"], c["bytes_in"]) == (kept["docs_kept"], kept["bytes_kept"]), (after, source)


def test_conservation_violation_fails_the_stage():
    led = Ledger.from_json("x", {"s": {"docs_in": 3, "docs_kept": 1, "docs_dropped": {"x.y": 1}, "bytes_in": 0,
                                       "bytes_kept": 0, "bytes_dropped": {"x.y": 0}}})
    with pytest.raises(StageError, match="3 docs in != 1 kept \\+ 1 dropped"):
        led.check_conservation()
    ok = Ledger.from_json("x", {"s": {"docs_in": 2, "docs_kept": 1, "docs_dropped": {"x.y": 1}, "bytes_in": 0,
                                      "bytes_kept": 0, "bytes_dropped": {"x.y": 0}}})
    with pytest.raises(StageError, match="read 2 docs but the previous stage kept 5"):
        ok.check_conservation({"s": (5, 0)})
    with pytest.raises(StageError, match="read 0 bytes but the previous stage kept 40"):  # a stage that lost bytes
        ok.check_conservation({"s": (2, 40)})
    ok.check_conservation({"s": (2, 0)})


@pytest.mark.ray
def test_ray_and_in_process_give_byte_identical_parts(tmp_path, local_engine, ray_engine):
    r = corpus(tmp_path)
    run(r, tmp_path / "local", local_engine, STAGES)
    run(r, tmp_path / "ray", ray_engine, STAGES)
    for stage in STAGES:
        local, ray = file_bytes(tmp_path / "local" / stage), file_bytes(tmp_path / "ray" / stage)
        assert local and local == ray
    assert manifests(tmp_path / "local")["exact_dedup"]["output_fingerprint"] == \
        manifests(tmp_path / "ray")["exact_dedup"]["output_fingerprint"]


def test_up_to_date_stage_is_skipped_and_config_change_redoes_it(tmp_path, local_engine):
    r = corpus(tmp_path)
    first = run(r, tmp_path / "w", local_engine, STAGES)
    assert [x.skipped for x in first] == [False, False]
    again = run(r, tmp_path / "w", local_engine, STAGES)
    assert [x.skipped for x in again] == [True, True]
    changed = recipe([s.model_dump(exclude_none=True) for s in r.sources], ingest={"partition_bytes": 1024},
                     exact_dedup={"normalize": "whitespace"})
    third = run(changed, tmp_path / "w", local_engine, STAGES)
    assert [x.skipped for x in third] == [True, False]
    forced = run(r, tmp_path / "w", local_engine, ["exact_dedup"], force=True)
    assert not forced[0].skipped


def test_interrupted_stage_resumes_with_identical_output(tmp_path, local_engine, monkeypatch):
    r = corpus(tmp_path)
    run(r, tmp_path / "clean", local_engine, STAGES)

    from curate.stages import exact_dedup

    real = exact_dedup.mark_losers
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated crash in the middle of the stage")
        return real(*args, **kwargs)

    monkeypatch.setattr(exact_dedup, "mark_losers", failing)
    with pytest.raises(RuntimeError):
        run(r, tmp_path / "w", local_engine, STAGES)
    assert not (tmp_path / "w/exact_dedup/_manifest.json").exists()
    assert len(list((tmp_path / "w/exact_dedup/_parts").glob("*.json"))) == 2
    assert not list((tmp_path / "w/exact_dedup").rglob(".tmp-*"))
    monkeypatch.setattr(exact_dedup, "mark_losers", real)

    results = run(r, tmp_path / "w", local_engine, STAGES)
    assert results[0].skipped and not results[1].skipped
    assert results[1].manifest["partitions"]["reused"] == 2
    assert results[1].manifest["partitions"]["computed"] == results[1].manifest["partitions"]["total"] - 2
    for stage in STAGES:
        assert file_bytes(tmp_path / "w" / stage) == file_bytes(tmp_path / "clean" / stage)


def test_leftovers_of_another_config_are_never_read(tmp_path, local_engine, monkeypatch):
    r = corpus(tmp_path)
    other = recipe([s.model_dump(exclude_none=True) for s in r.sources], ingest={"partition_bytes": 1024},
                   exact_dedup={"normalize": "whitespace"})
    run(r, tmp_path / "clean", local_engine, STAGES)
    run(other, tmp_path / "w", local_engine, STAGES)
    (tmp_path / "w/exact_dedup/_manifest.json").unlink()  # as if that run had been killed before finishing
    res = run(r, tmp_path / "w", local_engine, STAGES)
    assert res[1].manifest["partitions"]["reused"] == 0
    assert file_bytes(tmp_path / "w/exact_dedup") == file_bytes(tmp_path / "clean/exact_dedup")


def test_workdir_does_not_change_outputs(tmp_path, local_engine):
    r = corpus(tmp_path)
    run(r, tmp_path / "a", local_engine, STAGES)
    run(r, tmp_path / "deeper/b", local_engine, STAGES)
    for stage in STAGES:
        assert file_bytes(tmp_path / "a" / stage) == file_bytes(tmp_path / "deeper/b" / stage)


def test_stage_reads_nearest_complete_upstream(tmp_path, local_engine):
    r = corpus(tmp_path)
    with pytest.raises(Exception, match="needs the output of an earlier stage"):
        run(r, tmp_path / "w", local_engine, ["exact_dedup"])
    run(r, tmp_path / "w", local_engine, ["ingest"])
    res = run(r, tmp_path / "w", local_engine, ["exact-dedup"])
    assert res[0].manifest["input"]["stage"] == "ingest"
    assert pipeline.upstream_of("exact_dedup", ["exact_dedup"], tmp_path / "w") == "ingest"


def test_explain_names_stage_reason_and_survivor(tmp_path, local_engine, capsys):
    run(corpus(tmp_path), tmp_path / "w", local_engine, STAGES)
    assert main(["explain", str(tmp_path / "w"), "tree/x.py"]) == 0
    out = capsys.readouterr().out
    assert "ingest: kept" in out and "exact_dedup: DROPPED exact_dedup.duplicate" in out
    assert "detail: web/a.jsonl#10" in out
    assert main(["explain", str(tmp_path / "w"), "web/a.jsonl#10"]) == 0
    assert "exact_dedup: kept" in capsys.readouterr().out
    assert main(["explain", str(tmp_path / "w"), "nope"]) == 1
