"""Benchmark: tokenize + pack against raw `Tokenizer.encode_batch(_fast)`, same documents, same run.

The documents are the demo corpus after `ingest` (data/demo via `curate sample`), tokenized with the demo
tokenizer (assets/demo-tokenizer.json). Modes, timed in interleaved rounds (every mode once per round,
after a warm-up round; the best of `repeats` rounds), so a passing load on the shared machine falls on all:
    raw            encode_batch_fast over the ingested texts in batches of tokenize.batch_size, with
                   tokenizers' own (Rayon) thread pool on every core: the library at its best
    raw encode_batch  the same with encode_batch (offsets too): the default batch call
    raw, 1 thread  the same with TOKENIZERS_PARALLELISM=false, for reference
    ray            the tokenize and pack stages on Ray: one task per part and CPU, one single-threaded
                   tokenizer per worker (the pipeline's default engine); Ray runs only during this mode
    local          the same stages in this process (LocalEngine), tokenizers' pool on every core
Memory: each kind of worker task runs in one fresh process that runs every task of its kind in turn, as
a Ray worker does, and reports its peak RSS (VmHWM, curate.memory); at 1x and 2x the corpus (the sources twice),
or at the scales given on the command line.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from curate.bench._harness import best_in_rounds, in_fresh_process

TOKENIZER = "assets/demo-tokenizer.json"


def _recipe(scale: int):
    from curate.recipe import load_recipe, parse_recipe

    raw = load_recipe("recipes/demo.yaml").model_dump(mode="json", exclude_none=True)
    sources = [dict(s, name=f"{s['name']}-{k}" if k else s["name"]) for k in range(scale) for s in raw["sources"]]
    epochs = {f"{n}-{k}" if k else n: e for k in range(scale) for n, e in raw["pack"]["max_epochs"].items()}
    return parse_recipe({**raw, "sources": sources, "pack": {**raw["pack"], "max_epochs": epochs}})


def _ingest(recipe, workdir: Path) -> list[str]:
    """Runs ingest (not timed); the texts of its parts, in part order, are what every mode encodes."""
    import pyarrow.parquet as pq

    from curate import pipeline
    from curate.engine import LocalEngine

    pipeline.run(pipeline.Context(recipe, workdir, LocalEngine()), ["ingest"])
    return [t for p in sorted((workdir / "ingest").glob("part-*.parquet"))
            for t in pq.read_table(p, columns=["text"])["text"].to_pylist()]


def _raw(texts: list[str], batch_size: int, parallel: bool, method: str, counted: dict, name: str):
    """One pass of the raw library over `texts` in batches of `batch_size`; its token count goes to counted[name]."""
    from tokenizers import Tokenizer

    encode = getattr(Tokenizer.from_file(TOKENIZER), method)

    def run():
        before = os.environ.get("TOKENIZERS_PARALLELISM")
        os.environ["TOKENIZERS_PARALLELISM"] = "true" if parallel else "false"  # read by tokenizers at every call
        try:
            counted[name] = sum(len(e.ids) for i in range(0, len(texts), batch_size)
                                for e in encode(texts[i:i + batch_size], add_special_tokens=False))
        finally:
            if before is None:
                os.environ.pop("TOKENIZERS_PARALLELISM")
            else:
                os.environ["TOKENIZERS_PARALLELISM"] = before

    return run


def _stages(recipe, workdir: Path, engine, counted: dict, name: str):
    """One forced rerun of tokenize + pack; its tokens and tokenize's own seconds go to counted[name]."""
    from curate import pipeline

    def run():
        out = pipeline.run(pipeline.Context(recipe, workdir, engine, force=True), ["tokenize", "pack"])
        extra = out[0].manifest["extra"]
        tok_s = min(out[0].manifest["seconds"], counted.get(name, (0, float("inf")))[1])
        counted[name] = (int(extra["tokens_code"] + extra["tokens_text"]), tok_s)

    return run


def _stages_on_ray(recipe, workdir: Path, counted: dict, name: str):
    """`_stages` on a Ray started for this call and shut down after it, so that Ray's idle workers do not
    take CPU from the raw runs; a warm-up run (workers started, tokenizer loaded) is not timed."""
    from curate.engine import RayEngine

    def run() -> float:
        ray = RayEngine()
        try:
            stages = _stages(recipe, workdir, ray, counted, name)
            stages()
            start = time.perf_counter()
            stages()
            return time.perf_counter() - start
        finally:
            ray.close()

    return run


# ---------------------------------------------------------------------------------------------- memory
def _peak_mb() -> float:
    from curate.memory import peak_rss_mb

    return peak_rss_mb()


def _worker_tokenize(recipe, workdir: str) -> float:
    from curate import tasks

    w = Path(workdir)
    for p in sorted((w / "ingest").glob("part-*.parquet")):
        tasks.run_part(tasks.PartTask("tokenize", p.stem, "bench", "bench", str(w / "mem-tokenize"), recipe,
                                      input_part=str(p), options={"parallel_encode": False}))
    return _peak_mb()


