"""Ingest and exact-dedup throughput on the demo corpus (docs/s, MB/s), in-process and through Ray.

The raw-library baseline is reading the same sources with nothing but pyarrow/json (no decisions, no
writes), so the ratio says what the stage's accounting and atomic writes cost on top of reading.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from curate import pipeline
from curate.engine import LocalEngine, RayEngine
from curate.recipe import load_recipe
from curate.sources import plan_ingest, read_partition

RECIPE = Path("recipes/demo.yaml")


def _raw_read_seconds(recipe) -> tuple[float, int, int]:
    started = time.perf_counter()
    docs = nbytes = 0
    for p in plan_ingest(recipe):
        for t in read_partition(p, recipe):
            docs += t.num_rows
            nbytes += sum(t["raw_bytes"].to_pylist())
    return time.perf_counter() - started, docs, nbytes


def _run(recipe, engine, workdir: Path) -> dict:
    ctx = pipeline.Context(recipe, workdir, engine)
    return {r.stage: r.manifest for r in pipeline.run(ctx, ["ingest", "exact_dedup"])}


def main() -> None:
    recipe = load_recipe(RECIPE)
    _raw_read_seconds(recipe)  # warm the page cache so every row below reads from memory
    raw_s, docs, nbytes = _raw_read_seconds(recipe)
    mb = nbytes / 1e6
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"corpus: {RECIPE} ({docs} docs, {mb:.1f} MB)")
    print(f"{'what':<34} {'seconds':>8} {'docs/s':>9} {'MB/s':>7} {'vs raw read':>11}")
    print(f"{'raw read (sources only)':<34} {raw_s:>8.2f} {docs / raw_s:>9.0f} {mb / raw_s:>7.1f} {'1.00x':>11}")
    tmp = Path(tempfile.mkdtemp(prefix="curate-bench-"))
    try:
        for label, make in (("in-process", LocalEngine), ("ray", lambda: RayEngine())):
            engine = make()
            try:
                manifests = _run(recipe, engine, tmp / label)
            finally:
                engine.close()
            for stage, m in manifests.items():
                s = m["seconds"]
                d, b = m["totals"]["docs_in"], m["totals"]["bytes_in"] / 1e6
                ratio = f"{(b / s) / (mb / raw_s):.2f}x" if stage == "ingest" else "-"
                print(f"{stage + ' (' + label + ')':<34} {s:>8.2f} {d / s:>9.0f} {b / s:>7.1f} {ratio:>11}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"note": "stage seconds include Ray task scheduling; the demo is small (13 MB)"}))
