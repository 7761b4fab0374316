"""The pack stage's driver: scan → plan → scatter → write shards → manifests.

Pack is a global stage. Its product is `WORKDIR/shards/shard-NNNNN.arrow` (Arrow IPC streams) and
`WORKDIR/shards/manifest.json`; `WORKDIR/pack/` holds the resume bookkeeping (per-part records, the plan
files, dropped documents) and `_manifest.json` with the ledger, so `make` and `upstream_of` treat pack
like any other stage. The driver holds only per-document numbers (~40 bytes per planned copy: token
count, group, part, row, copies, shard, position); token ids move between workers through files.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate import parts
from curate.errors import RecipeError, StageError
from curate.ledger import Ledger
from curate.recipe import sha256_json
from curate.schema import KIND, LANG, SOURCE
from curate.stages import pack as P
from curate.stages.tokenize import N_TOKENS
from curate.workers import pack as W
from curate.workpath import WorkPath

log = logging.getLogger("curate")
SHARDS = "shards"


def run_pack(ctx, upstream: str | None):
    from curate import pipeline

    started = time.time()
    if upstream != "tokenize":
        raise RecipeError(f"pack: needs the tokenize stage's output in {ctx.workdir} (add tokenize to --stages)")
    up = pipeline.read_manifest(ctx.workdir, upstream)
    tokenizer = up["extra"]["tokenizer"]
    drift = bool(getattr(ctx, "allow_ratio_drift", False))
    config_hash = sha256_json([ctx.recipe.config_hash("pack"), drift, tokenizer["sha256"]])
    input_fp = up["output_fingerprint"]
    shards_dir = ctx.workdir / SHARDS
    if (shards_dir / "manifest.json").is_file() and (skip := pipeline._up_to_date(ctx, "pack", config_hash, input_fp)):
        return skip
    pipeline.prepare_stage_dir(ctx, "pack", config_hash, input_fp)
    (shards_dir / "manifest.json").unlink()
    parts.clean_temporaries(shards_dir)
    d, work = ctx.dir("pack"), ctx.dir("pack") / "_work"
    inputs = [str(ctx.dir(upstream) / f"{name}.parquet") for name in up["parts"]]
    docs = doc_arrays(ctx.engine.map(W.scan_part, inputs, desc="pack: scan"), ctx.recipe.pack)
    try:
        plan = P.plan_pack(docs["n_tokens"], docs["group"], docs["groups"], docs["group_source"],
                           P.splitmix64((docs["part"] << 32) | docs["row"]), ctx.recipe.pack, ctx.recipe.seed, drift)
    except P.PlanError as exc:
        raise StageError(str(exc)) from None
    summary = plan_summary(plan, docs, ctx.recipe.pack, drift)
    log_plan(summary)
    write_plan_files(plan, docs, work)
    reused = sum((d / "_parts" / f"{WorkPath(p).stem}.json").is_file() for p in inputs)
    records = ctx.engine.map(W.scatter_part, [(p, i, str(work), str(d)) for i, p in enumerate(inputs)],
                             desc="pack: scatter")
    scatter = [str(work / "scatter" / f"{WorkPath(p).stem}.parquet") for p in inputs]
    shard_args = [(k, scatter, str(shards_dir / shard_name(k)), str(d / "_shards" / f"shard-{k:05d}.json"),
                   ctx.recipe.pack.seq_len, tokenizer["eos_id"], tokenizer["dtype"]) for k in range(plan.n_shards)]
    shards = ctx.engine.map(W.write_shard, shard_args, desc="pack: shards")
    for stale in shards_dir.files("shard-*.arrow")[plan.n_shards:]:
        stale.unlink()  # a previous run with more shards
    totals = {k: sum(s[k] for s in shards) for k in ("sequences", "bytes", "code_tokens", "text_tokens", "pad_tokens")}
    check_shards(shards, summary)
    parts.write_json(shards_dir / "manifest.json", {
        "format": "arrow-ipc-stream", "schema": P.sequences_schema(tokenizer["dtype"], ctx.recipe.pack.seq_len).names,
        "seq_len": ctx.recipe.pack.seq_len, "shards": shards, "totals": totals, "plan": summary,
        "tokenizer": tokenizer, "recipe": {"name": ctx.recipe.name, "hash": ctx.recipe.recipe_hash(),
                                           "seed": ctx.recipe.seed}})
    manifest = pipeline.finish_stage(
        ctx, "pack", config_hash=config_hash, input_info={"stage": upstream, "fingerprint": input_fp}, records=records,
        reused=reused, started=started, expected_in=Ledger.from_json(upstream, up["ledger"]).kept_per_source(),
        extra={"plan": summary, "shards": totals, "allow_ratio_drift": drift, "tokenizer": tokenizer})
    return pipeline.StageResult("pack", manifest, False)


def shard_name(k: int) -> str:
    return f"shard-{k:05d}.arrow"


def doc_arrays(scans: list[pa.Table], cfg) -> dict:
    """Per-document numbers and per-group (side, source, lang) weights from the scanned parts."""
    table = pa.concat_tables(scans) if scans else pa.table({KIND: [], SOURCE: [], LANG: [], N_TOKENS: []})
    key = pc.binary_join_element_wise(table[KIND], table[SOURCE], pc.fill_null(table[LANG], ""), "\x1f")
    encoded = pc.dictionary_encode(key).combine_chunks()
    keys = [k.split("\x1f") for k in encoded.dictionary.to_pylist()]
    side = np.array([P.SIDES.index(k[0]) for k in keys], dtype=np.int64)
    weight = np.array([cfg.source_weights.get(k[1], 1.0) * cfg.lang_weights.get(k[2], 1.0) for k in keys])
    max_epochs = np.array([cfg.max_epochs.get(k[1], cfg.default_max_epochs) for k in keys])
    group = encoded.indices.to_numpy().astype(np.int64)
    n_tokens = table[N_TOKENS].to_numpy().astype(np.int64)
    rows = [np.arange(t.num_rows, dtype=np.int64) for t in scans]
    return {
        "n_tokens": n_tokens, "group": group,
        "part": np.concatenate([np.full(len(r), i, np.int64) for i, r in enumerate(rows)] or [np.zeros(0, np.int64)]),
        "row": np.concatenate(rows or [np.zeros(0, np.int64)]),
        "groups": {"side": side, "weight": weight, "max_epochs": max_epochs,
                   "tokens": np.bincount(group, weights=n_tokens, minlength=len(keys))},
        "group_source": [k[1] for k in keys], "group_lang": [k[2] or None for k in keys],
    }


def write_plan_files(plan: P.Plan, docs: dict, work: WorkPath) -> None:
    """pieces.parquet and selected.parquet, grouped by part so each scatter task reads only its own."""
    p = plan.pieces
    doc = plan.item_doc[p["item"]]
    pieces = pa.table({"part": docs["part"][doc].astype(np.int32), "row": docs["row"][doc], "offset": p["offset"],
                       "length": p["length"], "shard": p["shard"].astype(np.int32), "pos": p["pos"]},
                      schema=W.PIECE_SCHEMA)
    parts.write_grouped(work / "pieces.parquet", pieces, "part")
    chosen = np.nonzero(plan.copies)[0]
    selected = pa.table({"part": docs["part"][chosen].astype(np.int32), "row": docs["row"][chosen],
                         "copies": plan.copies[chosen]}, schema=W.SELECTED_SCHEMA)
    parts.write_grouped(work / "selected.parquet", selected, "part")


def plan_summary(plan: P.Plan, docs: dict, cfg, drift: bool) -> dict:
    """The plan as the manifests record it: per group and side, tokens available and planned, epochs."""
    tokens = docs["n_tokens"] * plan.copies
    g = docs["group"]
    planned = np.bincount(g, weights=tokens, minlength=len(docs["group_source"]))
    selected = np.bincount(g, weights=plan.copies > 0, minlength=len(docs["group_source"]))
    groups = [{"source": s, "lang": lang, "side": P.SIDES[int(side)], "tokens_available": int(avail),
               "weight": float(w), "max_epochs": float(m), "tokens_planned": int(pl),
               "epochs": round(float(pl / avail), 4) if avail else 0.0, "docs_selected": int(sel)}
              for s, lang, side, avail, w, m, pl, sel in zip(
                  docs["group_source"], docs["group_lang"], docs["groups"]["side"], docs["groups"]["tokens"],
                  docs["groups"]["weight"], docs["groups"]["max_epochs"], planned, selected)]
    side_planned = {s: int(sum(x["tokens_planned"] for x in groups if x["side"] == s)) for s in P.SIDES}
    end = int(plan.bounds[-1])
    return {
        "mixture": dict(cfg.mixture), "bound": plan.mixture.bound, "allow_ratio_drift": drift,
        "tokens_available": plan.mixture.available, "tokens_planned": side_planned,
        "ratio_planned": side_planned["code"] / side_planned["text"] if side_planned["text"] else None,
        "target_ratio": plan.target_ratio, "ratio_tolerance": cfg.ratio_tolerance,
        "groups": sorted(groups, key=lambda x: (x["side"], x["source"], x["lang"] or "")),
        "seq_len": cfg.seq_len, "sequences": end // cfg.seq_len, "last": cfg.last,
        "pad_tokens": max(0, end - plan.tokens_planned), "tail_dropped_tokens": max(0, plan.tokens_planned - end),
        "shards": plan.n_shards, "shards_wanted": plan.shards_wanted,
        "warnings": plan_warnings(plan, docs, cfg),
    }


def plan_warnings(plan: P.Plan, docs: dict, cfg) -> list[str]:
    """Why the output differs from what the recipe asked for, in words (logged and kept in the manifests)."""
    if plan.n_shards >= plan.shards_wanted:
        return []
    longest = int(docs["n_tokens"][plan.copies > 0].max())
    return [f"pack: {plan.n_shards} shards instead of the {plan.shards_wanted} pack.shard_tokens={cfg.shard_tokens} "
            f"asks for: with more, some shard would be off the ratio by more than ratio_tolerance="
            f"{cfg.ratio_tolerance} (documents are large compared with shards: the longest has {longest} tokens); "
            "raise pack.shard_tokens to silence this"]


def log_plan(s: dict) -> None:
    ratio = f"{s['ratio_planned']:.4f}" if s["ratio_planned"] else "-"
    log.info("pack: plan: %d code + %d text tokens (code:text %s, target %s, bounded by %s) in %d sequences of %d, "
             "%d shards", s["tokens_planned"]["code"], s["tokens_planned"]["text"], ratio, s["target_ratio"],
             s["bound"], s["sequences"], s["seq_len"], s["shards"])
    for warning in s["warnings"]:
        log.warning("%s", warning)
    for g in s["groups"]:
        log.info("pack: plan: %-5s %-16s %-12s %10d tokens available, %10d planned (%.3f epochs)", g["side"],
                 g["source"], g["lang"] or "-", g["tokens_available"], g["tokens_planned"], g["epochs"])


def check_shards(shards: list[dict], summary: dict) -> None:
    """The written shards must carry exactly the planned tokens (a bug otherwise)."""
    code = sum(s["code_tokens"] for s in shards)
    text = sum(s["text_tokens"] for s in shards)
    want = summary["tokens_planned"]["code"] + summary["tokens_planned"]["text"] - summary["tail_dropped_tokens"]
    if code + text != want:
        raise StageError(f"pack: shards hold {code + text} document tokens but the plan has {want}")