def _worker_scatter(workdir: str) -> float:
    from curate.workers import pack as W

    w = Path(workdir)
    for i, p in enumerate(sorted((w / "tokenize").glob("part-*.parquet"))):
        W.scatter_part(str(p), i, str(w / "pack" / "_work"), str(w / "mem-scatter"))
    return _peak_mb()


def _worker_shards(workdir: str, seq_len: int) -> float:
    from curate import parts
    from curate.workers import pack as W

    w = Path(workdir)
    tok = parts.read_json(w / "shards" / "manifest.json")
    scatter = sorted(str(p) for p in (w / "pack" / "_work" / "scatter").glob("part-*.parquet"))
    for k in range(len(tok["shards"])):
        W.write_shard(k, scatter, str(w / "mem-shards" / f"{k}.arrow"), str(w / "mem-shards" / f"{k}.json"),
                      seq_len, tok["tokenizer"]["eos_id"], tok["tokenizer"]["dtype"])
    return _peak_mb()


def _worker_idle() -> float:
    import pyarrow.parquet  # noqa: F401  (the baseline: what every worker imports)
    import tokenizers  # noqa: F401

    import curate.workers.pack  # noqa: F401

    return _peak_mb()


def peak_rss(recipe, workdir: Path) -> dict:
    return {"idle": in_fresh_process(_worker_idle),
            "tokenize": in_fresh_process(_worker_tokenize, recipe, str(workdir)),
            "pack scatter": in_fresh_process(_worker_scatter, str(workdir)),
            "pack write_shard": in_fresh_process(_worker_shards, str(workdir), recipe.pack.seq_len)}


# ---------------------------------------------------------------------------------------------- main
def bench_pack(repeats: int = 3, scales: tuple[int, ...] = (1, 2)) -> dict:
    from curate.engine import LocalEngine

    root = Path(tempfile.mkdtemp(prefix="curate-bench-pack-"))
    try:
        recipe = _recipe(1)
        texts = _ingest(recipe, root / "x1")
        mb = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts) / 1e6
        batch = recipe.tokenize.batch_size
        counted: dict = {}
        fns = {"raw encode_batch_fast": _raw(texts, batch, True, "encode_batch_fast", counted, "raw encode_batch_fast"),
               "raw encode_batch": _raw(texts, batch, True, "encode_batch", counted, "raw encode_batch"),
               "raw, 1 thread": _raw(texts, batch, False, "encode_batch_fast", counted, "raw, 1 thread"),
               "tokenize+pack, ray": _stages_on_ray(recipe, root / "x1", counted, "tokenize+pack, ray"),
               "tokenize+pack, local": _stages(recipe, root / "x1", LocalEngine(), counted, "tokenize+pack, local")}
        seconds = best_in_rounds(fns, repeats)
        modes = {name: {"seconds": s, "tokens": counted[name] if name.startswith("raw") else counted[name][0]}
                 for name, s in seconds.items()}
        for name in ("tokenize+pack, ray", "tokenize+pack, local"):
            modes[name]["tokenize_s"] = counted[name][1]
        out = {"docs": len(texts), "mb": mb, "cpus": os.cpu_count(), "modes": modes, "memory": {}}
        for scale in scales:
            w = root / f"x{scale}"
            r = _recipe(scale)
            if scale != 1:
                _ingest(r, w)
                _run_once(r, w)
            out["memory"][scale] = peak_rss(r, w)
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run_once(recipe, workdir: Path) -> None:
    from curate import pipeline
    from curate.engine import LocalEngine

    pipeline.run(pipeline.Context(recipe, workdir, LocalEngine()), ["tokenize", "pack"])


def main(argv: list[str] | None = None) -> None:
    """`make bench` calls main() (memory at 1x and 2x the corpus); `python -m curate.bench.pack 1 2 4 8`
    measures the workers' peak memory at the scales given."""
    if not Path(TOKENIZER).exists():
        print(f"pack bench: {TOKENIZER} missing (run `make setup`)")
        return
    scales = tuple(int(a) for a in argv) if argv else (1, 2)
    r = bench_pack(scales=scales)
    raw_s = r["modes"]["raw encode_batch_fast"]["seconds"]
    print(f"tokenize + pack on {r['docs']} demo documents ({r['mb']:.1f} MB), {r['cpus']} CPUs, best of 3 "
          "interleaved rounds after a warm-up round:")
    print(f"  {'':<28} {'seconds':>8} {'MB/s':>7} {'tokens/s':>10} {'x raw':>6}")
    for name, m in r["modes"].items():
        print(f"  {name:<28} {m['seconds']:>8.2f} {r['mb'] / m['seconds']:>7.2f} {m['tokens'] / m['seconds']:>10.0f} "
              f"{raw_s / m['seconds']:>6.2f}")
    print("  peak RSS per worker process (MB), corpus " + " / ".join(f"{k}x" for k in sorted(r["memory"])) + ":")
    for kind in next(iter(r["memory"].values())):
        print(f"    {kind:<20} " + " / ".join(f"{r['memory'][s][kind]:.0f}" for s in sorted(r["memory"])))


if __name__ == "__main__":
    main(sys.argv[1:])
