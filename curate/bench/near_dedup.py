"""near_dedup throughput: signatures against datasketch on the same documents in the same run, and the
whole stage end to end.

Signatures. Baseline: what a datasketch user writes per document: the same shingles
(`near_dedup.shingles`), then `MinHash(num_perm=256).update_batch(shingles)` with datasketch's default
sha1_hash32. Ours: the hot path of the stage, `shingle_sets` (sorted, distinct) + `signatures` over Arrow
batches of 8192 documents (the stage's batch size). Both on one core, best of REPEATS.
Stage. `ingest` and `exact_dedup` run first (untimed); then `near_dedup` alone, on the engine given
(Ray on all local CPUs by default): MB/s of its input text over its wall time, the driver's peak RSS and
the signature workers' peak RSS, each also per million documents.
Corpora: the demo's code files (data/demo, `curate sample`), and a generated code-like corpus of
GENERATED_MB with 10 % planted near duplicates (`python -m curate.bench.near_dedup 200` for README's figure).
Code-shaped corpus (`bench_code`, in `make bench`; `--no-code` leaves it out): CODE_MB of generated code
with vendored copies, shared license headers and generated files (curate/bench/_code_corpus.py), through
`curate run --stages near_dedup` in a fresh process (CLI wall, Ray start included) against datasketch's
update_batch on one core on a BASELINE_MB sample of the same documents; phase seconds, pairs verified and
skipped, and each phase's peak RSS from the manifest.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import numpy as np

from curate.bench._harness import in_fresh_process
from curate.stages import near_dedup as N

REPEATS = 2
GENERATED_MB = 20
BASELINE_MB = 8  # datasketch runs on a prefix of this size (its rate is flat in corpus size)


def demo_docs(root: str = "data/demo") -> list[str]:
    import pyarrow.parquet as pq

    docs = [p.read_text("utf-8", "replace") for p in sorted(Path(root, "code").rglob("*.py"))]
    headers = Path(root, "code", "headers.parquet")
    if headers.exists():
        docs += pq.read_table(headers, columns=["content"])["content"].to_pylist()
    return [d for d in docs if d]


def generated_docs(mb: float, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    vocab = [f"{w}{i}" for w in ("value", "node", "get_", "set_", "Item", "self.x") for i in range(3000)]
    seps = [" ", "(", ")", ", ", ".", " = ", ":\n    ", "\n", "[", "]"]
    docs, total = [], 0
    while total < mb * 1e6:
        n = int(rng.lognormvariate(6, 1)) + 5
        text = "".join(rng.choice(vocab) + rng.choice(seps) for _ in range(n))
        docs.append(text)
        total += len(text)
    return docs


def ours(docs: list[str], batch: int = 8192) -> float:
    import pyarrow as pa

    texts = pa.array(docs, pa.large_string())  # the stage reads Arrow columns, never Python strings
    start = time.perf_counter()
    for i in range(0, len(docs), batch):
        chunk = texts[i : i + batch]
        h, counts = N.shingle_sets(chunk, 5)  # the stage's own path: the sets are its verification payload too
        N.signatures(np.repeat(np.arange(len(chunk)), counts), h, len(chunk), 256, 1)
    return time.perf_counter() - start


def datasketch_baseline(docs: list[str]) -> float:
    from datasketch import MinHash

    start = time.perf_counter()
    for text in docs:
        m = MinHash(num_perm=256)
        m.update_batch([s.encode("utf-8") for s in N.shingles(text, 5)])
    return time.perf_counter() - start


def _prefix(docs: list[str], mb: float) -> list[str]:
    out, total = [], 0
    for d in docs:
        if total >= mb * 1e6:
            break
        out.append(d)
        total += len(d.encode("utf-8"))
    return out


def bench_near_dedup(corpora: dict[str, list[str]]) -> list[dict]:
    N._non_word_pattern()  # built once per process; not part of the per-document rate
    rows = []
    for name, docs in corpora.items():
        mb = sum(len(d.encode("utf-8")) for d in docs) / 1e6
        base_docs = _prefix(docs, BASELINE_MB)
        base_mb = sum(len(d.encode("utf-8")) for d in base_docs) / 1e6
        t_ours = min(ours(docs) for _ in range(REPEATS))
        t_base = min(datasketch_baseline(base_docs) for _ in range(REPEATS))
        rows.append({"corpus": name, "MB": round(mb, 1), "docs": len(docs),
                     "ours MB/s": round(mb / t_ours, 2), "ours docs/s": round(len(docs) / t_ours),
                     "datasketch MB/s": round(base_mb / t_base, 2),
                     "ratio": round((mb / t_ours) / (base_mb / t_base), 2)})
    return rows


def write_corpus(root: Path, mb: float, seed: int = 0, dup_share: float = 0.1, file_mb: float = 32) -> Path:
    """`generated_docs` as parquet files (id, content), a `dup_share` of them near duplicates (0.2 % of
    characters replaced) of an earlier document, so the later phases have real clusters to work on."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed + 1)
    docs = generated_docs(mb, seed)
    for i in range(1, len(docs)):
        if rng.random() < dup_share:
            src = list(docs[rng.randrange(i)])
            for _ in range(max(1, len(src) // 500)):
                src[rng.randrange(len(src))] = rng.choice("abcxyz ")
            docs[i] = "".join(src)
    root.mkdir(parents=True, exist_ok=True)
    start, n, total = 0, 0, 0
    for i, d in enumerate(docs + [""]):
        total += len(d)
        if total >= file_mb * 1e6 or i == len(docs):
            chunk = docs[start : i + 1]
            pq.write_table(pa.table({"id": [f"g{j:08d}" for j in range(start, start + len(chunk))], "content": chunk}),
                           root / f"gen-{n:03d}.parquet")
            start, n, total = i + 1, n + 1, 0
    return root


def bench_stage(recipe, workdir: Path, engine) -> dict:
    """near_dedup alone, after untimed ingest and exact_dedup, on `engine`."""
    from curate import pipeline
    from curate.memory import peak_rss_mb

    ctx = pipeline.Context(recipe, Path(workdir), engine)
    pipeline.run(ctx, pipeline.select_stages(["ingest", "exact_dedup"]))
    start = time.perf_counter()
    (result,) = pipeline.run(ctx, ["near_dedup"])
    seconds = time.perf_counter() - start
    extra = result.manifest["extra"]
    mdocs = max(extra["docs"], 1) / 1e6
    driver = peak_rss_mb()
    worker = extra["signature_worker_peak_rss_mb"]
    return {"docs": extra["docs"], "MB": round(extra["bytes"] / 1e6, 1), "seconds": round(seconds, 1),
            "MB/s": round(extra["bytes"] / 1e6 / seconds, 2), "removed": sum(result.manifest["totals"]["docs_dropped"].values()),
            "driver RSS MB": round(driver), "driver MB/Mdoc": round(driver / mdocs),
            "worker RSS MB": round(worker), "worker MB/Mdoc": round(worker / mdocs),
            "phases": extra.get("phase_seconds", {})}


CODE_MB = 160  # the code-shaped corpus (curate/bench/_code_corpus.py): >= 150 MB, like the real one
_WITH_PEAK = ("import atexit, sys; from curate.memory import peak_rss_mb; from curate.cli import main; "
              "atexit.register(lambda: open(sys.argv[1], 'w').write(str(peak_rss_mb()))); sys.exit(main(sys.argv[2:]))")


def code_recipe(corpus: Path, out: Path) -> Path:
    import yaml

    out.write_text(yaml.safe_dump({"name": "code-bench", "sources": [
        {"name": "code", "kind": "code", "format": "parquet", "paths": [str(corpus / "*.parquet")],
         "text_field": "content", "id_field": "id"}]}))
    return out


def cli_stage(recipe: Path, workdir: Path, stages: str, *extra: str) -> tuple[float, float]:
    """(wall seconds, driver peak RSS MiB) of `curate run --stages ...` in a fresh interpreter: what a
    user's command costs, Ray's start included."""
    import subprocess

    peak = workdir.parent / f".peak-{workdir.name}"
    for _ in range(3):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _WITH_PEAK, str(peak), "-q", "run", str(recipe), "--workdir",
                               str(workdir), "--stages", stages, "--force", *extra], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        # on a shared machine another user's Ray may be found starting up at the same moment: try again
        if proc.returncode == 0 or "existing cluster" not in proc.stderr:
            break
        time.sleep(5)
    if proc.returncode != 0:
        raise SystemExit(f"curate run --stages {stages} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start, float(peak.read_text())


def input_docs(workdir: Path) -> list[str]:
    """near_dedup's input texts (exact_dedup's kept parts), in part order."""
    import pyarrow.parquet as pq

    return [t for f in sorted((workdir / "exact_dedup").glob("part-*.parquet"))
            for t in pq.read_table(f, columns=["text"])["text"].to_pylist()]


def bench_code(mb: float = CODE_MB, scale: int = 1, keep: Path | None = None, *extra: str) -> dict:
    """The code-shaped corpus through ingest and exact_dedup (untimed), then `curate run --stages near_dedup`
    timed end to end, and datasketch's update_batch on one core on a BASELINE_MB sample of the same
    documents (every k-th, so each family is in it as often as in the whole)."""
    import json
    import tempfile

    from curate.bench import _code_corpus

    tmp = Path(keep or tempfile.mkdtemp(prefix="nd-code-"))
    corpus = in_fresh_process(_code_corpus.write, tmp / "corpus", mb, 0, scale)
    recipe = code_recipe(corpus, tmp / "code.yaml")
    cli_stage(recipe, tmp / "w", "ingest,exact_dedup", *extra)
    wall, driver = cli_stage(recipe, tmp / "w", "near_dedup", *extra)
    nd = json.loads((tmp / "w/near_dedup/_manifest.json").read_text())["extra"]
    docs = input_docs(tmp / "w") if scale == 1 else []
    sample = docs[:: max(1, round(nd["bytes"] / 1e6 / BASELINE_MB))]
    base_mb = sum(len(d.encode("utf-8")) for d in sample) / 1e6
    base = base_mb / min(datasketch_baseline(sample) for _ in range(REPEATS)) if sample else float("nan")
    mbs = nd["bytes"] / 1e6 / wall
    return {"MB": round(nd["bytes"] / 1e6, 1), "docs": nd["docs"], "wall s": round(wall, 1), "MB/s": round(mbs, 2),
            "datasketch MB/s": round(base, 2), "ratio": round(mbs / base, 2), "candidate pairs": nd["candidate_pairs"],
            "verified": nd.get("pairs_verified"), "skipped": nd.get("pairs_skipped"), "largest cluster":
            max(map(int, nd["cluster_sizes"]), default=0), "driver RSS MB": round(driver),
            "phase s": nd["phase_seconds"], "phase peak RSS MB": nd.get("phase_peak_rss_mb", {})}


def _table(title: str, rows: list[dict]) -> None:
    print(title)
    cols = list(rows[0])
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r[c]) for c in cols))


