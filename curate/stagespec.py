"""Stage declarations: each stage says once, next to its code, what it is and how it runs.

A stage's pure module (`curate/stages/<key>.py`) holds one `STAGE = Stage(...)` with literal arguments:
its key, its place in the order, whether it is a row stage (each upstream part maps to one output part)
or a global one (a driver with phases), whether its recipe section may be overridden per source, and
the functions that run it, named as "module:function" strings. Everything that needs the list of stages
reads these declarations: the pipeline (order, runners, pre-run checks), `curate.tasks` (the per-part
deciders), the recipe (which sections are per source), the CLI and dry run, `stats` (through
`curate.schema.STAGES`) and a test that keeps the Makefile's targets in step.

Why strings and a source reader: the declarations are read from the modules' source (`ast`), not by
importing them, so that `schema`, `stats` and `--help` learn the order without loading numba, fastText
or tokenizers, and the pipeline imports a stage's driver only when that stage runs; the pipeline names
no stage module, so no import circle runs through it. This module imports nothing of curate.
"""

from __future__ import annotations

import ast
import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_STAGES_DIR = Path(__file__).resolve().parent / "stages"


@dataclass(frozen=True)
class Stage:
    """One stage's declaration.

    key         the stage key: module, recipe section, CLI `--stages`, Make target (hyphenated), reason prefix
    order       its place in the pipeline (any number; stages run in increasing order)
    kind        "row": parts in, parts out, one decider per part; "global": a driver with its own phases
    summary     one line for `curate stages`, `--help` and the docs
    per_source  its recipe section may be overridden under a source (`sources[i].<key>`)
    decide      "module:function", a generator `(PartTask, extra) -> decided tables` (row stages)
    run         "module:function", `(ctx, upstream) -> StageResult`; default: `pipeline.run_row_stage`
    prepare     "module:function", a row stage's global phase `(ctx, up, inputs, stage_dir) -> (options, extra)`
    salt        "module:function", `(recipe) -> str`: what changes the output but is not in the recipe
                (a model file's checksum)
    check       "module:function", `(recipe, workdir, selected, explicit, dry_run) -> None`: refuses a
                recipe before any engine starts (RecipeError: exit 2)
    skip        "module:function", `(recipe) -> str | None`: why the stage cannot run with this recipe
                (logged; the stage is left out of a default run)
    reads       "upstream" (the nearest earlier stage), "sources" (ingest only)
    """

    key: str
    order: int
    kind: str
    summary: str
    per_source: bool = False
    decide: str | None = None
    run: str | None = None
    prepare: str | None = None
    salt: str | None = None
    check: str | None = None
    skip: str | None = None
    reads: str = "upstream"

    def __post_init__(self):
        if self.kind not in ("row", "global"):
            raise ValueError(f"stage {self.key}: kind must be 'row' or 'global', not {self.kind!r}")
        if self.kind == "row" and self.decide is None and self.run is None:
            raise ValueError(f"stage {self.key}: a row stage names its `decide` (or its own `run`)")

    @property
    def target(self) -> str:
        """The Make target: the key with hyphens (`exact-dedup`)."""
        return self.key.replace("_", "-")


def load(ref: str) -> Callable:
    """The function a declaration names ("curate.workers.quality:decide"), imported on first use."""
    module, func = ref.split(":")
    return getattr(importlib.import_module(module), func)


@functools.cache
def declarations() -> tuple[Stage, ...]:
    """Every declared stage, in pipeline order, read from the `STAGE = Stage(...)` of curate/stages/*.py."""
    found = [d for path in sorted(_STAGES_DIR.glob("*.py")) if (d := _declared_in(path)) is not None]
    keys = [d.key for d in found]
    if len(set(keys)) != len(keys) or len({d.order for d in found}) != len(found):
        raise RuntimeError(f"stage declarations repeat a key or an order: {sorted(keys)}")
    return tuple(sorted(found, key=lambda d: d.order))


def _declared_in(path: Path) -> Stage | None:
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if (isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["STAGE"]
                and isinstance(node.value, ast.Call) and getattr(node.value.func, "id", None) == "Stage"):
            if node.value.args:
                raise RuntimeError(f"{path}: STAGE = Stage(...) takes keyword arguments only")
            return Stage(**{kw.arg: ast.literal_eval(kw.value) for kw in node.value.keywords})
    return None


def stage_keys() -> tuple[str, ...]:
    return tuple(d.key for d in declarations())


def declaration(key: str) -> Stage:
    return next(d for d in declarations() if d.key == key)
