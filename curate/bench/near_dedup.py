"""near_dedup signature throughput against datasketch on the same documents, in the same run.

Baseline: what a datasketch user writes per document: the same shingles (`near_dedup.shingles`), then
`MinHash(num_perm=256).update_batch(shingles)` with datasketch's default sha1_hash32. Ours: the vectorised
`shingle_hashes` + `signatures` over batches of 2048 documents. Both on one core, best of REPEATS.
Corpora: the demo's code files (data/demo, `curate sample`), and a generated code-like corpus of
GENERATED_MB (`python -m curate.bench.near_dedup 200` for the README's 200 MB figure).
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

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


def ours(docs: list[str], batch: int = 2048) -> float:
    start = time.perf_counter()
    for i in range(0, len(docs), batch):
        chunk = docs[i : i + batch]
        doc, h = N.shingle_hashes(chunk, 5)
        N.signatures(doc, h, len(chunk), 256, 1)
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


def main(argv: list[str] | None = None) -> None:
    """`make bench` calls main() with no arguments; `python -m curate.bench.near_dedup MB` sets the size."""
    mb = float(argv[0]) if argv else GENERATED_MB
    corpora = {"demo code": demo_docs(), f"generated {mb:g} MB": generated_docs(mb)}
    rows = bench_near_dedup({k: v for k, v in corpora.items() if v})
    print("near_dedup: MinHash signatures (256 perm, 5-gram shingles), one core, best of", REPEATS)
    cols = list(rows[0])
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r[c]) for c in cols))


if __name__ == "__main__":
    main(sys.argv[1:])
