"""Running stages: order, inputs, skipping what is up to date, resume, manifests, conservation.

A run executes the selected stages in the order their declarations give (curate/stagespec.py); this
module names no stage module: it runs each through the functions its declaration names. Each reads the
output of the nearest earlier stage that is selected in the same run or already complete in the workdir. A stage whose
manifest names the same configuration and input is skipped; `force` redoes it. Inside a stage, a
partition whose record names the same input and configuration is reused, so a killed run resumes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

from curate import parts
from curate.errors import RecipeError, StageError
from curate.ledger import Ledger
from curate.recipe import ROW_SECTIONS
from curate.schema import STAGES
from curate.stagespec import declaration, declarations, load
from curate.tasks import PartTask, is_done, run_part
from curate.workpath import WorkPath

log = logging.getLogger("curate")


@dataclass
class Context:
    recipe: object
    workdir: WorkPath  # a local path or a bucket URI (`s3://bucket/prefix`)
    engine: object
    force: bool = False
    strict: bool = False
    lenient: bool = False  # ingest: a file that cannot be read to the end becomes a counted drop, not an error
    allow_ratio_drift: bool = False  # pack: let the code:text ratio drift to use every allowed token

    def __post_init__(self):
        self.workdir = WorkPath(self.workdir)

    def dir(self, stage: str) -> WorkPath:
        return parts.stage_dir(self.workdir, stage)


@dataclass
class StageResult:
    stage: str
    manifest: dict
    skipped: bool


# ---------------------------------------------------------------------------------------------- helpers
def manifest_path(workdir: parts.Where, stage: str) -> WorkPath:
    return parts.stage_dir(workdir, stage) / "_manifest.json"


def read_manifest(workdir: parts.Where, stage: str) -> dict | None:
    path = manifest_path(workdir, stage)
    return parts.read_json(path) if path.is_file() else None


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
    # without a matching attempt record, whatever the folder holds is from another attempt (or nothing)
    if ctx.force or not attempt.is_file() or parts.read_json(attempt) != current:
        parts.reset_stage(d)
    parts.clean_temporaries(d)
    (d / "_manifest.json").unlink()
    parts.write_json(attempt, current)


def run_part_tasks(ctx: Context, tasks: list[PartTask], desc: str) -> tuple[list[dict], int]:
    """Runs the partitions not already done; returns every partition's record and how many were reused."""
    todo = [t for t in tasks if not is_done(t)]
    reused = len(tasks) - len(todo)
    if reused:
        log.info("%s: reusing %d of %d partitions from an interrupted attempt", desc, reused, len(tasks))
    # largest input first (LPT): the tasks still running when the others are done are the short ones
    sizes = _input_sizes(todo)
    todo.sort(key=lambda t: -sizes.get(t.input_part, 0))
    ctx.engine.map(run_part, todo, desc=desc)
    records = [parts.read_json(WorkPath(t.out_dir) / "_parts" / f"{t.name}.json") for t in tasks]
    return records, reused


def _input_sizes(tasks: list[PartTask]) -> dict[str, int]:
    """Input part -> bytes, from one listing per input folder (one request in a bucket, not one per part)."""
    sizes: dict[str, int] = {}
    for folder in {WorkPath(t.input_part).parent for t in tasks if t.input_part}:
        sizes.update({str(folder / name): n for name, n in folder.sizes("part-*.parquet").items()})
    return sizes


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
        "source_settings": ctx.recipe.effective_settings(stage) if stage in ROW_SECTIONS else {},
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
    for rec in records:  # numeric per-part extras (counters) add up, in nested dicts of counters too
        add_counters(extra, rec["extra"])
    manifest = finish_stage(ctx, stage, config_hash=config_hash, input_info={"stage": upstream, "fingerprint": input_fp},
                            records=records, reused=reused, started=started,
                            expected_in=Ledger.from_json(upstream, up["ledger"]).kept_per_source(), extra=extra)
    return StageResult(stage, manifest, False)


