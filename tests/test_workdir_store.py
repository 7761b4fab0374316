"""A work directory in object storage: the whole pipeline reads and writes it on the loopback S3 server
(moto's standalone server, real HTTP), through Ray and in-process, with the same bytes as a local work
directory; a kill -9 mid-stage resumes; `explain`, `stats` and `publish` read it; no credential is ever
written; a bucket that cannot be used is refused before any work (exit 2)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from curate.stagespec import stage_keys
from curate.workpath import StoreOptions, WorkPath, configure
from tests.s3server import ACCESS_KEY, SECRET_KEY
from tests.test_crash_resume import small_demo_recipe
from tests.test_faults import curate, wait_for

STAGES = list(stage_keys())


def objects(client, bucket: str, prefix: str) -> dict[str, bytes]:
    """key (relative to prefix) -> bytes of every object under the prefix."""
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            out[obj["Key"][len(prefix) + 1:]] = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out


def outputs(files: dict[str, bytes]) -> dict[str, bytes]:
    """What must be byte-identical between two runs: every kept and dropped part, and the shards."""
    return {k: v for k, v in files.items() if k.endswith((".parquet", ".arrow")) and "/_" not in f"/{k}"}


def local_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, lid_model_path):
    """The small demo recipe of the crash tests (60 stdlib files and the text sources) and one local run."""
    root = tmp_path_factory.mktemp("store")
    recipe = small_demo_recipe(root, lid_model_path)
    done = curate("run", str(recipe), "--workdir", str(root / "local"), "--engine", "local")
    assert done.returncode == 0, done.stderr
    return recipe, root / "local"


@pytest.fixture(scope="module")
def bucket_run(corpus, s3_endpoint):
    """The same recipe run through Ray (an embedded local Ray in the CLI's process) with the work directory
    in a bucket; the endpoint reaches the Ray workers as a flag the driver passes on."""
    import boto3

    recipe, _ = corpus
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    bucket = "curate-workdir"
    client.create_bucket(Bucket=bucket)
    uri = f"s3://{bucket}/runs/demo"
    done = curate("-v", "run", str(recipe), "--workdir", uri, "--endpoint-url", s3_endpoint, "--num-cpus", "2")
    assert done.returncode == 0, done.stderr
    return client, bucket, "runs/demo", uri, done


@pytest.mark.slow
def test_bucket_workdir_gives_the_local_bytes(corpus, bucket_run):
    _, local = corpus
    client, bucket, prefix, _, _ = bucket_run
    remote = objects(client, bucket, prefix)
    want = outputs(local_files(local))
    assert {k for k in want if k.startswith("shards/")}, "the local run packed no shards"
    assert outputs(remote) == want
    for stage in STAGES:  # every stage finished there, and its manifest agrees with the local one's output
        manifest = json.loads(remote[f"{stage}/_manifest.json"])
        local_manifest = json.loads((local / stage / "_manifest.json").read_text())
        assert manifest["output_fingerprint"] == local_manifest["output_fingerprint"], stage
        assert manifest["ledger"] == local_manifest["ledger"], stage
    assert json.loads(remote["shards/manifest.json"])["shards"] == json.loads((local / "shards/manifest.json").read_text())["shards"]
    assert not [k for k in remote if ".tmp-" in k or "_probe-" in k], "temporaries or the writability probe left behind"


@pytest.mark.slow
def test_no_credential_in_any_object_or_log(bucket_run):
    client, bucket, prefix, uri, done = bucket_run
    texts = [done.stdout, done.stderr] + [v.decode("latin-1") for v in objects(client, bucket, prefix).values()]
    for secret in (ACCESS_KEY, SECRET_KEY):
        assert not [t for t in texts if secret in t]


@pytest.mark.slow
def test_explain_stats_and_publish_read_the_bucket(corpus, bucket_run, tmp_path, s3_endpoint):
    _, local = corpus
    client, bucket, prefix, uri, _ = bucket_run
    # a document dropped somewhere, and one that reached the shards, as the local run saw them
    import pyarrow.parquet as pq

    dropped = next(p for p in sorted(local.glob("*/dropped/part-*.parquet")) if pq.read_metadata(p).num_rows)
    doc = pq.read_table(dropped, columns=["id"])["id"][0].as_py()
    said = {where: curate("explain", where, doc, "--endpoint-url", s3_endpoint) for where in (uri, str(local))}
    for done in said.values():
        assert done.returncode == 0, done.stderr
        assert "DROPPED" in done.stdout
    assert said[uri].stdout == said[str(local)].stdout

    report = curate("stats", uri, "--endpoint-url", s3_endpoint)
    assert report.returncode == 0, report.stderr
    written = objects(client, bucket, prefix)
    stats = json.loads(written["report/stats.json"])
    assert stats["coverage"]["missing"] == [] or set(stats["coverage"]["present"]) >= set(STAGES)

    dest = tmp_path / "published"
    published = curate("publish", uri, f"file://{dest}", "--endpoint-url", s3_endpoint)
    assert published.returncode == 0, published.stderr
    shards = {p.name: p.read_bytes() for p in sorted((dest / "shards").glob("shard-*.arrow"))}
    assert shards == {p.name: p.read_bytes() for p in sorted((local / "shards").glob("shard-*.arrow"))}
    assert (dest / "report/stats.json").is_file() and (dest / "_manifest.json").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["exact_dedup", "tokenize"])
def test_kill_minus_9_mid_stage_in_a_bucket_then_resume(corpus, bucket_run, s3_endpoint, stage):
    """The finished upstream stages are copied into a fresh prefix; a run of the stage is killed once a few of
    its part records exist there, and the rerun reuses them and ends with the uninterrupted bytes (the stages
    after it are not run: their inputs are then the same bytes, so they would only repeat the comparison)."""
    recipe, _ = corpus
    client, bucket, prefix, _, _ = bucket_run
    clean = objects(client, bucket, prefix)
    work = f"killed-{stage}"
    for key, data in clean.items():
        if key.split("/", 1)[0] in STAGES[: STAGES.index(stage)]:
            client.put_object(Bucket=bucket, Key=f"{work}/{key}", Body=data)
    uri = f"s3://{bucket}/{work}"

    def records() -> int:
        listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{work}/{stage}/_parts/")
        return len(listed.get("Contents", []))

    rest = stage
    proc = curate("run", str(recipe), "--workdir", uri, "--endpoint-url", s3_endpoint, "--engine", "local",
                  "--stages", rest, env={"CURATE_TASK_DELAY": "0.3"}, wait=False)
    try:
        wait_for(lambda: records() >= 2 or proc.poll() is not None, timeout=120)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert f"{stage}/_manifest.json" not in objects(client, bucket, work)
    rerun = curate("run", str(recipe), "--workdir", uri, "--endpoint-url", s3_endpoint, "--engine", "local",
                   "--stages", rest)
    assert rerun.returncode == 0, rerun.stderr
    assert "reusing" in rerun.stderr
    done = STAGES[: STAGES.index(stage) + 1]
    want = {k: v for k, v in outputs(clean).items() if k.split("/", 1)[0] in done}
    assert any(k.startswith(f"{stage}/") for k in want)
    assert outputs(objects(client, bucket, work)) == want


# ------------------------------------------------------------------------------------------------ bad places
def test_a_missing_bucket_is_refused_before_any_work(corpus, s3, tmp_path):
    recipe, _ = corpus
    client, bucket, endpoint = s3
    started = time.time()
    done = curate("run", str(recipe), "--workdir", f"s3://{bucket}-missing/w", "--endpoint-url", endpoint)
    assert done.returncode == 2, done.stderr
    assert "bucket does not exist" in done.stderr and "Traceback" not in done.stderr
    assert time.time() - started < 60
    assert f"{bucket}-missing" not in [b["Name"] for b in client.list_buckets()["Buckets"]]


def test_an_unreachable_endpoint_is_refused_before_any_work(corpus):
    import socket

    recipe, _ = corpus
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = curate("run", str(recipe), "--workdir", "s3://nowhere/w", "--endpoint-url", f"http://127.0.0.1:{port}")
    assert done.returncode == 2, done.stderr
    assert "cannot reach the endpoint" in done.stderr and "Traceback" not in done.stderr


def test_credentials_in_the_workdir_uri_are_refused(corpus):
    recipe, _ = corpus
    done = curate("run", str(recipe), "--workdir", f"s3://{ACCESS_KEY}:{SECRET_KEY}@bucket/w")
    assert done.returncode == 2
    assert "credentials in the URI are refused" in done.stderr
    assert SECRET_KEY not in done.stderr + done.stdout


# ------------------------------------------------------------------------------------------------ WorkPath
def test_workpath_operations_match_on_disk_and_in_a_bucket(s3, tmp_path):
    """The same sequence of operations gives the same answers on a local folder and under a bucket prefix."""
    client, bucket, endpoint = s3
    configure(StoreOptions(endpoint_url=endpoint))
    try:
        answers = [_exercise(WorkPath(tmp_path / "w")), _exercise(WorkPath(f"s3://{bucket}/w"))]
    finally:
        configure(None)
    assert answers[0] == answers[1]
    assert answers[0]["listed"] == ["part-00000.parquet", "part-00001.parquet"]


def _exercise(root: WorkPath) -> dict:
    import pyarrow as pa

    from curate import parts

    out = {"absent": [(root / "x.json").is_file(), root.files_under(), [p.name for p in root.files("*")]]}
    for i in range(2):
        w = parts.ParquetPartWriter(root / "s" / f"part-{i:05d}.parquet")
        w.write(pa.table({"id": [f"d{i}", "e"], "n": [i, 7]}))
        out[f"record{i}"] = w.close()
    (root / "s" / "part-00009.txt").write_text("not a part")
    failed = root / "s" / "part-00002.parquet"
    with pytest.raises(RuntimeError, match="mid-write"):
        with failed.writer() as sink:
            sink.write(b"half")
            raise RuntimeError("mid-write")
    out["failed_write_visible"] = failed.is_file()
    out["listed"] = [p.name for p in parts.part_files(root / "s")]
    out["read"] = [t.to_pydict() for p in parts.part_files(root / "s") for t in parts.iter_part(p)]
    parts.write_json(root / "s" / "_parts" / "a.json", {"k": [1, 2]})
    out["json"] = parts.read_json(root / "s" / "_parts" / "a.json")
    out["under"] = [rel for rel, _ in (root / "s").files_under()]
    out["sha"] = (root / "s" / "part-00000.parquet").sha256() == out["record0"]["sha256"]
    parts.write_grouped(root / "g.parquet", pa.table({"k": [3, 1, 3], "v": ["a", "b", "c"]}), "k")
    out["groups"] = parts.read_groups(root / "g.parquet", [3]).to_pydict()
    parts.reset_stage(root / "s")
    out["after_reset"] = [(root / "s").files_under(), [p.name for p in root.files("*")]]
    return out


def test_near_dedup_against_an_index_in_a_bucket(s3, tmp_path, local_engine):
    """An earlier run whose work directory is in a bucket serves as `near_dedup.against` exactly as the same
    run on disk: the new run's parts are byte-identical either way."""
    from tests.helpers import file_bytes, recipe, run, write_jsonl
    from tests.test_near_dedup_pipeline import corpus as planted

    client, bucket, endpoint = s3
    docs = planted(5)
    old = [{"text": t, "id": f"d{i:04d}"} for i, t in enumerate(docs) if i % 2 == 0]
    new = [{"text": t, "id": f"d{i:04d}"} for i, t in enumerate(docs) if i % 2 == 1]

    def source(name, rows):
        path = write_jsonl(tmp_path / f"in/{name}.jsonl", rows)
        return [{"name": name, "kind": "code", "format": "jsonl", "paths": [str(path)], "id_field": "id"}]

    configure(StoreOptions(endpoint_url=endpoint))
    try:
        for where in (f"s3://{bucket}/old", tmp_path / "old"):
            run(recipe(source("old", old), ingest={"partition_bytes": 30_000}), where, local_engine,
                ["ingest", "near_dedup"])
        outs = []
        for against, work in ((f"s3://{bucket}/old", tmp_path / "new-bucket"), (str(tmp_path / "old"), tmp_path / "new-disk")):
            results = run(recipe(source("new", new), near_dedup={"against": against}, ingest={"partition_bytes": 30_000}),
                          work, local_engine, ["ingest", "near_dedup"])
            assert results[-1].manifest["extra"]["against"]["indexed_duplicates"] > 0
            outs.append(file_bytes(work / "near_dedup"))
    finally:
        configure(None)
    assert outs[0] == outs[1]


def test_file_uris_and_paths_name_the_same_place(tmp_path):
    assert WorkPath(f"file://{tmp_path}/w/") == WorkPath(tmp_path / "w") == WorkPath(f"{tmp_path}/w")
    assert not WorkPath(f"file://{tmp_path}").remote and WorkPath("s3://b/p/").uri == "s3://b/p"
    assert (WorkPath("s3://b/p") / "ingest" / "part-00001.parquet").stem == "part-00001"
    assert WorkPath("s3://b/p/ingest").parent == WorkPath("s3://b/p")
    with pytest.raises(TypeError):
        _ = WorkPath("s3://b/p").local


def test_profile_credentials_are_resolved_in_the_process(tmp_path, monkeypatch):
    """`--profile` takes the named profile's keys from the shared credentials file (the loopback server
    accepts any signature, so this is checked on the client pyarrow is given, not on the wire)."""
    from curate.workpath import WorkdirError, s3_filesystem

    creds = tmp_path / "credentials"
    creds.write_text("[curate-test]\naws_access_key_id = AKIAPROFILEKEY\naws_secret_access_key = profile+secret\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    options = s3_filesystem("http://127.0.0.1:1", "curate-test").__reduce__()[1][0]
    assert (options["access_key"], options["secret_key"]) == ("AKIAPROFILEKEY", "profile+secret")
    assert options["endpoint_override"] == "127.0.0.1:1" and options["scheme"] == "http"
    with pytest.raises(WorkdirError, match="--profile nope"):
        s3_filesystem(None, "nope")


def test_an_unknown_profile_is_refused_before_any_work(corpus, tmp_path):
    recipe, _ = corpus
    done = curate("run", str(recipe), "--workdir", "s3://b/w", "--profile", "no-such-profile",
                  env={"AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")})
    assert done.returncode == 2 and "no-such-profile" in done.stderr and "Traceback" not in done.stderr
