"""Language ID and quality-rule throughput on this Python's own English text and source code.

Text: the pydoc topics (`pydoc_data.topics`), cut into ~2 KB documents and repeated to BENCH_MB; code: the
standard library's `.py` files. Language ID through the stage (`curate.workers.language.decide`: parquet
read, preparation, batch predict, decision columns) is compared with calling the model's batch `predict`
directly on the same texts (newlines replaced in Python, which fastText requires), in the same run, the
two timed in interleaved rounds (`best_in_rounds`).
The stage runs with `mask_markup` (the default: code blocks and markup blanked before identification) and
without it. Quality rules are timed through `curate.stages.quality.apply` per built-in profile (`web` and
`curated` on the text, `code` and `code-strict` on the code) and with every rule of the table active.
Each figure is the best of REPEATS runs, as the machine is shared.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curate.bench._harness import best_in_rounds, best_of

BENCH_MB = 8
REPEATS = 3


def _text_docs(target_mb: float) -> list[str]:
    from pydoc_data.topics import topics

    docs = []
    for body in topics.values():
        paras = body.split("\n\n")
        chunk = []
        for p in paras:
            chunk.append(p)
            if sum(map(len, chunk)) > 2000:
                docs.append("\n\n".join(chunk))
                chunk = []
        if chunk:
            docs.append("\n\n".join(chunk))
    total = sum(len(d.encode()) for d in docs)
    return docs * max(1, round(target_mb * 1e6 / total))


def _code_docs(target_mb: float) -> list[str]:
    root = Path(sys.modules["json"].__file__).parents[1]
    out, size = [], 0
    for p in sorted(root.glob("*.py")):
        text = p.read_text(encoding="utf-8", errors="replace")
        out.append(text)
        size += len(text.encode())
        if size > target_mb * 1e6:
            break
    return out


def _table(texts: list[str], kind: str, lang: str) -> pa.Table:
    n = len(texts)
    return pa.table({"id": [str(i) for i in range(n)], "text": texts, "kind": [kind] * n, "source": ["b"] * n,
                     "lang": [lang] * n, "path_or_url": [None] * n, "meta": [None] * n})


def bench_language() -> list[tuple[str, float, float, float]]:
    from curate.assets import fetch_lid_model
    from curate.recipe import parse_recipe
    from curate.stages import quality
    from curate.tasks import PartTask
    from curate.workers import language as W

    model_path = str(fetch_lid_model())
    texts = _text_docs(BENCH_MB)
    code = _code_docs(BENCH_MB / 2)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    code_mb = sum(len(t.encode()) for t in code) / 1e6
    recipe = parse_recipe({"name": "b", "sources": [{"name": "b", "kind": "text", "format": "jsonl", "paths": ["x"]}],
                           "language": {"model": model_path}})
    ft = W.model(model_path)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        part = Path(tmp) / "part-00000.parquet"
        pq.write_table(_table(texts, "text", "en"), part)
        task = PartTask("language", "part-00000", "", "", tmp, recipe, input_part=str(part))
        unmasked = parse_recipe({"name": "b", "sources": [{"name": "b", "kind": "text", "format": "jsonl",
                                 "paths": ["x"]}], "language": {"model": model_path, "mask_markup": False}})
        task_plain = PartTask("language", "part-00000", "", "", tmp, unmasked, input_part=str(part))
        times = best_in_rounds({"raw": lambda: ft.predict([t[:10_000].replace("\n", " ") for t in texts], k=1),
                                "stage": lambda: [b.num_rows for b in W.decide(task, {})],
                                "stage_plain": lambda: [b.num_rows for b in W.decide(task_plain, {})]}, REPEATS)
        raw, stage, plain = times["raw"], times["stage"], times["stage_plain"]
    rows.append(("language: fastText predict (raw)", len(texts) / raw, mb / raw, 1.0))
    rows.append(("language: stage (read+mask+prepare+predict+decide)", len(texts) / stage, mb / stage, raw / stage))
    rows.append(("language: stage, mask_markup: false", len(texts) / plain, mb / plain, raw / plain))
    text_t, code_t = _table(texts, "text", "en"), _table(code, "code", "Python")
    q_text = None
    for profile, table, n, size in (("web", text_t, len(texts), mb), ("curated", text_t, len(texts), mb),
                                    ("code", code_t, len(code), code_mb), ("code-strict", code_t, len(code), code_mb),
                                    (None, text_t, len(texts), mb), (None, code_t, len(code), code_mb)):
        active = quality.active_rules({}, [], profile, {})  # None: every rule of the table
        secs = best_of(lambda a=active, t=table: quality.apply(t, a), REPEATS)
        what = f"profile {profile}" if profile else "every rule of the table"
        rows.append((f"quality: {table['kind'][0]} rules, {what}", n / secs, size / secs, float("nan")))
        q_text = secs if profile == "web" else q_text
    both = stage + q_text
    rows.append(("language + text quality (web; 1 core)", len(texts) / both, mb / both, float("nan")))
    return rows


def bench_stages_on_ray(target_mb: float = 16, files: int = 16, max_chars: int | None = None) -> tuple[float, float, float]:
    """The language and quality stages through Ray on every local CPU, on the same text in `files` jsonl
    files (one partition each); ingest untimed; best of REPEATS forced reruns on warm workers. `max_chars`
    overrides language.max_chars (the characters of each document that are identified).
    Returns (MB in, language seconds, quality seconds)."""
    import json

    from curate import pipeline
    from curate.engine import RayEngine
    from curate.recipe import load_recipe, parse_recipe

    docs = _text_docs(target_mb)
    demo = load_recipe("recipes/demo.yaml").model_dump(mode="json", exclude_none=True)
    engine = RayEngine()
    try:
        with tempfile.TemporaryDirectory(prefix="lang-bench-") as tmp:
            for k in range(files):
                with open(f"{tmp}/t{k:02d}.jsonl", "w") as f:
                    f.writelines(json.dumps({"text": d}) + "\n" for d in docs[k::files])
            recipe = parse_recipe({"name": "bench", "sources": [{"name": "t", "kind": "text", "format": "jsonl",
                                   "paths": [f"{tmp}/t*.jsonl"]}], "quality": demo["quality"],
                                   "language": {**demo["language"], **({"max_chars": max_chars} if max_chars else {})}})
            ctx = pipeline.Context(recipe, Path(tmp, "w"), engine)
            pipeline.run(ctx, ["ingest"])
            best = None
            for _ in range(REPEATS):
                ctx = pipeline.Context(recipe, Path(tmp, "w"), engine, force=True)
                lang, qual = pipeline.run(ctx, ["language", "quality"])
                secs = (lang.manifest["seconds"], qual.manifest["seconds"])
                best = secs if best is None or sum(secs) < sum(best) else best
            mb = lang.manifest["totals"]["bytes_in"] / 1e6
    finally:
        engine.close()
    return mb, *best


def main() -> None:
    rows = bench_language()
    print(f"{'what':<56} {'docs/s':>10} {'MB/s':>8} {'x raw':>7}")
    for name, dps, mbps, ratio in rows:
        print(f"{name:<56} {dps:>10.0f} {mbps:>8.2f} {ratio:>7.2f}")
    for max_chars in (None, 1000):  # the default (10,000: whole documents here), then a shorter prefix
        mb, lang, qual = bench_stages_on_ray(max_chars=max_chars)
        print(f"language + quality stages through Ray on all local CPUs, {mb:.1f} MB of text in 16 partitions, "
              f"language.max_chars {max_chars or 'default'}: language {lang:.2f} s ({mb / lang:.2f} MB/s), quality "
              f"{qual:.2f} s ({mb / qual:.2f} MB/s), together {mb / (lang + qual):.2f} MB/s")


if __name__ == "__main__":
    main()
