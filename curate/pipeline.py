"""Running stages: order, inputs, skipping what is up to date, resume, manifests, conservation.

A run executes the selected stages in the fixed pipeline order. Each reads the output of the nearest
earlier stage that is selected in the same run or already complete in the workdir. A stage whose
manifest names the same configuration and input is skipped; `force` redoes it. Inside a stage, a
partition whose record names the same input and configuration is reused, so a killed run resumes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from curate import parts
from curate.errors import RecipeError, StageError, StrictError
from curate.ledger import Ledger
from curate.schema import STAGES
from curate.tasks import PartTask, is_done, run_part

log = logging.getLogger("curate")


@dataclass
class Context:
    recipe: object
    workdir: Path
    engine: object
    force: bool = False
    strict: bool = False
    lenient: bool = False  # ingest: a file that cannot be read to the end becomes a counted drop, not an error
    allow_ratio_drift: bool = False  # pack: let the code:text ratio drift to use every allowed token

    def dir(self, stage: str) -> Path:
        return parts.stage_dir(self.workdir, stage)


@dataclass
class StageResult:
    stage: str
    manifest: dict
    skipped: bool


# ---------------------------------------------------------------------------------------------- helpers
def manifest_path(workdir: Path, stage: str) -> Path:
    return parts.stage_dir(workdir, stage) / "_manifest.json"


def read_manifest(workdir: Path, stage: str) -> dict | None:
    path = manifest_path(workdir, stage)
    return parts.read_json(path) if path.exists() else None


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("curate", "pyarrow", "numpy", "numba", "ray", "datasketch", "tokenizers", "fasttext-numpy2-wheel",
                "smart_open"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def output_fingerprint(records: list[dict]) -> str:
    """Identity of a stage's output: the names and checksums of its kept and dropped parts."""
    items = sorted((r["name"], r["outputs"]["kept"]["sha256"], r["outputs"]["dropped"]["sha256"]) for r in records)
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()


def prepare_stage_dir(ctx: Context, stage: str, config_hash: str, input_fp: str) -> None:
    """Keeps a killed attempt's finished work only if it was made from the same config and input."""
    d = ctx.dir(stage)
    attempt = d / "_attempt.json"
    current = {"config_hash": config_hash, "input_fingerprint": input_fp}
    if ctx.force or (attempt.exists() and parts.read_json(attempt) != current) or (d.exists() and not attempt.exists()):
        parts.reset_stage(d)
    parts.clean_temporaries(d)
    if (d / "_manifest.json").exists():
        (d / "_manifest.json").unlink()
    parts.write_json(attempt, current)


def run_part_tasks(ctx: Context, tasks: list[PartTask], desc: str) -> tuple[list[dict], int]:
    """Runs the partitions not already done; returns every partition's record and how many were reused."""
    todo = [t for t in tasks if not is_done(t)]
    reused = len(tasks) - len(todo)
    if reused:
        log.info("%s: reusing %d of %d partitions from an interrupted attempt", desc, reused, len(tasks))
    # largest input first (LPT): the tasks still running when the others are done are the short ones
    todo.sort(key=lambda t: -os.path.getsize(t.input_part) if t.input_part and os.path.exists(t.input_part) else 0)
    ctx.engine.map(run_part, todo, desc=desc)
    records = [parts.read_json(Path(t.out_dir) / "_parts" / f"{t.name}.json") for t in tasks]
    return records, reused


def finish_stage(ctx: Context, stage: str, *, config_hash: str, input_info: dict, records: list[dict],
                 reused: int, started: float, expected_in: dict[str, int] | None, extra: dict) -> dict:
    parts.clean_temporaries(ctx.dir(stage))  # a worker killed mid-write leaves a .tmp-* that its retry did not reuse
    ledger = Ledger(stage)
    for rec in records:
        ledger.merge(Ledger.from_json(stage, rec["ledger"]))
    ledger.check_conservation(expected_in)
    total = ledger.total()
    finished = time.time()
    manifest = {
        "stage": stage,
        "recipe": {"name": ctx.recipe.name, "hash": ctx.recipe.recipe_hash(), "seed": ctx.recipe.seed},
        "config": ctx.recipe.section(stage).model_dump(mode="json") if hasattr(ctx.recipe, stage) else {},
        "config_hash": config_hash,
        "input": input_info,
        "output_fingerprint": output_fingerprint(records),
        "parts": [r["name"] for r in records],
        "partitions": {"total": len(records), "computed": len(records) - reused, "reused": reused},
        "ledger": ledger.to_json(),
        "totals": total.to_json(),
        "extra": extra,
        "versions": package_versions(),
        "engine": ctx.engine.name,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(finished)),
        "seconds": round(finished - started, 3),
    }
    parts.write_json(manifest_path(ctx.workdir, stage), manifest)
    return manifest


