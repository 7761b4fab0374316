"""Ray specifics: a two-node cluster gives the same bytes as a local run; a killed worker is retried."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.helpers import file_bytes, recipe, run
from tests.stages.test_exact_dedup import planted_corpus

STAGES = ["ingest", "exact_dedup"]

CLUSTER_SCRIPT = """
import sys
from pathlib import Path
from ray.cluster_utils import Cluster
from curate import pipeline
from curate.engine import RayEngine
from curate.recipe import load_recipe

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
engine = RayEngine(address=cluster.address)
assert len([n for n in engine.ray.nodes() if n["Alive"]]) == 2
try:
    ctx = pipeline.Context(load_recipe(sys.argv[1]), Path(sys.argv[2]), engine)
    pipeline.run(ctx, sys.argv[3].split(","))
finally:
    engine.ray.shutdown()
    cluster.shutdown()
"""


@pytest.mark.slow
def test_two_node_cluster_matches_local_run(tmp_path, local_engine):
    import yaml

    sources, _ = planted_corpus(tmp_path / "data")
    raw = {"name": "cluster", "sources": sources, "ingest": {"partition_bytes": 1024}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(raw))
    run(recipe(sources, name="cluster", ingest={"partition_bytes": 1024}), tmp_path / "local", local_engine, STAGES)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, "-c", CLUSTER_SCRIPT, str(tmp_path / "r.yaml"), str(tmp_path / "cluster"),
                           ",".join(STAGES)], env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for stage in STAGES:
        assert file_bytes(tmp_path / "cluster" / stage) == file_bytes(tmp_path / "local" / stage)


def _kill_one_worker(done: threading.Event, killed: list) -> None:
    while not done.is_set() and not killed:
        out = subprocess.run(["pgrep", "-f", "ray::run_part"], capture_output=True, text=True).stdout.split()
        if out:
            os.kill(int(out[0]), signal.SIGKILL)
            killed.append(int(out[0]))
        time.sleep(0.02)


@pytest.mark.ray
@pytest.mark.slow
def test_killed_worker_is_retried_with_identical_output(tmp_path, local_engine, ray_engine, monkeypatch):
    sources, _ = planted_corpus(tmp_path / "data")
    r = recipe(sources, ingest={"partition_bytes": 1024})
    run(r, tmp_path / "clean", local_engine, STAGES)
    monkeypatch.setenv("CURATE_TASK_DELAY", "0.3")  # Ray workers inherit the driver's environment at start
    ray_engine.ray.get(ray_engine.ray.remote(lambda: None).remote())
    done, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_one_worker, args=(done, killed))
    killer.start()
    try:
        run(r, tmp_path / "w", ray_engine, STAGES)
    finally:
        done.set()
        killer.join()
    assert killed, "no worker was running a partition to kill"
    for stage in STAGES:
        assert file_bytes(tmp_path / "w" / stage) == file_bytes(tmp_path / "clean" / stage)
    assert not list(Path(tmp_path / "w").rglob(".tmp-*"))
