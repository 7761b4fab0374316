"""Joining real clusters started with `ray start`, with Ray's token authentication on and off (issue 17).

Each class starts its own cluster (class scope, so only one extra cluster runs at a time) and stops it.
`curate run` is the real CLI in a subprocess, whose environment says where the token is, as a user's would.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.helpers import file_bytes, recipe, run
from tests.raynodes import RAY, RayNodes, free_ports
from tests.stages.test_exact_dedup import planted_corpus

STAGES = ["ingest", "exact_dedup"]
AUTH_VARS = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")

pytestmark = pytest.mark.slow


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """This process's environment without Ray address or auth settings, HOME an empty folder (no
    ~/.ray/auth_token), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in AUTH_VARS}
    home.mkdir(parents=True, exist_ok=True)
    return {**env, "HOME": str(home), "PYTHONPATH": str(ROOT), **extra}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A small recipe file and its parts made in this process (LocalEngine), the bytes to match."""
    from curate.engine import LocalEngine

    root = tmp_path_factory.mktemp("corpus")
    sources, _ = planted_corpus(root / "data")
    (root / "r.yaml").write_text(yaml.safe_dump({"name": "auth", "sources": sources,
                                                 "ingest": {"partition_bytes": 1024}}))
    run(recipe(sources, name="auth", ingest={"partition_bytes": 1024}), root / "local", LocalEngine(), STAGES)
    return root


def curate_run(corpus: Path, address: str, workdir: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "curate.cli", "run", str(corpus / "r.yaml"), "--ray-address", address,
           "--workdir", str(workdir), "--stages", ",".join(STAGES)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def assert_matches_local(corpus: Path, workdir: Path) -> None:
    for stage in STAGES:
        assert file_bytes(workdir / stage) == file_bytes(corpus / "local" / stage)


def assert_one_error(proc: subprocess.CompletedProcess, *phrases: str) -> None:
    """Exit 1, and stderr is the one `curate: error:` line naming what to set: no traceback, no RPC warnings."""
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("curate: error: "), proc.stderr[-3000:]
    for phrase in ("RAY_AUTH_MODE=token", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "ray get-auth-token", *phrases):
        assert phrase in lines[0]


@pytest.fixture(scope="class")
def auth_on(tmp_path_factory, s3_endpoint):
    """Class scope: the cluster stops when its class's tests are done, before the next class starts one.
    The nodes' environment has the loopback S3 server's credentials (each node's own AWS chain)."""
    root = tmp_path_factory.mktemp("auth-on")
    token = secrets.token_hex(32)
    # CURATE_TASK_DELAY reaches the nodes' workers: tasks long enough that both nodes' CPUs take some
    nodes = RayNodes(clean_env(root / "home", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, CURATE_TASK_DELAY="0.2"))
    try:
        nodes.start_head(num_cpus=1)
        nodes.add_worker(num_cpus=1)
        yield nodes, token
    finally:
        nodes.stop()


@pytest.fixture(scope="class")
def auth_off(tmp_path_factory):
    root = tmp_path_factory.mktemp("auth-off")
    nodes = RayNodes(clean_env(root / "home", RAY_AUTH_MODE="disabled"))
    try:
        nodes.start_head(num_cpus=1)
        yield nodes
    finally:
        nodes.stop()


class TestTokenAuthOn:
    """A head and a worker node (1 CPU each), both started with RAY_AUTH_MODE=token and the token."""

    @pytest.mark.parametrize("source", ["env", "path", "home"])
    def test_token_from_each_documented_place_joins(self, auth_on, corpus, tmp_path, source):
        """RAY_AUTH_MODE unset, the token in RAY_AUTH_TOKEN, a RAY_AUTH_TOKEN_PATH file or ~/.ray/auth_token:
        curate turns token mode on once the cluster asks, tasks run on both nodes, and the parts equal the
        in-process run's. The token appears in no output file and no output line."""
        nodes, token = auth_on
        home = tmp_path / "home"
        if source == "env":
            env = clean_env(home, RAY_AUTH_TOKEN=token)
        elif source == "path":
            (tmp_path / "tok").write_text(token)
            env = clean_env(home, RAY_AUTH_TOKEN_PATH=str(tmp_path / "tok"))
        else:
            (home / ".ray").mkdir(parents=True)
            (home / ".ray/auth_token").write_text(token)
            env = clean_env(home)
        before = nodes.tasks_run()
        proc = curate_run(corpus, nodes.address, tmp_path / "w", env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        ran = {node: n - before[node] for node, n in nodes.tasks_run().items()}
        # both nodes are in the cluster and this run's tasks ran; which node takes them is Ray's choice (under
        # load the head may take all of one run's): the worker's share is checked over the class's runs below
        assert set(ran) == {"head", "worker1"} and sum(ran.values()) > 0, ran
        assert_matches_local(corpus, tmp_path / "w")
        assert token not in proc.stdout + proc.stderr
        assert not [p for p in (tmp_path / "w").rglob("*") if p.is_file() and token.encode() in p.read_bytes()]

    def test_the_worker_node_ran_tasks(self, auth_on):
        """After the three joined runs above: the worker node ran some of their tasks (the runs used the
        cluster, not only its head)."""
        nodes, _ = auth_on
        assert nodes.tasks_run()["worker1"] > 0

    def test_workdir_in_a_bucket(self, auth_on, corpus, tmp_path, s3):
        """Both nodes' tasks read and write a work directory in a bucket: the endpoint is a flag of the
        driver, the credentials come from each node's environment, and none is written anywhere."""
        from tests.s3server import ACCESS_KEY, SECRET_KEY
        from tests.test_workdir_store import objects

        nodes, token = auth_on
        client, bucket, endpoint = s3
        env = clean_env(tmp_path / "home", RAY_AUTH_TOKEN=token)
        cmd = [sys.executable, "-m", "curate.cli", "run", str(corpus / "r.yaml"), "--ray-address", nodes.address,
               "--workdir", f"s3://{bucket}/w", "--endpoint-url", endpoint, "--stages", ",".join(STAGES)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        stored = objects(client, bucket, "w")
        for stage in STAGES:
            parts = {k[len(stage) + 1:]: v for k, v in stored.items() if k.startswith(f"{stage}/")
                     and k.rsplit("/", 1)[-1].startswith("part-") and k.endswith(".parquet")}
            assert parts == file_bytes(corpus / "local" / stage)
        for secret in (ACCESS_KEY, SECRET_KEY, token):
            assert secret not in proc.stdout + proc.stderr
            assert not [k for k, v in stored.items() if secret.encode() in v]

    def test_no_token_is_one_clear_error_fast(self, auth_on, corpus, tmp_path):
        nodes, _ = auth_on
        start = time.monotonic()
        proc = curate_run(corpus, nodes.address, tmp_path / "w", clean_env(tmp_path / "home"))
        assert time.monotonic() - start < 15  # Ray alone retries for 20 s before failing
        assert_one_error(proc, "requires token authentication", "no token was found")
        assert not (tmp_path / "w").exists()  # refused before any work

    def test_wrong_token_is_refused_and_not_shown(self, auth_on, corpus, tmp_path):
        nodes, _ = auth_on
        wrong = secrets.token_hex(32)
        proc = curate_run(corpus, nodes.address, tmp_path / "w", clean_env(tmp_path / "home", RAY_AUTH_TOKEN=wrong))
        assert_one_error(proc, "refused the authentication token from RAY_AUTH_TOKEN")
        assert wrong not in proc.stderr + proc.stdout
        assert not (tmp_path / "w").exists()

    def test_explicit_disabled_mode_is_respected_not_overridden(self, auth_on, corpus, tmp_path):
        nodes, token = auth_on
        env = clean_env(tmp_path / "home", RAY_AUTH_MODE="disabled", RAY_AUTH_TOKEN=token)
        proc = curate_run(corpus, nodes.address, tmp_path / "w", env)
        assert_one_error(proc, "RAY_AUTH_MODE=disabled in this environment, so no token was sent")

    def test_unreadable_token_path_is_an_error_not_a_crash(self, auth_on, corpus, tmp_path):
        """Ray aborts the process (C++ fatal error) on a token path it cannot read; curate refuses it first."""
        nodes, _ = auth_on
        env = clean_env(tmp_path / "home", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(tmp_path / "missing"))
        proc = curate_run(corpus, nodes.address, tmp_path / "w", env)
        assert_one_error(proc, f"RAY_AUTH_TOKEN_PATH={tmp_path / 'missing'}: not a readable, non-empty token file")


class TestTokenAuthOff:
    """A head started with RAY_AUTH_MODE=disabled, as Ray 2.60 still allows."""

    def test_joins_without_token_even_when_one_is_available(self, auth_off, corpus, tmp_path):
        """A token in the environment is not needed, and the run matches the in-process one."""
        proc = curate_run(corpus, auth_off.address, tmp_path / "w",
                          clean_env(tmp_path / "home", RAY_AUTH_TOKEN=secrets.token_hex(32)))
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert_matches_local(corpus, tmp_path / "w")

    def test_embedded_run_does_not_join_a_started_cluster(self, auth_off, corpus, tmp_path):
        """Without --ray-address curate starts its own Ray even when `ray start` has recorded a cluster in
        Ray's temp dir (which a bare `ray.init()` would join, and then refuse --num-cpus with a traceback)."""
        record = auth_off.root / "tmp/ray/ray_current_cluster"
        record.parent.mkdir(parents=True)
        record.write_text(auth_off.address)
        env = clean_env(tmp_path / "home", RAY_TMPDIR=str(auth_off.root / "tmp"))
        cmd = [sys.executable, "-m", "curate.cli", "run", str(corpus / "r.yaml"), "--num-cpus", "1",
               "--workdir", str(tmp_path / "w"), "--stages", ",".join(STAGES)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert_matches_local(corpus, tmp_path / "w")


@pytest.fixture(scope="class")
def auth_on_dashboard(tmp_path_factory):
    """A head with token auth and the dashboard's job server. Its environment has no PYTHONPATH: the job finds
    curate only in the working directory it ships."""
    token = secrets.token_hex(32)
    env = clean_env(tmp_path_factory.mktemp("home"), RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    env.pop("PYTHONPATH")
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # the job's `python`: the cluster's, with curate's dependencies
    nodes = RayNodes(env)
    try:
        nodes.start_head(num_cpus=1, dashboard=True)
        yield nodes, token
    finally:
        nodes.stop()


@pytest.mark.skipif(importlib.util.find_spec("aiohttp") is None,
                    reason="`ray job submit` needs ray[default] (the dashboard's aiohttp), which this venv lacks")
class TestJobSubmit:
    """`ray job submit --working-dir` as the README gives it: the client sends the token (RAY_AUTH_MODE=token and
    RAY_AUTH_TOKEN); the job's `curate run` on the head takes the head's own token; neither is an argument."""

    def test_job_with_token_matches_local_run(self, auth_on_dashboard, corpus, tmp_path):
        nodes, token = auth_on_dashboard
        shutil.copytree(ROOT / "curate", tmp_path / "wd/curate", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(corpus / "r.yaml", tmp_path / "wd/r.yaml")
        submit = [*RAY, "job", "submit", "--address", f"http://127.0.0.1:{nodes.dashboard_port}",
                  "--working-dir", str(tmp_path / "wd"), "--", "python", "-m", "curate.cli", "run", "r.yaml",
                  "--workdir", str(tmp_path / "w"), "--stages", ",".join(STAGES)]
        env = clean_env(tmp_path / "home", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
        proc = subprocess.run(submit, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0 and "succeeded" in proc.stdout + proc.stderr, proc.stdout[-3000:]
        assert_matches_local(corpus, tmp_path / "w")
        assert token not in proc.stdout + proc.stderr and token not in " ".join(submit)
        assert not [p for p in (tmp_path / "w").rglob("*") if p.is_file() and token.encode() in p.read_bytes()]

def test_unreachable_address_is_a_usage_error_fast(corpus, tmp_path):
    """Nothing listens on the port: exit 2 in seconds (Ray alone retries for 40 s), nothing written."""
    start = time.monotonic()
    proc = curate_run(corpus, f"127.0.0.1:{free_ports(1)[0]}", tmp_path / "w", clean_env(tmp_path / "home"))
    assert time.monotonic() - start < 15
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.startswith("curate: error: no Ray cluster at 127.0.0.1:") and "Traceback" not in proc.stderr
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("how", ["private API differs", "CURATE_RAY_PLAIN_START=1"])
def test_embedded_start_falls_back_to_ray_init(corpus, tmp_path, how):
    """The embedded Ray is started through Ray's private node API (pinned Ray 2.60.x); with another Ray whose API
    differs, or when asked, the run starts Ray with `ray.init` instead: slower, same outputs, no stray processes."""
    env = clean_env(tmp_path / "home")
    args = ["run", str(corpus / "r.yaml"), "--num-cpus", "1", "--workdir", str(tmp_path / "w"),
            "--stages", ",".join(STAGES)]
    if how.startswith("CURATE"):
        env["CURATE_RAY_PLAIN_START"] = "1"
        script = "import sys; from curate import cli; sys.exit(cli.main(sys.argv[1:]))"
    else:
        script = ("import sys; from curate import cli, engine\n"
                  "def changed(num_cpus): raise AttributeError(\"module 'ray._private.node' has no attribute 'Node'\")\n"
                  "engine._start_embedded = changed\n"
                  "sys.exit(cli.main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ("starting it with ray.init instead" in proc.stderr) == how.startswith("private")
    assert_matches_local(corpus, tmp_path / "w")


def test_second_embedded_start_in_a_process_gets_its_own_settings(tmp_path):
    """Ray writes a node's settings (its object spilling directory, in that session's folder) into the system
    config it is given: each start must get its own copy, or a second embedded Ray in the same process (a
    notebook, the benchmarks) would spill objects into the first one's deleted session folder."""
    script = (
        "import json\n"
        "from curate import engine\n"
        "before = dict(engine.EMBEDDED_SYSTEM_CONFIG)\n"
        "dirs = []\n"
        "for _ in range(2):\n"
        "    e = engine.RayEngine(num_cpus=1)\n"
        "    node = e._node  # the head node the engine started\n"
        "    spill = json.loads(node._config['object_spilling_config'])['params']['directory_path']\n"
        "    dirs.append((spill, node.get_session_dir_path()))\n"
        "    e.close()\n"
        "assert engine.EMBEDDED_SYSTEM_CONFIG == before, engine.EMBEDDED_SYSTEM_CONFIG\n"
        "assert all(spill == session for spill, session in dirs), dirs\n"
        "assert dirs[0][1] != dirs[1][1], dirs\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], env=clean_env(tmp_path / "home"), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "object spilling config is specified" not in proc.stderr
