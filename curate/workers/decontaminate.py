"""decontaminate's worker side: reads the benchmark files, builds the n-gram index once per worker
process (per distinct benchmarks/ngram setting) and marks each part's contaminated documents.

Per-part counters (summed into the stage manifest's `extra`): `contaminated` per benchmark and source,
and `items`, how many documents matched each benchmark item (`<benchmark>/<item id>`).
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from curate import parts, tasks
from curate.errors import RecipeError
from curate.schema import DROP_DETAIL, DROP_REASON, SOURCE
from curate.stages import decontaminate as D
from curate.tasks import PartTask


def benchmarks(cfg) -> list[dict]:
    """A section's benchmarks as plain dicts; the default (None) is HumanEval from the asset."""
    if cfg.benchmarks is not None:
        return [b.model_dump(mode="json") for b in cfg.benchmarks]
    from curate.assets import humaneval_path

    return [{"name": "humaneval", "format": "jsonl", "paths": [humaneval_path()],
             "fields": ["prompt", "canonical_solution"], "id_field": "task_id"}]


def benchmark_files(bench: dict) -> list[str]:
    """The files of a benchmark's `paths` (globs expanded, sorted); a path that matches nothing is an error."""
    files = []
    for i, pattern in enumerate(bench["paths"]):
        found = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        found = [f for f in found if Path(f).is_file()]
        if not found:
            hint = " (run `curate assets`)" if bench["name"] == "humaneval" else ""
            raise RecipeError(f"decontaminate.benchmarks[{bench['name']}].paths[{i}]: no file matches {pattern!r}{hint}")
        files += found
    return files


def read_items(bench: dict) -> tuple[list[str], list[str]]:
    """(text, id) of every item: its `fields` joined by a newline; ids from `id_field` or the row number."""
    rows: list[dict] = []
    for f in benchmark_files(bench):
        if bench["format"] == "parquet":
            import pyarrow.parquet as pq

            rows += pq.read_table(f).to_pylist()
        else:
            from curate.sources.files import open_binary

            with open_binary(f) as fh:
                rows += [json.loads(line) for line in fh if line.strip()]
    missing = [k for k in bench["fields"] + [bench["id_field"] or bench["fields"][0]] if rows and k not in rows[0]]
    if missing:
        raise RecipeError(f"decontaminate.benchmarks[{bench['name']}]: no field {missing[0]!r} in its items "
                          f"(fields: {', '.join(sorted(rows[0]))})")
    texts = ["\n".join(str(r.get(k) or "") for k in bench["fields"]) for r in rows]
    ids = [str(r.get(bench["id_field"], i)) if bench["id_field"] else str(i) for i, r in enumerate(rows)]
    return texts, ids


def build(cfg) -> D.Index | None:
    """The index of a section's benchmarks (None when it names none)."""
    texts, names, ids = [], [], []
    for bench in benchmarks(cfg):
        t, i = read_items(bench)
        texts += t
        ids += i
        names += [bench["name"]] * len(t)
    return D.build_index(texts, names, ids, cfg.ngram) if texts else None


def index(cfg) -> D.Index | None:
    """The index, built once per worker process for each distinct (benchmarks, ngram, file versions)."""
    files = [(f, os.stat(f).st_size, os.stat(f).st_mtime_ns) for b in benchmarks(cfg) for f in benchmark_files(b)]
    key = ("decontaminate", json.dumps(benchmarks(cfg), sort_keys=True), cfg.ngram, tuple(files))  # a rewritten file: anew
    return tasks.cached(key, lambda: build(cfg))


def decide(task: PartTask, extra: dict) -> Iterator[pa.Table]:
    extra.update(contaminated={}, items={})
    for batch in parts.iter_part(task.input_part):
        yield tasks.by_source(batch, lambda rows, source: decide_rows(rows, task.recipe.settings("decontaminate", source),
                                                                      extra))


def decide_rows(batch: pa.Table, cfg, extra: dict) -> pa.Table:
    """One source's rows under its effective decontaminate settings; counts what it drops."""
    out = D.apply(batch, index(cfg), cfg.min_matches)
    dropped = out.filter(pc.is_valid(out[DROP_REASON]))
    if dropped.num_rows:
        count(dropped[SOURCE].to_pylist(), dropped[DROP_DETAIL].to_pylist(), extra)
    return out


def count(sources: list[str], details: list[str], extra: dict) -> None:
    """contaminated[benchmark][source] and items["benchmark/item"] counters from the drop details."""
    for source, detail in zip(sources, details):
        fields = dict(kv.split("=", 1) for kv in detail.split(" "))
        per = extra["contaminated"].setdefault(fields["benchmark"], {})
        per[source] = per.get(source, 0) + 1
        key = f"{fields['benchmark']}/{fields['item']}"
        extra["items"][key] = extra["items"].get(key, 0) + 1


def benchmarks_salt(recipe) -> str:
    """The checksums of every benchmark file the sources use: a changed benchmark file redoes the stage."""
    files = sorted({f for s in [None, *(s.name for s in recipe.sources)]
                    for b in benchmarks(recipe.settings("decontaminate", s)) for f in benchmark_files(b)})
    return ":".join(parts.file_salt(f) for f in files)


def check(recipe, workdir, selected, explicit, dry_run) -> None:
    """Every benchmark file exists and has the named fields (exit 2 otherwise), before any work."""
    seen = set()
    for s in [None, *(s.name for s in recipe.sources)]:
        for bench in benchmarks(recipe.settings("decontaminate", s)):
            if (key := json.dumps(bench, sort_keys=True)) not in seen:  # each benchmark read once
                seen.add(key)
                read_items(bench)


def top_items(items: dict[str, int], n: int = 10) -> list[tuple[str, int]]:
    """The items most often matched, most first (ties by name)."""
    return sorted(items.items(), key=lambda kv: (-kv[1], kv[0]))[:n]

