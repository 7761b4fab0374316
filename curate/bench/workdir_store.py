"""The demo pipeline with its work directory in a bucket against the same run on local disk.

`curate run recipes/demo.yaml` (every stage, the embedded Ray, a fresh process each time) with
`--workdir` a temporary folder, and with `--workdir s3://bench/<run>` on a loopback S3 server (moto's
standalone server, real HTTP, in this process), alternated so that both see the same machine load. Wall
seconds of the whole command (Ray start included), best of REPEATS each; the goal is at most 2x. Needs
`make setup` (the demo corpus in data/demo and its tokenizer).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPEATS = 2
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
RECIPE = "recipes/demo.yaml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(workdir: str, endpoint: str | None) -> float:
    cmd = [sys.executable, "-m", "curate.cli", "-q", "run", RECIPE, "--workdir", workdir]
    cmd += ["--endpoint-url", endpoint] if endpoint else []
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **FAKE_CREDENTIALS})
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"workdir_store: {' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return seconds


def _objects(client, bucket: str, prefix: str) -> tuple[int, int]:
    n = size = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            n, size = n + 1, size + obj["Size"]
    return n, size


def main() -> None:
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the server logs every request otherwise
    if not Path("data/demo").is_dir():
        raise SystemExit("workdir_store: data/demo is missing; run `make setup` first")
    saved = {k: os.environ.get(k) for k in FAKE_CREDENTIALS}
    os.environ.update(FAKE_CREDENTIALS)  # never send real credentials anywhere, not even to loopback
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket="bench")
        local, bucket = [], []
        with tempfile.TemporaryDirectory(prefix="curate-bench-workdir-") as tmp:
            for i in range(REPEATS):
                local.append(_run(f"{tmp}/run{i}", None))
                prefix = f"run-{uuid.uuid4().hex[:8]}"
                bucket.append(_run(f"s3://bench/{prefix}", endpoint))
            n, size = _objects(client, "bench", prefix)
    finally:
        server.stop()
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    best_local, best_bucket = min(local), min(bucket)
    print(f"demo pipeline, every stage, embedded Ray; work directory on local disk vs in a bucket on a loopback "
          f"S3 server ({n} objects, {size / 1e6:.1f} MB written per run); best of {REPEATS}")
    print(f"{'work directory':<34}{'seconds':>9}{'vs local':>10}")
    print(f"{'local disk':<34}{best_local:>9.1f}{1.0:>9.2f}x")
    print(f"{'s3:// (loopback server)':<34}{best_bucket:>9.1f}{best_bucket / best_local:>9.2f}x   (goal: <= 2x)")
    print(f"all runs: local {', '.join(f'{s:.1f}' for s in local)}; bucket {', '.join(f'{s:.1f}' for s in bucket)}")


if __name__ == "__main__":
    main()
