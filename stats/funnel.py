"""From the stage manifests: the run card, the funnel per stage and source, dedup rates, missing stages.

Every figure is copied from (or is a ratio of figures in) `WORKDIR/<stage>/_manifest.json`; the ledger
counts are then cross-checked against the parts themselves (`check_ledgers`), so a manifest that
disagrees with its files is reported, not trusted.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from curate.schema import DROP_REASON, SOURCE, STAGES
from stats.artifacts import Workdir

DEDUP_STAGES = ("exact_dedup", "near_dedup")


def stage_coverage(manifests: dict[str, dict], has_shards: bool) -> dict:
    """Stages with a manifest, and the pipeline stages that have none (pack counts as present with shards)."""
    present = [s for s in STAGES if s in manifests or (s == "pack" and has_shards)]
    return {"present": present, "missing": [s for s in STAGES if s not in present]}


def funnel(manifests: dict[str, dict]) -> list[dict]:
    """One row per stage and source, in pipeline order then source name, straight from the ledgers."""
    rows = []
    for stage, m in manifests.items():
        for source, c in sorted(m["ledger"].items()):
            rows.append({"stage": stage, "source": source, "docs_in": c["docs_in"], "docs_kept": c["docs_kept"],
                         "docs_dropped": dict(sorted(c["docs_dropped"].items())), "bytes_in": c["bytes_in"],
                         "bytes_kept": c["bytes_kept"], "bytes_dropped": dict(sorted(c["bytes_dropped"].items()))})
    return rows


def funnel_totals(rows: list[dict]) -> list[dict]:
    """Per stage, the sums over sources."""
    out: dict[str, dict] = {}
    for r in rows:
        t = out.setdefault(r["stage"], {"stage": r["stage"], "docs_in": 0, "docs_kept": 0, "docs_dropped": 0,
                                        "bytes_in": 0, "bytes_kept": 0})
        for k in ("docs_in", "docs_kept", "bytes_in", "bytes_kept"):
            t[k] += r[k]
        t["docs_dropped"] += sum(r["docs_dropped"].values())
    return list(out.values())


def run_card(manifests: dict[str, dict], shards_manifest: dict | None = None) -> dict:
    """Recipe identity, versions, engine and per-stage timing, as the manifests recorded them."""
    if not manifests:
        return {"recipe": None, "recipe_hashes": [], "versions": {}, "tokenizer": None, "stages": [], "source_settings": []}
    first, last = next(iter(manifests.values())), list(manifests.values())[-1]
    hashes = sorted({m.get("recipe", {}).get("hash") for m in manifests.values()} - {None})
    stages = []
    for stage, m in manifests.items():
        t = m.get("totals", {})
        secs = m.get("seconds")
        stages.append({
            "stage": stage, "started_at": m.get("started_at"), "finished_at": m.get("finished_at"), "seconds": secs,
            "docs_in": t.get("docs_in"), "bytes_in": t.get("bytes_in"), "engine": m.get("engine"),
            "partitions": m.get("partitions", {}).get("total"),
            "bytes_per_second": round(t["bytes_in"] / secs, 1) if secs and t.get("bytes_in") is not None else None,
            "docs_per_second": round(t["docs_in"] / secs, 1) if secs and t.get("docs_in") is not None else None,
        })
    settings = [{"stage": stage, "source": source, "settings": shown}
                for stage, m in manifests.items() for source, shown in (m.get("source_settings") or {}).items()]
    return {"recipe": first.get("recipe"), "recipe_hashes": hashes, "versions": last.get("versions", {}),
            "tokenizer": tokenizer_identity(manifests, shards_manifest), "stages": stages, "source_settings": settings}


def tokenizer_identity(manifests: dict[str, dict], shards_manifest: dict | None = None) -> dict | None:
    """The tokenizer as the tokenize manifest (config + any `tokenizer*` keys) or the shards manifest names it."""
    out: dict = {}
    m = manifests.get("tokenize")
    if m:
        if m.get("config", {}).get("tokenizer"):
            out["path"] = m["config"]["tokenizer"]
        for src in (m, m.get("extra", {})):
            out.update({k: v for k, v in src.items() if k.startswith("tokenizer") and k != "tokenizer_path"})
    if shards_manifest and isinstance(shards_manifest.get("tokenizer"), dict):
        out.update(shards_manifest["tokenizer"])
    return out or None


def dedup(manifests: dict[str, dict]) -> dict:
    """Per dedup stage: duplicate rate per source (dropped by that stage's reasons / docs in) and its `extra`."""
    out = {}
    for stage in DEDUP_STAGES:
        m = manifests.get(stage)
        if m is None:
            continue
        per_source = []
        for source, c in sorted(m["ledger"].items()):
            n = sum(v for k, v in c["docs_dropped"].items() if k.startswith(stage + "."))
            per_source.append({"source": source, "docs_in": c["docs_in"], "duplicates": n,
                               "rate": n / c["docs_in"] if c["docs_in"] else 0.0})
        out[stage] = {"per_source": per_source, "extra": m.get("extra", {}),
                      "cluster_sizes": cluster_sizes(m.get("extra", {}))}
    return out


def cluster_sizes(extra: dict) -> list[list[int]] | None:
    """`extra.cluster_sizes` as [[size, count], ...] sorted by size, from a {size: count} map or pairs."""
    h = extra.get("cluster_sizes")
    if isinstance(h, dict) and "counts" not in h:
        return sorted([int(k), int(v)] for k, v in h.items())
    if isinstance(h, list) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in h):
        return sorted([int(a), int(b)] for a, b in h)
    return None