def main(argv: list[str] | None = None) -> None:
    """`make bench` calls main() with no arguments; `python -m curate.bench.near_dedup MB [--stage]` sets
    the generated size and adds the end-to-end runs (Ray on all local CPUs)."""
    argv = list(argv or [])
    stage = "--stage" in argv
    argv = [a for a in argv if a != "--stage"]
    mb = float(argv[0]) if argv else GENERATED_MB
    if stage:  # first, in a fresh process: its peak RSS is then the stage's driver, not this benchmark
        in_fresh_process(_stage_main, mb)
    corpora = {"demo code": demo_docs(), f"generated {mb:g} MB": generated_docs(mb)}
    rows = bench_near_dedup({k: v for k, v in corpora.items() if v})
    _table(f"near_dedup: MinHash signatures (256 perm, 5-gram shingles), one core, best of {REPEATS}", rows)
    if "--no-code" not in sys.argv:
        row = bench_code(CODE_MB)
        _table(f"near_dedup on the code-shaped corpus ({CODE_MB} MB generated, curate/bench/_code_corpus.py): "
               "`curate run --stages near_dedup` wall (Ray start included) vs datasketch update_batch, one core",
               [{k: v for k, v in row.items() if not k.startswith("phase")}])
        print("phase seconds:", row["phase s"])
        print("peak RSS per phase (MiB, the largest task's own peak):", row["phase peak RSS MB"])


def _stage_main(mb: float) -> None:
    import tempfile

    from curate.engine import RayEngine
    from curate.recipe import load_recipe, parse_recipe

    engine = RayEngine()
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="nd-bench-") as tmp:
            if Path("recipes/demo.yaml").exists() and Path("data/demo").exists():
                rows.append({"corpus": "demo", **bench_stage(load_recipe("recipes/demo.yaml"), Path(tmp, "demo"), engine)})
            corpus = in_fresh_process(write_corpus, Path(tmp, "corpus"), mb)  # the driver never holds the texts
            recipe = parse_recipe({"name": "bench", "sources": [
                {"name": "gen", "kind": "code", "format": "parquet", "paths": [str(corpus / "*.parquet")],
                 "text_field": "content", "id_field": "id"}]})
            rows.append({"corpus": f"generated {mb:g} MB", **bench_stage(recipe, Path(tmp, "gen"), engine)})
    finally:
        engine.close()
    _table(f"near_dedup stage end to end (exact_dedup output -> near_dedup output), {engine.num_cpus} CPUs", rows)


if __name__ == "__main__":
    main(sys.argv[1:])