# ---------------------------------------------------------------------------------------------- stages
def run_ingest(ctx: Context, upstream: str | None) -> StageResult:
    from curate.sources import number_lines, plan_ingest

    started = time.time()
    plan = plan_ingest(ctx.recipe)
    config_hash = ctx.recipe.config_hash("ingest") + (":lenient" if ctx.lenient else "")
    input_fp = hashlib.sha256(json.dumps([p.fingerprint for p in plan]).encode()).hexdigest()
    if (skip := _up_to_date(ctx, "ingest", config_hash, input_fp)) is not None:
        return skip
    plan = number_lines(plan, ctx.engine)  # big jsonl files are read in ranges: their line numbers first
    prepare_stage_dir(ctx, "ingest", config_hash, input_fp)
    out = str(ctx.dir("ingest"))
    options = {**_ingest_id_offsets(ctx, plan, ctx.dir("ingest")), "lenient": ctx.lenient}
    tasks = [PartTask("ingest", p.name, p.fingerprint, config_hash, out, ctx.recipe, partition=p, strict=ctx.strict,
                      options=options) for p in plan]
    try:
        records, reused = run_part_tasks(ctx, tasks, "ingest")
    except StrictError:
        parts.reset_stage(ctx.dir("ingest"))  # --strict: no partial stage output
        raise
    extra = {"renamed_ids": sum(r["extra"].get("renamed_ids", 0) for r in records),
             "files": len({f.uri for p in plan for f in p.files})}  # a file read in ranges is one file
    manifest = finish_stage(ctx, "ingest", config_hash=config_hash, input_info={"stage": None, "fingerprint": input_fp},
                            records=records, reused=reused, started=started, expected_in=None, extra=extra)
    return StageResult("ingest", manifest, False)


def _ingest_id_offsets(ctx: Context, plan: list, d: Path) -> dict:
    """Pre-pass for sources whose `id_field` values may repeat across their partitions: count ids per
    partition, then group by id hash to give each partition its numbering offsets."""
    from curate.workers import ingest as W

    per_source: dict[str, int] = {}
    for p in plan:
        per_source[p.source] = per_source.get(p.source, 0) + 1
    todo = [p for p in plan if getattr(ctx.recipe.source(p.source), "id_field", None) and per_source[p.source] > 1]
    if not todo:
        return {}
    counts = [str(d / "_work" / "ids" / f"{p.name}.parquet") for p in todo]
    rows = ctx.engine.map(W.count_ids, [(p, ctx.recipe, f) for p, f in zip(todo, counts)], desc="ingest: count ids")
    offsets_dir = d / "_work" / "id_offsets"
    ranges = bucket_ranges(sum(rows), ctx.engine.num_cpus, 256)
    ctx.engine.map(W.reduce_id_counts, [(counts, r, str(offsets_dir / f"offsets-{r[0]:03d}-{r[-1]:03d}.parquet"))
                                        for r in ranges], desc="ingest: number ids")
    return {"offsets_dir": str(offsets_dir)}


