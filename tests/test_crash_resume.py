"""Kill -9 the driver in the middle of every stage (near-dedup's grouping and pack's shard writing included),
rerun, and get output byte-identical to an uninterrupted run, reusing the work that was finished."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import pytest
import yaml

from curate.stagespec import stage_keys
from tests.conftest import ROOT
from tests.helpers import file_bytes
from tests.test_faults import curate, wait_for

STAGES = list(stage_keys())  # every declared stage, decontaminate and redact included


def small_demo_recipe(root: Path, lid_model_path: Path) -> Path:
    """A small demo corpus in `root` (60 stdlib files + the text sources), a recipe over it with many
    partitions (so a kill lands mid-stage), and its trained tokenizer; returns the recipe file."""
    from curate.sample import build_sample

    build_sample(root / "data/demo", max_code_files=60)
    raw = yaml.safe_load((ROOT / "recipes/demo.yaml").read_text())
    for source in raw["sources"]:
        source["paths"] = [p.replace("data/demo", str(root / "data/demo")) for p in source["paths"]]
    raw["ingest"]["partition_bytes"] = 65536
    raw["language"]["model"] = str(lid_model_path)
    raw["tokenize"]["tokenizer"] = str(root / "tok.json")
    raw["pack"]["shard_tokens"] = 65536
    recipe = root / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    trained = curate("train-tokenizer", str(recipe), "--vocab-size", "1024", "--out", str(root / "tok.json"))
    assert trained.returncode == 0, trained.stderr
    return recipe


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory, lid_model_path):
    """The small demo recipe and one uninterrupted run."""
    root = tmp_path_factory.mktemp("crash")
    recipe = small_demo_recipe(root, lid_model_path)
    done = curate("run", str(recipe), "--workdir", str(root / "clean"), "--engine", "local")
    assert done.returncode == 0, done.stderr
    return recipe, root / "clean"


def outputs(workdir: Path, stages: list[str]) -> dict[str, bytes]:
    out = {}
    for s in stages:
        out.update({f"{s}/{k}": v for k, v in file_bytes(workdir / s).items()})
    out.update({f"shards/{p.name}": p.read_bytes() for p in sorted((workdir / "shards").glob("*"))})
    return out


def records(workdir: Path, stage: str) -> int:
    where = [workdir / stage] + ([workdir / "shards"] if stage == "pack" else [])
    return sum(len([p for p in d.rglob("*") if p.suffix in (".json", ".arrow") and not p.name.startswith(".tmp")])
               for d in where if d.exists())


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES)
def test_kill_driver_mid_stage_then_resume(clean_run, tmp_path, stage):
    recipe, clean = clean_run
    work = tmp_path / "w"
    work.mkdir()
    for earlier in STAGES[: STAGES.index(stage)]:  # the finished upstream stages, as a killed run would leave them
        shutil.copytree(clean / earlier, work / earlier)
    rest = ",".join(STAGES[STAGES.index(stage):])
    before = records(work, stage)
    proc = curate("run", str(recipe), "--workdir", str(work), "--engine", "local", "--stages", rest,
                  env={"CURATE_TASK_DELAY": "0.3"}, wait=False)
    try:
        wait_for(lambda: records(work, stage) >= before + 3 or proc.poll() is not None, timeout=120)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (work / stage / "_manifest.json").exists()
    started = time.time()
    rerun = curate("run", str(recipe), "--workdir", str(work), "--engine", "local", "--stages", rest)
    assert rerun.returncode == 0, rerun.stderr
    assert outputs(work, STAGES[STAGES.index(stage):]) == outputs(clean, STAGES[STAGES.index(stage):])
    assert not list(work.rglob(".tmp-*"))
    manifest = json.loads((work / stage / "_manifest.json").read_text())
    assert manifest["finished_at"] >= time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started - 1))


@pytest.mark.slow
def test_every_output_is_independent_of_the_workdir(clean_run, tmp_path):
    """The whole pipeline, shards included, in another (deeper) work directory: byte-identical."""
    recipe, clean = clean_run
    other = tmp_path / "some" / "other" / "place"
    done = curate("run", str(recipe), "--workdir", str(other), "--engine", "local")
    assert done.returncode == 0, done.stderr
    assert outputs(other, STAGES) == outputs(clean, STAGES)
    shard_manifest = (other / "shards" / "manifest.json").read_text()
    assert str(other) not in shard_manifest and str(tmp_path) not in shard_manifest
