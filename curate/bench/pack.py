"""Benchmark: tokenize (+ EOS framing into Arrow) and pack against raw `Tokenizer.encode_batch_fast`.

Runs on the demo corpus's documents (data/demo via `curate sample`) in this process, one core, with the
demo tokenizer (assets/demo-tokenizer.json), so the ratio compares like with like in the same run.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _documents(max_docs: int | None = None) -> pa.Table:
    from curate.recipe import load_recipe
    from curate.sources import plan_ingest, read_partition

    recipe = load_recipe("recipes/demo.yaml")
    tables = [raw.select(["id", "text"]) for p in plan_ingest(recipe) for raw in read_partition(p, recipe)]
    t = pa.concat_tables(tables)
    t = t.filter(pc.is_valid(t["text"]))
    return t.slice(0, max_docs) if max_docs else t


def bench_pack(tokenizer: str = "assets/demo-tokenizer.json") -> dict:
    from tokenizers import Tokenizer

    from curate.recipe import PackConfig, TokenizeConfig
    from curate.stages import pack as P
    from curate.stages import tokenize as T
    from curate.workers.tokenize import special_ids

    docs = _documents()
    texts = docs["text"].to_pylist()
    mb = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts) / 1e6
    tok = Tokenizer.from_file(tokenizer)
    special = special_ids(tok, TokenizeConfig(tokenizer=tokenizer))
    start = time.perf_counter()
    raw = tok.encode_batch_fast(texts, add_special_tokens=False)
    raw_s = time.perf_counter() - start
    start = time.perf_counter()
    batches = [T.encode(tok, docs.slice(i, 1000), special) for i in range(0, docs.num_rows, 1000)]
    stage_s = time.perf_counter() - start
    n_tokens = np.concatenate([b["n_tokens"].to_numpy() for b in batches])
    tokens = int(sum(len(e.ids) for e in raw))
    side = (np.arange(len(n_tokens)) % 12 == 0).astype(np.int64)  # ~1/12 of documents as text, for the plan
    groups = {"side": np.array([0, 1]), "weight": np.ones(2), "max_epochs": np.array([1.0, 10.0]),
              "tokens": np.bincount(side, weights=n_tokens, minlength=2)}
    start = time.perf_counter()
    plan = P.plan_pack(n_tokens, side, groups, ["code", "text"], P.splitmix64(np.arange(len(n_tokens))),
                       PackConfig(seq_len=512, shard_tokens=1 << 20), 0, False)
    plan_s = time.perf_counter() - start
    return {"docs": len(texts), "mb": mb, "tokens": tokens, "raw_s": raw_s, "stage_s": stage_s, "plan_s": plan_s,
            "shards": plan.n_shards, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    if not Path("assets/demo-tokenizer.json").exists():
        print("pack bench: assets/demo-tokenizer.json missing (run `make setup`)")
        return
    r = bench_pack()
    print(f"tokenize on {r['docs']} demo documents ({r['mb']:.1f} MB, {r['tokens']} tokens), 1 process:")
    print(f"  {'':<32} {'seconds':>8} {'MB/s':>8} {'tokens/s':>12}")
    for name, s in (("raw encode_batch_fast", r["raw_s"]), ("tokenize stage (ids + EOS, Arrow)", r["stage_s"])):
        print(f"  {name:<32} {s:>8.2f} {r['mb'] / s:>8.2f} {r['tokens'] / s:>12.0f}")
    print(f"  ratio stage/raw throughput: {r['raw_s'] / r['stage_s']:.2f}x")
    print(f"  pack plan: {r['plan_s']:.3f} s for {r['docs']} documents, {r['shards']} shards; "
          f"peak RSS {r['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
