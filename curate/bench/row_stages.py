"""decontaminate (and redact, when present) through Ray on 2 CPUs, against reading and writing the same
parts without work.

Corpus: the Python files of this interpreter's standard library (code, ~25-60 MB, real-looking), in 16
jsonl files (one partition each); ingest is untimed. "read + write" is the decontaminate stage with no
benchmark (`benchmarks: []`): the same part reading, per-source split, decision columns and part
writing, without the index lookups. Each stage runs as a forced rerun on warm Ray workers; rounds
interleave the stages so a passing load on the shared machine falls on all of them; best of REPEATS.
MB/s = the stage's input bytes / the stage's seconds in its manifest. Goals (issue 15): decontaminate
>= 20 MB/s on code, redact >= 8 MB/s on code.
"""

from __future__ import annotations

import json
import sysconfig
import tempfile
from pathlib import Path

from curate.bench._harness import best_in_rounds
from curate.stagespec import stage_keys

REPEATS = 3
FILES = 16


def code_docs(target_mb: float) -> list[str]:
    """Standard-library .py files, in path order, up to `target_mb` MB of UTF-8."""
    docs, size = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        docs.append(text)
        size += len(text.encode())
        if size >= target_mb * 1e6:
            break
    return docs


def cases() -> dict[str, tuple[str, dict]]:
    """name -> (stage, its recipe section)."""
    out = {"read + write (no work)": ("decontaminate", {"benchmarks": []}),
           "decontaminate (HumanEval, 13-grams)": ("decontaminate", {})}
    if "redact" in stage_keys():
        out["redact (email, ip_address, secret)"] = ("redact", {})
    return out


def bench(target_mb: float = 32, num_cpus: int = 2) -> dict[str, tuple[float, float]]:
    """name -> (MB in, best seconds)."""
    from curate import pipeline
    from curate.engine import RayEngine
    from curate.recipe import parse_recipe

    docs = code_docs(target_mb)
    engine = RayEngine(num_cpus=num_cpus)
    results: dict[str, tuple[float, float]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="row-bench-") as tmp:
            for k in range(FILES):
                with open(f"{tmp}/c{k:02d}.jsonl", "w") as f:
                    f.writelines(json.dumps({"text": d}) + "\n" for d in docs[k::FILES])
            source = {"name": "code", "kind": "code", "format": "jsonl", "paths": [f"{tmp}/c*.jsonl"], "lang": "Python"}
            base = parse_recipe({"name": "bench", "sources": [source]})
            pipeline.run(pipeline.Context(base, Path(tmp, "w"), engine), ["ingest"])

            def timed(name: str, stage: str, section: dict):
                def go() -> float:
                    recipe = parse_recipe({"name": "bench", "sources": [source], stage: section})
                    (res,) = pipeline.run(pipeline.Context(recipe, Path(tmp, "w"), engine, force=True), [stage])
                    results[name] = (res.manifest["totals"]["bytes_in"] / 1e6, 0.0)
                    return float(res.manifest["seconds"])
                return go

            best = best_in_rounds({name: timed(name, *case) for name, case in cases().items()}, REPEATS)
            results = {name: (results[name][0], secs) for name, secs in best.items()}
    finally:
        engine.close()
    return results


def main() -> None:
    results = bench()
    base = results["read + write (no work)"][1]
    print(f"{'stage through Ray, 2 CPUs, stdlib code':<44} {'MB in':>8} {'seconds':>8} {'MB/s':>8} {'x no work':>10}")
    for name, (mb, secs) in results.items():
        print(f"{name:<44} {mb:>8.1f} {secs:>8.2f} {mb / secs:>8.1f} {secs / base:>10.2f}")


if __name__ == "__main__":
    main()
