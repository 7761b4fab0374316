"""`curate publish` / `curate verify` against a real S3-protocol server (moto's standalone server on loopback,
real HTTP) and against file:// destinations. The CLI runs as a subprocess, so a killed publish is a real
SIGKILL of a real process."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from curate import workpath
from curate.publish import MANIFEST_KEY, PublishRefused, local_objects, publish
from curate.workpath import WorkPath
from tests.s3server import ACCESS_KEY, SECRET_KEY

BIG = 9 * (1 << 20) + 12345  # above the 8 MiB part size: a 2-part multipart upload


def make_workdir(root: Path, n_shards: int = 4, seed: int = 0) -> Path:
    """A WORKDIR as pack and stats leave it: random-byte shards (one > 8 MiB), their manifest, a report."""
    import random

    rng = random.Random(seed)
    shards = root / "shards"
    shards.mkdir(parents=True)
    records = []
    for i in range(n_shards):
        data = rng.randbytes(BIG if i == 0 else rng.randint(1000, 300_000))
        (shards / f"shard-{i:05d}.arrow").write_bytes(data)
        records.append({"file": f"shard-{i:05d}.arrow", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    # Other hashed things in the pack manifest (here a tokenizer) are not shards and must not be taken for them.
    tokenizer = {"path": "assets/tokenizer.json", "sha256": "ab" * 32}
    (shards / "manifest.json").write_text(json.dumps({"tokenizer": tokenizer, "shards": records}, indent=2))
    (root / "report" / "plots").mkdir(parents=True)
    (root / "report" / "report.md").write_text("# report\n")
    (root / "report" / "stats.json.gz").write_bytes(rng.randbytes(2000))  # must not be (de)compressed on the way
    (root / "report" / "plots" / "tokens.png").write_bytes(rng.randbytes(5000))
    return root


def expected_keys(workdir: Path) -> dict[str, str]:
    return {o.key: o.sha256 for o in local_objects(workdir)}


def run_cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "curate.cli", "-v", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def versions(client, bucket: str) -> dict[str, int]:
    """Key -> number of stored versions (how many times it was written)."""
    counts: dict[str, int] = {}
    for v in client.list_object_versions(Bucket=bucket).get("Versions", []):
        counts[v["Key"]] = counts.get(v["Key"], 0) + 1
    return counts


def assert_no_credentials(texts: list[str], *dirs: Path) -> None:
    blobs = [t.encode() for t in texts] + [p.read_bytes() for d in dirs for p in d.rglob("*") if p.is_file()]
    for secret in (ACCESS_KEY, SECRET_KEY):
        assert not any(secret.encode() in b for b in blobs), f"{secret[:6]}… leaked"


def test_publish_and_verify_s3(s3, tmp_path):
    client, bucket, endpoint = s3
    work = make_workdir(tmp_path / "work")
    dest = f"s3://{bucket}/datasets/demo"
    proc = run_cli("publish", str(work), dest, "--endpoint-url", endpoint)
    assert proc.returncode == 0, proc.stderr
    want = expected_keys(work)
    listed = {o["Key"]: o["Size"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert set(listed) == {f"datasets/demo/{k}" for k in [*want, MANIFEST_KEY]}
    manifest = json.loads(client.get_object(Bucket=bucket, Key=f"datasets/demo/{MANIFEST_KEY}")["Body"].read())
    assert {e["key"]: e["sha256"] for e in manifest["objects"]} == want
    for entry in manifest["objects"]:  # every byte on the server is the local file's, with its sha256 as metadata
        obj = client.get_object(Bucket=bucket, Key=f"datasets/demo/{entry['key']}")
        body = obj["Body"].read()
        assert body == (work / entry["key"]).read_bytes() and len(body) == entry["bytes"]
        assert obj["Metadata"]["sha256"] == hashlib.sha256(body).hexdigest()
    # The big shard went as a 2-part multipart upload (S3 ETags of multipart objects end in -<parts>).
    assert client.head_object(Bucket=bucket, Key="datasets/demo/shards/shard-00000.arrow")["ETag"].strip('"').endswith("-2")
    ok = run_cli("verify", dest, "--endpoint-url", endpoint)
    assert ok.returncode == 0 and f"{len(want)}/{len(want)} objects match" in ok.stdout
    # A second publish sends nothing and rewrites nothing.
    again = run_cli("publish", str(work), dest, "--endpoint-url", endpoint)
    assert again.returncode == 0 and "uploaded 0 " in again.stdout and f"skipped {len(want)}" in again.stdout
    assert set(versions(client, bucket).values()) == {1}
    assert_no_credentials([proc.stdout, proc.stderr, ok.stdout, ok.stderr, again.stdout, again.stderr], work)


@pytest.mark.parametrize("mode", ["raise", "kill"])
def test_interrupted_publish_resumes(s3, tmp_path, mode):
    """Fail (or SIGKILL) after 3 uploads: no marker; the rerun sends exactly the missing objects, once each."""
    client, bucket, endpoint = s3
    work = make_workdir(tmp_path / "work", n_shards=6)
    dest = f"s3://{bucket}/ds"
    spec = "3" if mode == "raise" else "3:kill"
    failed = run_cli("publish", str(work), dest, "--endpoint-url", endpoint, "--jobs", "1",
                     env_extra={"CURATE_PUBLISH_FAIL_AFTER": spec})
    assert failed.returncode == (1 if mode == "raise" else -9), failed.stderr
    present = set(versions(client, bucket))
    assert len(present) == 3 and f"ds/{MANIFEST_KEY}" not in present
    bad = run_cli("verify", dest, "--endpoint-url", endpoint)
    assert bad.returncode == 1 and "no _manifest.json" in bad.stderr
    resumed = run_cli("publish", str(work), dest, "--endpoint-url", endpoint)
    assert resumed.returncode == 0, resumed.stderr
    want = expected_keys(work)
    assert f"uploaded {len(want) - 3} " in resumed.stdout and "skipped 3 " in resumed.stdout
    # The server saw each object written exactly once over both runs.
    assert versions(client, bucket) == {f"ds/{k}": 1 for k in [*want, MANIFEST_KEY]}
    assert run_cli("verify", dest, "--endpoint-url", endpoint).returncode == 0
    assert_no_credentials([failed.stdout, failed.stderr, resumed.stdout, resumed.stderr], work)


def test_corrupted_object_is_caught_and_resent(s3, tmp_path):
    client, bucket, endpoint = s3
    work = make_workdir(tmp_path / "work")
    dest = f"s3://{bucket}/ds"
    assert run_cli("publish", str(work), dest, "--endpoint-url", endpoint).returncode == 0
    key = "ds/shards/shard-00002.arrow"
    original = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    flipped = bytes([original[0] ^ 1]) + original[1:]  # same size, one bit off
    client.put_object(Bucket=bucket, Key=key, Body=flipped)
    bad = run_cli("verify", dest, "--endpoint-url", endpoint)
    assert bad.returncode == 1
    assert bad.stdout.count("MISMATCH") == 1 and "MISMATCH shards/shard-00002.arrow: sha256" in bad.stdout
    fixed = run_cli("publish", str(work), dest, "--endpoint-url", endpoint)
    assert fixed.returncode == 0 and "uploaded 1 " in fixed.stdout, fixed.stdout
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == original
    assert run_cli("verify", dest, "--endpoint-url", endpoint).returncode == 0
    # Corruption that keeps the metadata is invisible to a metadata check; --recheck reads the bytes.
    client.put_object(Bucket=bucket, Key=key, Body=flipped, Metadata={"sha256": hashlib.sha256(original).hexdigest()})
    assert "uploaded 0 " in run_cli("publish", str(work), dest, "--endpoint-url", endpoint).stdout
    assert run_cli("verify", dest, "--endpoint-url", endpoint).returncode == 1
    assert "uploaded 1 " in run_cli("publish", str(work), dest, "--endpoint-url", endpoint, "--recheck").stdout
    assert run_cli("verify", dest, "--endpoint-url", endpoint).returncode == 0


def test_refuses_a_different_dataset_unless_overwrite(s3, tmp_path):
    client, bucket, endpoint = s3
    old, new = make_workdir(tmp_path / "old", seed=1), make_workdir(tmp_path / "new", seed=2)
    (old / "report" / "only-old.txt").write_text("old")
    dest = f"s3://{bucket}/ds"
    assert publish(old, dest, endpoint_url=endpoint).committed
    with pytest.raises(PublishRefused, match="different published dataset"):
        publish(new, dest, endpoint_url=endpoint)
    dry = publish(new, dest, endpoint_url=endpoint, dry_run=True, overwrite=True)
    old_keys, new_keys = expected_keys(old), expected_keys(new)
    assert not dry.committed and {k for k, d in new_keys.items() if old_keys.get(k) != d} == set(dry.uploaded)
    assert set(dry.skipped) == {"report/report.md"}  # the same bytes in both datasets
    assert publish(new, dest, endpoint_url=endpoint, overwrite=True).committed
    manifest = json.loads(client.get_object(Bucket=bucket, Key=f"ds/{MANIFEST_KEY}")["Body"].read())
    assert {e["key"]: e["sha256"] for e in manifest["objects"]} == expected_keys(new)
    # An object of the old dataset that the new one does not list stays: publish never deletes data objects.
    assert client.get_object(Bucket=bucket, Key="ds/report/only-old.txt")["Body"].read() == b"old"


def test_dry_run_writes_nothing(s3, tmp_path):
    client, bucket, endpoint = s3
    work = make_workdir(tmp_path / "work")
    proc = run_cli("publish", str(work), f"s3://{bucket}/ds", "--endpoint-url", endpoint, "--dry-run")
    assert proc.returncode == 0
    assert sorted(line.split()[1] for line in proc.stdout.splitlines() if line.startswith("upload ")) == sorted(expected_keys(work))
    assert "Contents" not in client.list_objects_v2(Bucket=bucket)


def test_file_destination(tmp_path):
    work = make_workdir(tmp_path / "work")
    dest = tmp_path / "published"
    proc = run_cli("publish", str(work), f"file://{dest}")
    assert proc.returncode == 0, proc.stderr
    want = expected_keys(work)
    for key in want:
        assert (dest / key).read_bytes() == (work / key).read_bytes()
    assert run_cli("verify", str(dest)).returncode == 0
    (dest / "report" / "report.md").write_text("# an edited report\n")
    bad = run_cli("verify", f"file://{dest}")
    assert bad.returncode == 1 and "MISMATCH report/report.md: size" in bad.stdout
    fixed = publish(work, str(dest))
    assert fixed.uploaded == ["report/report.md"] and len(fixed.skipped) == len(want) - 1
    assert run_cli("verify", str(dest)).returncode == 0


def test_refuses_shards_that_disagree_with_the_pack_manifest(tmp_path):
    work = make_workdir(tmp_path / "work")
    shard = work / "shards" / "shard-00001.arrow"
    shard.write_bytes(shard.read_bytes()[:-1])
    with pytest.raises(PublishRefused, match="shard-00001.arrow: bytes differ"):
        publish(work, str(tmp_path / "out"))
    shard.unlink()
    with pytest.raises(PublishRefused, match="listed in but missing"):
        publish(work, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_credentials_in_uri_are_refused(tmp_path):
    work = make_workdir(tmp_path / "work", n_shards=1)
    proc = run_cli("publish", str(work), f"s3://{ACCESS_KEY}:{SECRET_KEY}@bucket/ds")
    assert proc.returncode == 2 and "credentials in the URI are refused" in proc.stderr
    assert_no_credentials([proc.stdout, proc.stderr], work)


def test_missing_bucket_is_an_error_naming_it(s3, tmp_path):
    _, _, endpoint = s3
    work = make_workdir(tmp_path / "work", n_shards=2)
    proc = run_cli("publish", str(work), "s3://no-such-bucket-here/ds", "--endpoint-url", endpoint)
    assert proc.returncode == 1 and "no-such-bucket-here" in proc.stderr and "Traceback" not in proc.stderr
    assert_no_credentials([proc.stdout, proc.stderr], work)


# ---- each source object is read once; a shard that differs from the pack manifest never lands

class _CountingStream:
    """A source stream that adds the bytes read through it to `reads[name]`."""

    def __init__(self, inner, reads: Counter, name: str):
        self.inner, self.reads, self.name = inner, reads, name

    def read(self, *args):
        data = self.inner.read(*args)
        self.reads[self.name] += len(data)
        return data

    def close(self):
        self.inner.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@pytest.fixture
def source_reads(monkeypatch):
    """(opens, bytes read) per file name, for everything publish reads from the work directory."""
    opens, reads = Counter(), Counter()
    for method in ("open_stream", "open_input"):
        original = getattr(WorkPath, method)

        def counted(self, _original=original):
            opens[self.name] += 1
            return _CountingStream(_original(self), reads, self.name)

        monkeypatch.setattr(WorkPath, method, counted)
    return opens, reads


def in_bucket(client, bucket: str, endpoint: str, work: Path) -> str:
    """The work directory copied to s3://bucket/work (this process's WorkPaths reach it through `endpoint`)."""
    for path in sorted(p for p in work.rglob("*") if p.is_file()):
        client.upload_file(str(path), bucket, f"work/{path.relative_to(work).as_posix()}")
    workpath.configure(workpath.StoreOptions(endpoint_url=endpoint))
    return f"s3://{bucket}/work"