def run_row_stage(ctx: Context, upstream: str, stage: str, prepare: Callable | None = None,
                  salt: str = "") -> StageResult:
    """A stage that maps each upstream part to one output part through `tasks.DECIDERS[stage]`.

    `prepare(ctx, upstream_manifest, inputs, stage_dir) -> (options, extra)` runs first, for stages that
    need a global phase (dedup's grouping); its `options` reach every part's decider."""
    started = time.time()
    up = read_manifest(ctx.workdir, upstream)
    config_hash = ctx.recipe.config_hash(stage)
    if salt:  # what the recipe does not show changes the output too (a tokenizer file's content)
        config_hash = hashlib.sha256(f"{config_hash}:{salt}".encode()).hexdigest()
    input_fp = up["output_fingerprint"]
    if (skip := _up_to_date(ctx, stage, config_hash, input_fp)) is not None:
        return skip
    prepare_stage_dir(ctx, stage, config_hash, input_fp)
    d = ctx.dir(stage)
    inputs = [ctx.dir(upstream) / f"{name}.parquet" for name in up["parts"]]
    options, extra = prepare(ctx, up, inputs, d) if prepare else ({}, {})
    tasks = [PartTask(stage, p.stem, _part_identity(ctx, upstream, p.stem), config_hash, str(d), ctx.recipe,
                      input_part=str(p), options=options) for p in inputs]
    records, reused = run_part_tasks(ctx, tasks, stage)
    for rec in records:  # numeric per-part extras (counters) add up
        for k, v in rec["extra"].items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                extra[k] = extra.get(k, 0) + v
    manifest = finish_stage(ctx, stage, config_hash=config_hash, input_info={"stage": upstream, "fingerprint": input_fp},
                            records=records, reused=reused, started=started,
                            expected_in=Ledger.from_json(upstream, up["ledger"]).kept_per_source(), extra=extra)
    return StageResult(stage, manifest, False)


def _exact_dedup_groups(ctx: Context, up: dict, inputs: list[Path], d: Path) -> tuple[dict, dict]:
    """exact_dedup's global phases: hash every part, then find the losers of each bucket range."""
    from curate.stages.exact_dedup import BUCKETS
    from curate.workers import exact_dedup as W

    hashes = [str(d / "_work" / "hashes" / f"{p.stem}.parquet") for p in inputs]
    normalize = ctx.recipe.exact_dedup.normalize
    rows = ctx.engine.map(W.hash_part, [(str(p), h, normalize) for p, h in zip(inputs, hashes)], desc="exact_dedup: hash")
    ranges = bucket_ranges(sum(rows), ctx.engine.num_cpus, BUCKETS)
    losers_dir = d / "_work" / "losers"
    reduce_args = [(hashes, r, str(losers_dir / f"losers-{r[0]:03d}-{r[-1]:03d}.parquet")) for r in ranges]
    n_losers = ctx.engine.map(W.reduce_hashes, reduce_args, desc="exact_dedup: group")
    return {"losers_dir": str(losers_dir)}, {"duplicates": sum(n_losers), "bucket_ranges": len(ranges), "normalize": normalize}


def run_exact_dedup(ctx: Context, upstream: str) -> StageResult:
    return run_row_stage(ctx, upstream, "exact_dedup", prepare=_exact_dedup_groups)


def run_near_dedup(ctx: Context, upstream: str) -> StageResult:
    """near_dedup's global phases (signatures, LSH, verification, components, survivors). With
    `near_dedup.against`, the earlier run's index is loaded once: its identity salts the config hash (a
    changed index redoes the stage) and its files feed the phases."""
    from curate.workers.near_dedup import load_index, prepare

    index = load_index(ctx.recipe.near_dedup, ctx.workdir)
    return run_row_stage(ctx, upstream, "near_dedup", prepare=lambda *args: prepare(*args, index=index),
                         salt=index.fingerprint if index else "")


