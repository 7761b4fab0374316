"""One big input file against the same corpus as many files, stage by stage (issue 14, part 2).

The code-shaped corpus (curate/bench/_code_corpus.py, MB megabytes) is written twice as jsonl: one file,
and FILES files of the same records in the same order. Each stage (ingest → tokenize, the demo recipe's
language, quality and tokenize settings) runs as its own `curate run --stages STAGE` command (a fresh
process, Ray on all local CPUs), first on the many files, then on the one file; the table gives the
seconds of each and their ratio. Before the byte-range reader, the one file was one partition, so every
stage after ingest ran as a single task: the third column reproduces that (partition_bytes above the
file's size). In `make bench` (100 MB, the issue's example size: two ranges
of the default partition_bytes against 12 files); `python -m curate.bench.big_file MB` for another size.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import yaml

from curate.bench._harness import in_fresh_process

MB, FILES = 100, 12
STAGES = ["ingest", "exact_dedup", "near_dedup", "language", "quality", "tokenize"]


def write_jsonl(root: Path, mb: float, files: int) -> tuple[Path, Path]:
    """(one big file, directory of `files` files) holding the same records in the same order."""
    from curate.bench import _code_corpus

    docs = _code_corpus.documents(mb, 0)
    lines = [json.dumps({"id": i, "text": t}) + "\n" for i, t in docs]
    (root / "many").mkdir(parents=True, exist_ok=True)
    (root / "one.jsonl").write_text("".join(lines))
    step = -(-len(lines) // files)
    for k in range(files):
        (root / "many" / f"part-{k:03d}.jsonl").write_text("".join(lines[k * step : (k + 1) * step]))
    return root / "one.jsonl", root / "many"


def recipe_for(paths: list[str], out: Path, partition_bytes: int | None = None) -> Path:
    demo = yaml.safe_load(Path("recipes/demo.yaml").read_text())
    raw = {"name": "big-file", "sources": [{"name": "code", "kind": "code", "format": "jsonl", "paths": paths,
                                            "id_field": "id", "lang": "python"}]}
    if partition_bytes:
        raw["ingest"] = {"partition_bytes": partition_bytes}
    for section in ("language", "quality", "tokenize"):
        if demo.get(section) is not None:  # the demo's own settings of these stages, where it has any
            raw[section] = demo[section]
    out.write_text(yaml.safe_dump(raw))
    return out


def main(argv: list[str] | None = None) -> None:
    from curate.bench.near_dedup import cli_stage

    argv = list(argv if argv is not None else sys.argv[2:] if sys.argv[1:2] == ["big_file"] else sys.argv[1:])
    mb = float(argv[0]) if argv else MB
    tmp = Path(tempfile.mkdtemp(prefix="big-file-"))
    one, many = in_fresh_process(write_jsonl, tmp / "data", mb, FILES)
    recipes = {"many files": recipe_for([str(many / "*.jsonl")], tmp / "many.yaml"),
               "one file": recipe_for([str(one)], tmp / "one.yaml"),
               # what one file was before byte ranges: a single partition, whatever its size
               "one file, one part": recipe_for([str(one)], tmp / "whole.yaml", partition_bytes=1 << 40)}
    rows = []
    for stage in STAGES:
        row = {"stage": stage}
        for name, recipe in recipes.items():
            row[name + " s"] = round(cli_stage(recipe, tmp / name.replace(" ", "-"), stage)[0], 1)
        row["one / many"] = round(row["one file s"] / row["many files s"], 2)
        row["one part / many"] = round(row["one file, one part s"] / row["many files s"], 2)
        rows.append(row)
    parts = {name: json.loads((tmp / name.replace(" ", "-") / "ingest/_manifest.json").read_text())["partitions"]["total"]
             for name in recipes}
    print(f"one big jsonl vs {FILES} files, {mb:g} MB code-shaped corpus, `curate run --stages STAGE` wall "
          f"(Ray on all local CPUs); ingest parts: {parts}")
    cols = list(rows[0])
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r[c]) for c in cols))


if __name__ == "__main__":
    main(sys.argv[1:])
