"""Publish throughput to a loopback S3 server (moto's standalone server, real HTTP) against plain boto3.

The baseline is `boto3.client("s3").upload_file` of the same files, one after another, with boto3's
default TransferConfig (8 MiB multipart threshold and parts, 10 threads per file), in the same run
against the same server. `curate publish` is timed three times: its upload phase alone (the like-for-like
figure), end to end from a local work directory (hashing, remote stat, upload, read-back of every object,
marker), and end to end from a work directory in the same bucket (store to store: every source byte is a
download). Each figure is the best of REPEATS runs, as the machine is shared.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import tempfile
import time
import uuid
from pathlib import Path

from curate import workpath
from curate.publish import publish

SHARDS = [24 << 20] * 4 + [6 << 20] * 4  # 120 MiB: multipart-sized and single-PUT-sized shards
REPEATS = 3
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _workdir(root: Path) -> Path:
    """Random-byte shards (incompressible, like token ids) and a pack manifest with their sha256."""
    rng = random.Random(0)
    shards = root / "shards"
    shards.mkdir(parents=True)
    records = []
    for i, size in enumerate(SHARDS):
        data = rng.randbytes(size)
        (shards / f"shard-{i:05d}.arrow").write_bytes(data)
        records.append({"file": f"shard-{i:05d}.arrow", "bytes": size, "sha256": hashlib.sha256(data).hexdigest()})
    (shards / "manifest.json").write_text(json.dumps({"shards": records}))
    return root


def _boto3_seconds(client, bucket: str, files: list[Path]) -> float:
    started = time.perf_counter()
    for path in files:
        client.upload_file(str(path), bucket, f"boto3/{uuid.uuid4().hex}/{path.name}")
    return time.perf_counter() - started


def _empty(client, bucket: str, keep: str = "work/") -> None:
    """Frees the server's memory between repeats (the bucket work directory under `keep` stays)."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            if not obj["Key"].startswith(keep):
                client.delete_object(Bucket=bucket, Key=obj["Key"])


def bench_publish(workdir: Path, endpoint: str) -> dict:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    bucket = "bench"
    client.create_bucket(Bucket=bucket)
    files = sorted((workdir / "shards").glob("*"))
    total = sum(p.stat().st_size for p in files)
    for path in files:  # the same work directory in the bucket, for the store-to-store figure
        client.upload_file(str(path), bucket, f"work/shards/{path.name}")
    workpath.configure(workpath.StoreOptions(endpoint_url=endpoint))
    best = {"boto3": float("inf"), "upload": float("inf"), "end_to_end": float("inf"), "from_bucket": float("inf")}
    for _ in range(REPEATS):
        best["boto3"] = min(best["boto3"], _boto3_seconds(client, bucket, files))
        _empty(client, bucket)
        started = time.perf_counter()
        result = publish(workdir, f"s3://{bucket}/curate-{uuid.uuid4().hex}", endpoint_url=endpoint)
        best["end_to_end"] = min(best["end_to_end"], time.perf_counter() - started)
        best["upload"] = min(best["upload"], result.seconds_upload)
        _empty(client, bucket)
        started = time.perf_counter()
        publish(f"s3://{bucket}/work", f"s3://{bucket}/curate-{uuid.uuid4().hex}", endpoint_url=endpoint)
        best["from_bucket"] = min(best["from_bucket"], time.perf_counter() - started)
        _empty(client, bucket)
    workpath.configure(None)
    return {"bytes": total, "files": len(files), **best}


def main() -> None:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the server logs every request otherwise

    saved = {k: os.environ.get(k) for k in FAKE_CREDENTIALS}
    os.environ.update(FAKE_CREDENTIALS)  # never send real credentials anywhere, not even to loopback
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        with tempfile.TemporaryDirectory(prefix="curate-bench-publish-") as tmp:
            fig = bench_publish(_workdir(Path(tmp)), f"http://127.0.0.1:{port}")
    finally:
        server.stop()
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    mb = fig["bytes"] / 1e6
    print(f"publish: {fig['files']} files, {mb:.0f} MB, moto server on loopback, best of {REPEATS}")
    print(f"{'method':<34}{'seconds':>9}{'MB/s':>9}{'vs boto3':>10}")
    for name, key in (("boto3 upload_file (sequential)", "boto3"), ("curate publish: upload phase", "upload"),
                      ("curate publish: end to end", "end_to_end"),
                      ("curate publish: from a bucket", "from_bucket")):
        print(f"{name:<34}{fig[key]:>9.2f}{mb / fig[key]:>9.1f}{fig['boto3'] / fig[key]:>9.2f}x")


if __name__ == "__main__":
    main()
