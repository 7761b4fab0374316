"""One big input file against the same corpus as many files, stage by stage (issue 14, part 2).

The code-shaped corpus (curate/bench/_code_corpus.py, MB megabytes) is written three times as jsonl: one
file, FILES files of the same records in the same order, and one gzip file. Each stage (ingest →
tokenize, the demo recipe's language, quality and tokenize settings) runs as its own
`curate run --stages STAGE` command (a fresh process, Ray on all local CPUs) on each form, in REPEATS
rounds (each round runs every form once, in a rotated order, so a passing load on the shared machine
falls on all forms alike). Reported per stage: the median CLI wall per form, and the ratios one/many
and gzip/many per round (median and range), of the CLI walls and of the stages' own seconds (their
manifests: without Ray's start and stop, which are the same for every form). The gzip file is read by one task but written as parts of
about partition_bytes (`split_compressed`), so its later stages get as many parts as the plain file's.
Tokenize also against raw `Tokenizer.encode_batch` with tokenizers' thread pool on both cores over the
same texts (tokenize's input parts, one file's), once per round in a fresh process: the stage's own
seconds (its manifest: Ray's start not included) and its CLI wall, as MB/s against the raw call's.
In `make bench` (100 MB, the issue's example size); `python -m curate.bench.big_file MB [ROUNDS]`.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import yaml

from curate.bench._harness import in_fresh_process

MB, FILES, REPEATS = 100, 12, 3
STAGES = ["ingest", "exact_dedup", "near_dedup", "language", "quality", "tokenize"]
FORMS = ["many files", "one file", "one gzip file"]


def write_jsonl(root: Path, mb: float, files: int) -> tuple[Path, Path, Path]:
    """(one big file, directory of `files` files, one gzip file) holding the same records in the same order."""
    import gzip

    from curate.bench import _code_corpus

    docs = _code_corpus.documents(mb, 0)
    lines = [json.dumps({"id": i, "text": t}) + "\n" for i, t in docs]
    (root / "many").mkdir(parents=True, exist_ok=True)
    (root / "one.jsonl").write_text("".join(lines))
    (root / "gz").mkdir(exist_ok=True)
    (root / "gz" / "one.jsonl.gz").write_bytes(gzip.compress("".join(lines).encode(), compresslevel=1, mtime=0))
    step = -(-len(lines) // files)
    for k in range(files):
        (root / "many" / f"part-{k:03d}.jsonl").write_text("".join(lines[k * step : (k + 1) * step]))
    return root / "one.jsonl", root / "many", root / "gz" / "one.jsonl.gz"


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


def raw_encode_batch(workdir: str, tokenizer: str, batch_size: int) -> tuple[float, float]:
    """(seconds, MB) of `Tokenizer.encode_batch` on both cores over tokenize's input texts in `workdir`,
    in batches of the stage's batch size (run in a fresh process)."""
    import os
    import time

    import pyarrow.parquet as pq
    from tokenizers import Tokenizer

    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    upstream = json.loads(Path(workdir, "tokenize", "_manifest.json").read_text())["input"]["stage"]
    texts = [t for f in sorted(Path(workdir, upstream).glob("part-*.parquet"))
             for t in pq.read_table(f, columns=["text"])["text"].to_pylist()]
    tok = Tokenizer.from_file(tokenizer)
    start = time.perf_counter()
    for i in range(0, len(texts), batch_size):
        tok.encode_batch(texts[i : i + batch_size], add_special_tokens=False)
    return time.perf_counter() - start, sum(len(t.encode("utf-8")) for t in texts) / 1e6


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    return (xs[len(xs) // 2] + xs[(len(xs) - 1) // 2]) / 2


def _span(xs: list[float]) -> str:
    return f"{_median(xs):.2f} ({min(xs):.2f}–{max(xs):.2f})"


def main(argv: list[str] | None = None) -> None:
    from curate.bench.near_dedup import cli_stage

    argv = list(argv if argv is not None else sys.argv[2:] if sys.argv[1:2] == ["big_file"] else sys.argv[1:])
    mb = float(argv[0]) if argv else MB
    rounds = int(argv[1]) if len(argv) > 1 else REPEATS
    tmp = Path(tempfile.mkdtemp(prefix="big-file-"))
    one, many, gz = in_fresh_process(write_jsonl, tmp / "data", mb, FILES)
    recipes = {"many files": recipe_for([str(many / "*.jsonl")], tmp / "many.yaml"),
               "one file": recipe_for([str(one)], tmp / "one.yaml"),
               "one gzip file": recipe_for([str(gz)], tmp / "gz.yaml")}
    work = {name: tmp / name.replace(" ", "-") for name in recipes}
    demo_tok = yaml.safe_load(Path("recipes/demo.yaml").read_text())["tokenize"]
    rows, tok = [], {"stage s": [], "wall s": [], "raw s": []}
    for stage in STAGES:
        walls: dict[str, list[float]] = {name: [] for name in FORMS}
        own: dict[str, list[float]] = {name: [] for name in FORMS}  # the manifest's seconds: no Ray start
        for r in range(rounds):
            for name in FORMS[r % len(FORMS):] + FORMS[: r % len(FORMS)]:
                walls[name].append(cli_stage(recipes[name], work[name], stage)[0])
                own[name].append(json.loads((work[name] / stage / "_manifest.json").read_text())["seconds"])
            if stage == "tokenize":
                raw_s, text_mb = in_fresh_process(raw_encode_batch, str(work["one file"]), demo_tok["tokenizer"],
                                                  demo_tok.get("batch_size", 1000))
                stage_s = json.loads((work["one file"] / "tokenize/_manifest.json").read_text())["seconds"]
                tok["raw s"].append(raw_s), tok["stage s"].append(stage_s), tok["wall s"].append(walls["one file"][-1])
        row = {"stage": stage, **{f"{n} s": round(_median(walls[n]), 1) for n in FORMS}}
        row["one / many"] = _span([a / b for a, b in zip(walls["one file"], walls["many files"])])
        row["gzip / many"] = _span([a / b for a, b in zip(walls["one gzip file"], walls["many files"])])
        row["stage s: one / many"] = _span([a / b for a, b in zip(own["one file"], own["many files"])])
        row["stage s: gzip / many"] = _span([a / b for a, b in zip(own["one gzip file"], own["many files"])])
        rows.append(row)
    parts = {name: json.loads((work[name] / "ingest/_manifest.json").read_text())["partitions"]["total"] for name in FORMS}
    print(f"one big jsonl (and one gzip file) vs {FILES} files, {mb:g} MB code-shaped corpus, `curate run --stages "
          f"STAGE` wall (Ray on all local CPUs), median of {rounds} interleaved rounds; ingest parts: {parts}")
    cols = list(rows[0])
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r[c]) for c in cols))
    print(f"tokenize ({text_mb:.1f} MB, one file) vs raw encode_batch on both cores, per round: stage seconds / raw "
          f"= {_span([r / s for r, s in zip(tok['raw s'], tok['stage s'])])}x of raw's MB/s; CLI wall (Ray's start "
          f"included) = {_span([r / w for r, w in zip(tok['raw s'], tok['wall s'])])}x; raw "
          f"{_span(tok['raw s'])} s, stage {_span(tok['stage s'])} s")


if __name__ == "__main__":
    main(sys.argv[1:])
