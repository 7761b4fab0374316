"""Shared fixtures: one Ray instance per test session (requested, never autouse), recipe helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from curate.engine import LocalEngine
from tests.s3server import s3, s3_endpoint  # noqa: F401  (fixtures: the loopback S3 server)

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def ray_engine():
    from curate.engine import RayEngine

    engine = RayEngine(num_cpus=2)
    yield engine
    engine.close()


@pytest.fixture
def local_engine():
    return LocalEngine()


@pytest.fixture(scope="session")
def lid_model_path() -> Path:
    """The checksum-verified fastText lid.176.ftz that `make setup` fetched (fetched here if missing)."""
    from curate.assets import fetch_lid_model

    return fetch_lid_model()  # the per-user assets folder (CURATE_HOME), where `curate assets` puts it


@pytest.fixture(scope="session")
def humaneval_path() -> Path:
    """The checksum-verified HumanEval.jsonl.gz that `make setup` fetched (fetched here if missing)."""
    from curate.assets import fetch_humaneval

    return fetch_humaneval()