@pytest.fixture
def store_options():
    yield
    workpath.configure(None)


@pytest.mark.parametrize("source", ["local", "bucket"])
def test_each_shard_is_read_once(s3, tmp_path, source_reads, store_options, source):
    """A fresh publish opens each source shard once and reads its bytes once (hashed as they upload); a rerun
    that skips everything reads no shard at all."""
    client, bucket, endpoint = s3
    work = make_workdir(tmp_path / "work")
    where = str(work) if source == "local" else in_bucket(client, bucket, endpoint, work)
    sizes = {p.name: p.stat().st_size for p in (work / "shards").glob("shard-*.arrow")}
    opens, reads = source_reads
    dest = f"s3://{bucket}/ds"
    result = publish(where, dest, endpoint_url=endpoint)
    assert result.committed and len(result.uploaded) == len(result.objects)
    assert {n: opens[n] for n in sizes} == dict.fromkeys(sizes, 1)
    assert {n: reads[n] for n in sizes} == sizes
    for name, size in sizes.items():
        assert client.head_object(Bucket=bucket, Key=f"ds/shards/{name}")["ContentLength"] == size
    opens.clear()
    reads.clear()
    again = publish(where, dest, endpoint_url=endpoint)
    assert again.uploaded == [] and not again.marker_written
    assert not [n for n in sizes if opens[n] or reads[n]]


