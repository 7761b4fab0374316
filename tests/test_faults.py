"""Faults: a driver killed mid-stage resumes to identical output; full and read-only disks and vanishing
inputs give clear errors and no corrupt manifest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.helpers import file_bytes, write_jsonl
from tests.stages.test_exact_dedup import planted_corpus


def write_recipe(tmp_path: Path, sources: list[dict], **sections) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"name": "faults", "sources": sources, **sections}))
    return path


def curate(*args: str, env: dict | None = None, wait: bool = True, cwd: Path | None = None):
    cmd = [sys.executable, "-m", "curate.cli", *args]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    if wait:
        return subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=300, cwd=cwd)
    return subprocess.Popen(cmd, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=cwd)


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["ingest", "exact_dedup"])
def test_kill_minus_9_mid_stage_then_resume(tmp_path, stage):
    sources, _ = planted_corpus(tmp_path / "data")
    recipe = write_recipe(tmp_path, sources, ingest={"partition_bytes": 1024})
    stages = "ingest,exact_dedup"
    clean = curate("run", str(recipe), "--workdir", str(tmp_path / "clean"), "--engine", "local", "--stages", stages)
    assert clean.returncode == 0, clean.stderr

    work = tmp_path / "w"
    proc = curate("run", str(recipe), "--workdir", str(work), "--engine", "local", "--stages", stages,
                  env={"CURATE_TASK_DELAY": "0.4"}, wait=False)
    wait_for(lambda: len(list((work / stage / "_parts").glob("*.json"))) >= 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (work / stage / "_manifest.json").exists()

    rerun = curate("run", str(recipe), "--workdir", str(work), "--engine", "local", "--stages", stages)
    assert rerun.returncode == 0, rerun.stderr
    manifest = json.loads((work / stage / "_manifest.json").read_text())
    assert manifest["partitions"]["reused"] >= 2
    assert manifest["partitions"]["reused"] + manifest["partitions"]["computed"] == manifest["partitions"]["total"]
    for s in stages.split(","):
        assert file_bytes(work / s) == file_bytes(tmp_path / "clean" / s)
    assert not list(work.rglob(".tmp-*"))


@pytest.fixture
def mount_point(tmp_path):
    """A real small tmpfs (root only); unmounted after the test."""
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounted = []

    def mount(options: str) -> Path:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mp)], capture_output=True).returncode:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        mounted.append(mp)
        return mp

    yield mount
    for m in mounted:
        subprocess.run(["umount", "-l", str(m)], check=False)


def big_corpus(tmp_path: Path) -> list[dict]:
    write_jsonl(tmp_path / "data/big.jsonl", [{"text": f"{i} " + os.urandom(600).hex()} for i in range(600)])
    return [{"name": "big", "kind": "text", "format": "jsonl", "paths": [str(tmp_path / "data/big.jsonl")]}]


def test_disk_full_is_a_clear_error_and_leaves_no_manifest(tmp_path, mount_point):
    work = mount_point("size=256k")
    recipe = write_recipe(tmp_path, big_corpus(tmp_path))
    proc = curate("run", str(recipe), "--workdir", str(work), "--engine", "local", "--stages", "ingest")
    assert proc.returncode == 1
    assert "No space left on device" in proc.stderr and "Traceback" not in proc.stderr
    assert not (work / "ingest" / "_manifest.json").exists()


def test_read_only_workdir_is_a_clear_error(tmp_path, mount_point):
    work = mount_point("ro,size=64k")
    recipe = write_recipe(tmp_path, big_corpus(tmp_path))
    proc = curate("run", str(recipe), "--workdir", str(work / "w"), "--engine", "local", "--stages", "ingest")
    assert proc.returncode == 2  # refused before any work, like a bucket that cannot be written
    assert "Read-only file system" in proc.stderr and str(work) in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_workdir_under_a_file_is_refused_before_any_work(tmp_path):
    (tmp_path / "afile").write_text("x")
    recipe = write_recipe(tmp_path, big_corpus(tmp_path))
    proc = curate("run", str(recipe), "--workdir", str(tmp_path / "afile" / "w"), "--engine", "local")
    assert proc.returncode == 2
    assert "is a file, not a folder" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["deleted", "truncated"])
def test_input_changed_after_planning_is_a_clear_error(tmp_path, fault):
    for i in range(4):
        write_jsonl(tmp_path / f"data/f{i}.jsonl.gz", [{"text": f"doc {i}-{j} " * 40} for j in range(300)], "gzip")
    sources = [{"name": "s", "kind": "text", "format": "jsonl", "paths": [str(tmp_path / "data/*.jsonl.gz")]}]
    recipe = write_recipe(tmp_path, sources)
    work = tmp_path / "w"
    proc = curate("run", str(recipe), "--workdir", str(work), "--engine", "local", "--stages", "ingest",
                  env={"CURATE_TASK_DELAY": "0.5"}, wait=False)
    wait_for(lambda: len(list((work / "ingest" / "_parts").glob("*.json"))) >= 1)
    victim = tmp_path / "data/f3.jsonl.gz"
    if fault == "deleted":
        victim.unlink()
    else:
        victim.write_bytes(victim.read_bytes()[:200])
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "f3.jsonl.gz" in err and "Traceback" not in err
    assert not (work / "ingest" / "_manifest.json").exists()
