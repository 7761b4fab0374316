"""`curate stats WORKDIR [--out DIR]`: collect the figures, draw the plots, write the report files.

    DIR/stats.json    every figure (sorted keys), the source of every number in the report
    DIR/report.md     tables + PNG links;  DIR/report.html  the same, self-contained (PNGs inlined)
    DIR/*.png         the plots

Nothing in the output depends on the time of writing or on where WORKDIR lives (its path is not
printed), so the same artifacts give byte-identical files, locally or from object storage.
"""

from __future__ import annotations

import json

import pyarrow.fs as pafs

from curate.errors import CurateError
from curate.reasons import REASONS
from stats import plots
from stats.artifacts import Workdir, open_filesystem
from stats.collect import collect
from stats.funnel import flatten
from stats.hist import quantiles_from_hist
from stats.render import fmt, pct, to_html, to_markdown


class StatsError(CurateError):
    """The work directory has nothing to report (exit 2: the command line names the wrong place)."""

    exit_code = 2


TEXT_HEAD_SHOWN = 160  # characters of a dropped document shown in the report (stats.json has the full head)


def build_report(workdir: str, out: str | None = None, endpoint_url: str | None = None) -> dict:
    """Writes the report files; returns {"stats": ..., "files": [names], "out": out}."""
    wd = Workdir.open(workdir, endpoint_url)
    if not wd.manifests() and wd.shards_manifest() is None:
        raise StatsError(f"{workdir}: no stage manifest (WORKDIR/<stage>/_manifest.json) and no shards: not a work directory")
    stats = collect(wd)
    blocks, images = report_blocks(stats)
    title = f"Dataset report: {(stats['run']['recipe'] or {}).get('name', 'unknown recipe')}"
    files = {"stats.json": (json.dumps(stats, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode(),
             "report.md": to_markdown(blocks).encode(), "report.html": to_html(blocks, images, title).encode(), **images}
    if out is None:
        fs, root = wd.fs, wd.path("report")
    else:
        fs, root = open_filesystem(out, endpoint_url)
    _write_all(fs, root, files)
    return {"stats": stats, "files": sorted(files), "out": out or f"{workdir.rstrip('/')}/report"}


def _write_all(fs: pafs.FileSystem, root: str, files: dict[str, bytes]) -> None:
    fs.create_dir(root, recursive=True)
    local = isinstance(fs, pafs.LocalFileSystem)
    for name, data in sorted(files.items()):
        final = f"{root}/{name}"
        tmp = f"{root}/.tmp-{name}" if local else final  # rename is atomic on a file system, a copy on S3
        with fs.open_output_stream(tmp) as fh:
            fh.write(data)
        if local:
            fs.move(tmp, final)


def report_blocks(stats: dict) -> tuple[list[tuple], dict[str, bytes]]:
    images: dict[str, bytes] = {}
    blocks: list[tuple] = []
    for section in (_header, _run_card, _funnel, _dedup, _contamination, _redactions, _code, _text, _lengths, _output, _examples):
        blocks += section(stats, images)
    return blocks, images


def _header(stats, images):
    r = stats["run"]["recipe"] or {}
    cov = stats["coverage"]
    blocks = [("h1", f"Dataset report: {r.get('name', 'unknown recipe')}"),
              ("p", f"Stages reported: {', '.join(cov['present']) or 'none'}. "
                    f"Missing (no manifest in the work directory): {', '.join(cov['missing']) or 'none'}.")]
    bad = [c for c in stats["ledger_checks"] if not c["ok"]]
    blocks.append(("p", "Ledger check: every manifest's per-source counts agree with its part files." if not bad else
                   "LEDGER MISMATCH: " + "; ".join(f"{c['stage']}: " + ", ".join(c["differences"]) for c in bad)))
    return blocks


def _run_card(stats, images):
    run = stats["run"]
    if run["recipe"] is None:
        return [("h2", "Run card"), ("p", "No stage manifest found.")]
    r = run["recipe"]
    blocks = [("h2", "Run card"), ("table", ["recipe", "hash", "seed"], [[r.get("name"), r.get("hash"), str(r.get("seed"))]])]
    if len(run["recipe_hashes"]) > 1:
        blocks.append(("p", "WARNING: the stages were run with different recipes: " + ", ".join(run["recipe_hashes"])))
    if run["tokenizer"]:
        blocks.append(("table", ["tokenizer", "value"], [[k, json.dumps(v) if isinstance(v, (dict, list)) else v]
                                                        for k, v in sorted(run["tokenizer"].items())]))
    blocks.append(("table", ["stage", "started (UTC)", "finished (UTC)", "seconds", "docs in", "bytes in", "MB/s", "docs/s",
                             "partitions", "engine"],
                   [[s["stage"], s["started_at"], s["finished_at"], s["seconds"], s["docs_in"], s["bytes_in"],
                     s["bytes_per_second"] / 1e6 if s["bytes_per_second"] is not None else None, s["docs_per_second"],
                     s["partitions"], s["engine"]] for s in run["stages"]]))
    if run.get("source_settings"):  # row stages' effective settings per source, as their manifests recorded them
        blocks.append(("table", ["stage", "source", "settings (what differs from the defaults)"],
                       [[r["stage"], r["source"], ", ".join(f"{k}={json.dumps(v)}" for k, v in r["settings"].items())
                         or "defaults"] for r in run["source_settings"]]))
    blocks.append(("table", ["package", "version"], sorted(run["versions"].items())))
    return blocks


def _funnel(stats, images):
    if not stats["funnel"]:
        return []
    images["funnel.png"] = plots.funnel(stats["funnel"])
    rows = [[r["stage"], r["source"], r["docs_in"], r["docs_kept"], sum(r["docs_dropped"].values()),
             ", ".join(f"{k}: {fmt(v)}" for k, v in r["docs_dropped"].items()) or "–", r["bytes_in"], r["bytes_kept"],
             pct(r["docs_kept"], r["docs_in"])] for r in stats["funnel"]]
    totals = [[t["stage"], "all", t["docs_in"], t["docs_kept"], t["docs_dropped"], t["bytes_in"], t["bytes_kept"],
               pct(t["bytes_kept"], t["bytes_in"])] for t in stats["funnel_totals"]]
    return [("h2", "Funnel"), ("img", "funnel.png", "documents and bytes kept per stage and source"),
            ("table", ["stage", "source", "docs in", "kept", "dropped", "dropped by reason", "bytes in", "bytes kept",
                       "docs kept"], rows),
            ("table", ["stage", "sources", "docs in", "kept", "dropped", "bytes in", "bytes kept", "bytes kept %"], totals)]


def _dedup(stats, images):
    blocks = []
    for stage, d in stats["dedup"].items():
        blocks += [("h3", stage), ("table", ["source", "docs in", "duplicates", "rate"],
                                   [[r["source"], r["docs_in"], r["duplicates"], pct(r["duplicates"], r["docs_in"])]
                                    for r in d["per_source"]])]
        extra = [(k, json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in flatten(d["extra"])
                 if k != "cluster_sizes" and not k.startswith("cluster_sizes.")]
        if extra:
            blocks.append(("table", ["manifest extra", "value"], extra))
        if d["cluster_sizes"]:
            name = f"{stage}_cluster_sizes.png"
            images[name] = plots.cluster_sizes(d["cluster_sizes"], f"{stage}: cluster sizes")
            blocks += [("img", name, "cluster size distribution"),
                       ("table", ["cluster size", "clusters"], d["cluster_sizes"])]
    return [("h2", "Dedup"), *blocks] if blocks else []


def _contamination(stats, images):
    c = stats.get("contamination")
    if c is None:
        return []
    blocks = [("h2", "Benchmark contamination"),
              ("p", f"Benchmarks checked: {', '.join(c['benchmarks'])}; {fmt(sum(r[2] for r in c['per_benchmark']))} "
                    f"of {fmt(c['docs_in'])} documents dropped (decontaminate.benchmark_overlap).")]
    if c["per_benchmark"]:
        blocks.append(("table", ["benchmark", "source", "docs dropped"], c["per_benchmark"]))
        blocks.append(("table", ["benchmark item (most matched)", "docs"], c["top_items"]))
    return blocks


def _redactions(stats, images):
    r = stats.get("redactions")
    if r is None:
        return []
    return [("h2", "Redaction"),
            ("p", f"{fmt(sum(r['documents'].values()))} documents had values replaced; {fmt(r['bytes_rewritten'])} "
                  "bytes fewer (or more) than before (the ledger's bytes_rewritten). Counts only: no value is kept."),
            ("table", ["type", "source", "values replaced"], r["per_type"])]


def _code(stats, images):
    mix = stats.get("code_mix")
    if not mix:
        return []
    p = stats["profiles"]
    unit = mix[0]["share_unit"]
    return [("h2", "Code"),
            ("p", f"Before: {p['first']['stage']} output; after: {p['final']['stage']} output. "
                  f"Share: of the final code {unit}; weight: the recipe's pack.lang_weights (default 1)."),
            ("table", ["language", "docs before", "docs after", "bytes before", "bytes after", "tokens after",
                       f"share of code {unit}", "weight"],
             [[r["lang"] or "(none)", r["docs_before"], r["docs_after"], r["bytes_before"], r["bytes_after"],
               r["tokens_after"], pct(r["share"], 1), r["weight"]] for r in mix])]


def _text(stats, images):
    final = stats["profiles"].get("final")
    if not final:
        return []
    langs = [r for r in final["by_lang"] if r["kind"] == "text"]
    total = sum(r["docs"] for r in langs)
    blocks = [("h2", "Text"), ("p", f"Natural languages in the {final['stage']} output."),
              ("table", ["language", "docs", "share of text docs", "bytes"],
               [[r["lang"] or "(none)", r["docs"], pct(r["docs"], total), r["bytes"]] for r in langs])]
    for score in ("lang_score", "quality_score"):
        if score in final["hist"]:
            images[f"{score}.png"] = plots.histogram(final["hist"][score], f"{score} ({final['stage']} output)", score, False)
            blocks.append(("img", f"{score}.png", f"{score} histogram per kind"))
    if stats.get("rule_rates"):
        blocks.append(("table", ["kind", "quality rule (drop reason)", "dropped", "docs in", "rate"],
                       [[r["kind"], r["reason"], r["dropped"], r["docs_in"], pct(r["dropped"], r["docs_in"])]
                        for r in stats["rule_rates"]]))
    for kind, rules in final["signals"].items():
        if not rules:
            continue
        blocks.append(("table", [f"{kind}: quality rule", "fired", "docs", "fire rate"],
                       [[rule, v["fired"], v["docs"], pct(v["fired"], v["docs"])] for rule, v in rules.items()]))
    return blocks


def _lengths(stats, images):
    final = stats["profiles"].get("final")
    if not final:
        return []
    blocks, rows = [("h2", "Lengths")], []
    for unit in ("chars", "tokens"):
        if unit in final["hist"]:
            name = f"length_{unit}.png"
            images[name] = plots.histogram(final["hist"][unit], f"Document length in {unit} ({final['stage']} output)",
                                           unit, True)
            blocks.append(("img", name, f"document length in {unit}, log-scale bins"))
            for kind, h in final["hist"][unit].items():
                q = quantiles_from_hist(h)
                rows.append([unit, kind, h["total"], q.get("p50"), q.get("p90"), q.get("p99")])
    blocks.append(("p", "Quantiles are upper bin edges (10 log-scale bins per decade)."))
    blocks.append(("table", ["unit", "kind", "docs", "p50 ≤", "p90 ≤", "p99 ≤"], rows))
    return blocks


def _output(stats, images):
    o = stats.get("output")
    if o is None:
        return [("h2", "Output"), ("p", "No shards yet (WORKDIR/shards/manifest.json is missing): run the pack stage.")]
    t = o["tokens"]
    rps = o["ratio_per_shard"] or {}
    images["shard_ratios.png"] = plots.shard_ratios(o["per_shard"], o["target_ratio"])
    blocks = [("h2", "Output"), ("table", ["figure", "value"], [
        ["shards", o["shards"]], ["sequences", o["sequences"]], ["sequence length", o["seq_len"]],
        ["code tokens", t["code"]], ["text tokens", t["text"]], ["padding tokens", t["padding"]],
        ["tokens (code + text)", t["total"]], ["code:text ratio", o["ratio_code_text"]], ["target ratio", o["target_ratio"]],
        ["ratio per shard: min", rps.get("min")], ["ratio per shard: max", rps.get("max")],
        ["padding fraction", o["padding_fraction"]], ["document pieces", o["pieces"]],
        ["continuation pieces", o["continuation_pieces"]], ["documents split across sequences", o["documents_split"]]]),
        ("img", "shard_ratios.png", "code:text ratio per shard"),
        ("table", ["check", "from shards", "expected / manifest", "ok"],
         [[c["figure"], c["shards"], c["manifest"], c["ok"]] for c in o["checks"]]),
        ("table", ["shard", "sequences", "code", "text", "padding", "ratio"],
         [[s["file"], s["sequences"], s["code"], s["text"], s["padding"], s["ratio_code_text"]] for s in o["per_shard"]])]
    plan = o.get("plan")
    groups = plan.get("groups") if isinstance(plan, dict) else None
    if isinstance(groups, list) and groups and all(isinstance(g, dict) for g in groups):  # epochs per source
        keys = list(dict.fromkeys(k for g in groups for k in g))
        blocks.append(("table", [f"plan: {k}" if i == 0 else k for i, k in enumerate(keys)],
                       [[g.get(k) for k in keys] for g in groups]))
        plan = {k: v for k, v in plan.items() if k != "groups"}
    if plan is not None:
        blocks.append(("table", ["pack plan", "value"], [(k, json.dumps(v) if isinstance(v, (list, dict)) else v)
                                                         for k, v in flatten(plan)]))
    return blocks


def _examples(stats, images):
    blocks = []
    for reasons in stats["examples"].values():
        for reason, e in reasons.items():
            blocks += [("h3", f"{reason} ({fmt(e['count'])} documents): {REASONS.get(reason, 'unregistered reason')}"),
                       ("table", ["id", "source", "detail", "text (start)"],
                        [[x["id"], x["source"], x["detail"], (x["text_head"] or "")[:TEXT_HEAD_SHOWN]] for x in e["examples"]])]
    return [("h2", "Dropped examples"), ("p", "Per drop reason, the documents with the smallest xxh3-64 hash of their id "
                                              "(a deterministic uniform sample)."), *blocks] if blocks else []