def flatten(obj, prefix: str = "") -> list[tuple[str, object]]:
    """Nested dicts as ("a.b", value) rows, for rendering a manifest's `extra` whatever its keys."""
    if isinstance(obj, dict) and obj:
        return [row for k in sorted(obj, key=str) for row in flatten(obj[k], f"{prefix}.{k}" if prefix else str(k))]
    return [(prefix, obj)]


def check_ledgers(wd: Workdir, manifests: dict[str, dict]) -> list[dict]:
    """Kept docs per source and dropped docs per source and reason, counted from the part files (two
    small columns each), against each manifest's ledger. One row per stage; `ok` false on any difference."""
    checks = []
    for stage, m in manifests.items():
        counted: dict[tuple[str, str], int] = {}
        kept = wd.kept_parts(stage)
        _count(wd, kept, [SOURCE], counted)
        _count(wd, wd.dropped_parts(stage), [SOURCE, DROP_REASON], counted)
        recorded = {}
        for source, c in m["ledger"].items():
            if kept:  # a stage without kept parts (pack) keeps its output elsewhere: check its drops only
                recorded[(source, "")] = c["docs_kept"]
            recorded.update({(source, r): n for r, n in c["docs_dropped"].items()})
        recorded = {k: v for k, v in recorded.items() if v}
        diffs = sorted(f"{s}/{r or 'kept'}: manifest {recorded.get((s, r), 0)}, parts {counted.get((s, r), 0)}"
                       for s, r in set(recorded) | set(counted) if recorded.get((s, r), 0) != counted.get((s, r), 0))
        checks.append({"stage": stage, "ok": not diffs, "differences": diffs})
    return checks


def _count(wd: Workdir, paths: list[str], columns: list[str], into: dict) -> None:
    for batch in wd.iter_batches(paths, columns):
        t = pa.table({"s": batch.column(0), "r": batch.column(1) if len(columns) > 1 else pa.nulls(batch.num_rows, pa.string())})
        t = t.set_column(1, "r", pc.fill_null(t["r"], ""))
        g = t.group_by(["s", "r"]).aggregate([("s", "count")])
        for s, r, n in zip(*(g[c].to_pylist() for c in ("s", "r", "s_count"))):
            into[(s, r)] = into.get((s, r), 0) + n