def bucket_ranges(total_docs: int, cpus: int, buckets: int, docs_per_task: int = 2_000_000) -> list[list[int]]:
    """Splits the hash buckets into contiguous ranges: enough tasks to use every CPU, and few enough
    documents per task to bound its memory. The split never changes the result, only the speed."""
    n = min(buckets, max(cpus, -(-total_docs // docs_per_task)))
    bounds = [round(i * buckets / n) for i in range(n + 1)]
    return [list(range(bounds[i], bounds[i + 1])) for i in range(n) if bounds[i] < bounds[i + 1]]


def _part_identity(ctx: Context, upstream: str, name: str) -> str:
    rec = parts.read_json(ctx.dir(upstream) / "_parts" / f"{name}.json")
    return rec["outputs"]["kept"]["sha256"]


def _up_to_date(ctx: Context, stage: str, config_hash: str, input_fp: str) -> StageResult | None:
    manifest = read_manifest(ctx.workdir, stage)
    if ctx.force or manifest is None:
        return None
    if manifest.get("config_hash") == config_hash and manifest.get("input", {}).get("fingerprint") == input_fp:
        log.info("%s: up to date (%s)", stage, manifest_path(ctx.workdir, stage))
        return StageResult(stage, manifest, True)
    return None


def run_tokenize(ctx: Context, upstream: str) -> StageResult:
    from curate.workers.tokenize import tokenizer_identity

    identity = tokenizer_identity(ctx.recipe.tokenize)
    # in-process, tokenizers' thread pool uses every core; Ray workers encode on one thread each (one task per CPU)
    options = {"parallel_encode": getattr(ctx.engine, "name", "") == "local"}
    return run_row_stage(ctx, upstream, "tokenize", prepare=lambda *_: (options, {"tokenizer": identity}),
                         salt=identity["sha256"])


def run_pack(ctx: Context, upstream: str | None) -> StageResult:
    from curate.packing import run_pack as run

    return run(ctx, upstream)


def _model_salt(path: str | None) -> str:
    """A model file's checksum: a retrained or replaced model at the same path changes the stage's output."""
    return parts.sha256_file(path) if path and Path(path).is_file() else ""


RUNNERS: dict[str, Callable[[Context, str | None], StageResult]] = {
    "ingest": run_ingest,
    "exact_dedup": run_exact_dedup,
    "near_dedup": run_near_dedup,
    "language": lambda ctx, up: run_row_stage(ctx, up, "language", salt=_model_salt(ctx.recipe.language.model)),
    "quality": lambda ctx, up: run_row_stage(ctx, up, "quality", salt=_model_salt(
        ctx.recipe.quality.classifier.model if ctx.recipe.quality.classifier else None)),
    "tokenize": run_tokenize,
    "pack": run_pack,
}


def implemented_stages() -> list[str]:
    return [s for s in STAGES if s in RUNNERS]


def select_stages(requested: list[str] | None) -> list[str]:
    from curate.schema import stage_key

    if not requested:
        return implemented_stages()
    keys = [stage_key(s) for s in requested]
    for k in keys:
        if k not in STAGES:
            raise RecipeError(f"--stages: unknown stage {k!r} (stages: {', '.join(STAGES)})")
        if k not in RUNNERS:
            raise RecipeError(f"--stages: stage {k!r} is not implemented yet (available: {', '.join(implemented_stages())})")
    return [s for s in STAGES if s in keys]


def upstream_of(stage: str, selected: list[str], workdir: Path) -> str | None:
    """The nearest earlier stage selected in this run, or else already complete in the workdir."""
    earlier = STAGES[: STAGES.index(stage)]
    for s in reversed(earlier):
        if s in selected or read_manifest(workdir, s) is not None:
            return s
    return None


def run(ctx: Context, stages: list[str]) -> list[StageResult]:
    results = []
    if ctx.recipe.tokenize.tokenizer is None and {"tokenize", "pack"} & set(stages):
        log.info("tokenize, pack: skipped (the recipe names no tokenize.tokenizer)")
        stages = [s for s in stages if s not in ("tokenize", "pack")]
    for stage in stages:
        upstream = upstream_of(stage, stages, ctx.workdir)
        if stage != "ingest" and upstream is None:
            raise RecipeError(f"{stage}: needs the output of an earlier stage; none is selected or complete in {ctx.workdir}")
        log.info("%s: start (input: %s)", stage, upstream or "sources")
        result = RUNNERS[stage](ctx, upstream)
        if not result.skipped:
            _log_stage(result.manifest)
        results.append(result)
    return results


def _log_stage(m: dict) -> None:
    t = m["totals"]
    p = m["partitions"]
    log.info("%s: %d in, %d kept, %d dropped in %.1fs (%d partitions computed, %d reused)", m["stage"], t["docs_in"],
             t["docs_kept"], sum(t["docs_dropped"].values()), m["seconds"], p["computed"], p["reused"])


def check_stage_output(workdir: Path, stage: str) -> None:
    if read_manifest(workdir, stage) is None:
        raise StageError(f"{stage}: no complete output in {workdir}")
