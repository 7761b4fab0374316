"""Benchmark contamination, from the decontaminate stage's manifest: documents dropped per benchmark and
source, and the benchmark items most often matched (the manifest's summed per-part counters)."""

from __future__ import annotations


def contamination(manifest: dict | None, top: int = 10) -> dict | None:
    """{"benchmarks": [...], "per_benchmark": [[benchmark, source, docs]], "top_items": [[item, docs]],
    "docs_in": n}; None without the stage."""
    if manifest is None:
        return None
    extra = manifest.get("extra", {})
    per = extra.get("contaminated", {})
    rows = [[bench, source, n] for bench in sorted(per) for source, n in sorted(per[bench].items())]
    items = sorted(extra.get("items", {}).items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    benchmarks = [b.get("name") for b in (manifest.get("config", {}).get("benchmarks") or [])] or ["humaneval"]
    return {"benchmarks": benchmarks, "per_benchmark": rows, "top_items": [list(kv) for kv in items],
            "docs_in": manifest.get("totals", {}).get("docs_in", 0)}