def add_counters(total: dict, part: dict) -> None:
    """Adds a part's numeric counters into `total`, key by key, recursing into dicts (`{"by_source":
    {"stdlib": 3}}`); other values (strings, lists, booleans) are the stage's to merge."""
    for k, v in part.items():
        if isinstance(v, dict):
            add_counters(total.setdefault(k, {}), v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            total[k] = total.get(k, 0) + v


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


def runner(stage: str) -> Callable[[Context, str | None], StageResult]:
    """The function that runs a stage, from its declaration: its own driver (`run`), else the row runner
    with its declared global phase (`prepare`) and salt."""
    spec = declaration(stage)
    if spec.run:
        return load(spec.run)

    def run_declared(ctx: Context, upstream: str | None) -> StageResult:
        salt = load(spec.salt)(ctx.recipe) if spec.salt else ""
        return run_row_stage(ctx, upstream, stage, prepare=load(spec.prepare) if spec.prepare else None, salt=salt)

    return run_declared


def implemented_stages() -> list[str]:
    return [d.key for d in declarations() if d.run or d.decide]


def select_stages(requested: list[str] | None) -> list[str]:
    from curate.schema import stage_key

    if not requested:
        return implemented_stages()
    keys = [stage_key(s) for s in requested]
    for k in keys:
        if k not in STAGES:
            raise RecipeError(f"--stages: unknown stage {k!r} (stages: {', '.join(STAGES)})")
        if k not in implemented_stages():
            raise RecipeError(f"--stages: stage {k!r} is not implemented yet (available: {', '.join(implemented_stages())})")
    return [s for s in STAGES if s in keys]


def check_stages(recipe, workdir: WorkPath, stages: list[str], explicit: bool, dry_run: bool) -> None:
    """Each selected stage's declared pre-run check, in order: a recipe a stage cannot run is refused
    (RecipeError, exit 2) before any engine starts or any work is done."""
    for stage in stages:
        if check := declaration(stage).check:
            load(check)(recipe, workdir, stages, explicit, dry_run)


def upstream_of(stage: str, selected: list[str], workdir: WorkPath) -> str | None:
    """The nearest earlier stage selected in this run, or else already complete in the workdir."""
    earlier = STAGES[: STAGES.index(stage)]
    for s in reversed(earlier):
        if s in selected or read_manifest(workdir, s) is not None:
            return s
    return None


def run(ctx: Context, stages: list[str]) -> list[StageResult]:
    results = []
    skipped = {s: why for s in stages if (ref := declaration(s).skip) and (why := load(ref)(ctx.recipe))}
    if skipped:
        for why in dict.fromkeys(skipped.values()):
            log.info("%s: skipped (%s)", ", ".join(s for s in skipped if skipped[s] == why), why)
        stages = [s for s in stages if s not in skipped]
    for stage in stages:
        upstream = upstream_of(stage, stages, ctx.workdir) if declaration(stage).reads == "upstream" else None
        if declaration(stage).reads == "upstream" and upstream is None:
            raise RecipeError(f"{stage}: needs the output of an earlier stage; none is selected or complete in {ctx.workdir}")
        log.info("%s: start (input: %s)", stage, upstream or "sources")
        result = runner(stage)(ctx, upstream)
        if not result.skipped:
            _log_stage(result.manifest)
        results.append(result)
    return results


def _log_stage(m: dict) -> None:
    t = m["totals"]
    p = m["partitions"]
    log.info("%s: %d in, %d kept, %d dropped in %.1fs (%d partitions computed, %d reused)", m["stage"], t["docs_in"],
             t["docs_kept"], sum(t["docs_dropped"].values()), m["seconds"], p["computed"], p["reused"])


def check_stage_output(workdir: WorkPath, stage: str) -> None:
    if read_manifest(workdir, stage) is None:
        raise StageError(f"{stage}: no complete output in {workdir}")
