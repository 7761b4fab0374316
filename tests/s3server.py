"""The loopback S3 server the tests share: moto's ThreadedMotoServer on 127.0.0.1, fake credentials.

Registered as fixtures in conftest.py: `s3_endpoint` (session) and `s3` (a fresh versioned bucket)."""

from __future__ import annotations

import logging
import os
import socket
import uuid

import pytest

ACCESS_KEY = "AKIACURATETESTKEY7Q3Z"
SECRET_KEY = "curate/test+SECRET+do-not-leak+4f1b9c"


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's ThreadedMotoServer on 127.0.0.1 and a free port; fake credentials in this process's env."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_DEFAULT_REGION="us-east-1")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def s3(s3_endpoint):
    """A fresh versioned bucket (every PUT leaves a version: the server's own count of uploads) and a client."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint)
    bucket = f"curate-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return client, bucket, s3_endpoint
