"""go-enry's share of ingest on code trees: CPU seconds of the ingest stage (in-process) and of the calls into
`curate.sources.linguist` during it (listing: `by_name`, `by_head`; reading: `detect`).

Trees: the demo's stdlib (`data/demo/code/python`), or the directories in `CURATE_BENCH_TREES` (separated
by `:`). Best of 3 runs per tree (the lowest ingest CPU), name caches cleared before each run. go-enry's
one-off start in a process (Go's runtime, Linguist's compiled heuristics) is measured first and reported
apart: every worker process pays it once, whatever the size of its partitions.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from curate import pipeline
from curate.engine import LocalEngine
from curate.recipe import parse_recipe
from curate.sources import code_tree, linguist

TIMED = ("detect", "by_name", "by_head")


def _timing(spent: list[float]):
    originals = {name: getattr(linguist, name) for name in TIMED}

    def wrap(fn):
        def timed(*args):
            started = time.process_time()
            try:
                return fn(*args)
            finally:
                spent[0] += time.process_time() - started
        return timed

    for name, fn in originals.items():
        setattr(linguist, name, wrap(fn))
    return originals


def _ingest_once(tree: str, workdir: Path) -> tuple[float, float, dict]:
    code_tree._head_names_language.cache_clear()
    linguist.clear_caches()
    recipe = parse_recipe({"name": "bench", "sources": [{"name": "tree", "kind": "code", "format": "code-tree",
                                                         "paths": [tree]}]})
    spent = [0.0]
    originals = _timing(spent)
    try:
        started = time.process_time()
        (result,) = pipeline.run(pipeline.Context(recipe, workdir, LocalEngine()), ["ingest"])
        total = time.process_time() - started
    finally:
        for name, fn in originals.items():
            setattr(linguist, name, fn)
        shutil.rmtree(workdir, ignore_errors=True)
    return total, spent[0], result.manifest["totals"]


def main() -> None:
    trees = [t for t in os.environ.get("CURATE_BENCH_TREES", "data/demo/code/python").split(":") if t]
    started = time.process_time()
    linguist.by_name("warm.c")
    print(f"go-enry start in a process: {time.process_time() - started:.3f} CPU s (not in the rows below)")
    print(f"{'tree':<40} {'files':>6} {'MB':>6} {'ingest CPU s':>12} {'enry CPU s':>10} {'share':>6}")
    tmp = Path(tempfile.mkdtemp(prefix="curate-bench-linguist-"))
    try:
        for tree in trees:
            total, enry, totals = min(_ingest_once(tree, tmp / f"run{i}") for i in range(3))
            print(f"{Path(tree).name[:40]:<40} {totals['docs_in']:>6} {totals['bytes_in'] / 1e6:>6.1f} "
                  f"{total:>12.3f} {enry:>10.3f} {100 * enry / total:>5.1f}%")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