def corrupt(shard: Path) -> None:
    """One bit off in the middle of the file: same size, other sha256."""
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 1
    shard.write_bytes(bytes(data))


@pytest.mark.parametrize("index", [0, 2], ids=["multipart", "single-put"])
@pytest.mark.parametrize("source", ["local", "bucket"])
def test_shard_differing_from_manifest_is_refused_and_never_lands(s3, tmp_path, store_options, source, index):
    """Same size, other bytes: found while the shard streams up; the upload is abandoned (no version of the
    key ever exists on the versioned bucket, no multipart upload is left open) and no marker is written."""
    client, bucket, endpoint = s3
    work = make_workdir(tmp_path / "work", n_shards=6)
    name = f"shard-{index:05d}.arrow"
    corrupt(work / "shards" / name)
    where = str(work) if source == "local" else in_bucket(client, bucket, endpoint, work)
    with pytest.raises(PublishRefused, match=rf"{name}: bytes differ from .*shards/manifest.json \(size \d+, sha256 "):
        publish(where, f"s3://{bucket}/ds", endpoint_url=endpoint, jobs=2)
    written = versions(client, bucket)
    assert f"ds/{MANIFEST_KEY}" not in written and f"ds/shards/{name}" not in written
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_shard_differing_from_manifest_never_lands_in_a_folder(tmp_path):
    work = make_workdir(tmp_path / "work")
    corrupt(work / "shards" / "shard-00001.arrow")
    out = tmp_path / "out"
    with pytest.raises(PublishRefused, match="shard-00001.arrow: bytes differ from"):
        publish(work, str(out), jobs=1)
    assert not (out / MANIFEST_KEY).exists() and not (out / "shards" / "shard-00001.arrow").exists()
    assert not [p for p in out.rglob("*") if p.name.startswith(".tmp-")]


def test_overwrite_with_a_differing_shard_keeps_the_old_commit(s3, tmp_path):
    """Replacing a published dataset deletes its marker before uploading; so the shards to send are proven
    first, and a work directory that is refused leaves the old dataset committed and untouched."""
    client, bucket, endpoint = s3
    old, new = make_workdir(tmp_path / "old", seed=1), make_workdir(tmp_path / "new", seed=2)
    dest = f"s3://{bucket}/ds"
    assert publish(old, dest, endpoint_url=endpoint).committed
    before = versions(client, bucket)
    corrupt(new / "shards" / "shard-00003.arrow")
    with pytest.raises(PublishRefused, match="shard-00003.arrow: bytes differ from"):
        publish(new, dest, endpoint_url=endpoint, overwrite=True)
    assert versions(client, bucket) == before
    assert run_cli("verify", dest, "--endpoint-url", endpoint).returncode == 0
