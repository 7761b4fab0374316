"""The stage declarations are the one list of stages: everything that lists stages agrees with them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from curate import recipe, schema, tasks
from curate.stagespec import Stage, declarations, load

ROOT = Path(__file__).resolve().parents[1]


def test_order_and_keys():
    keys = [d.key for d in declarations()]
    assert keys[:5] == ["ingest", "exact_dedup", "near_dedup", "language", "quality"]
    assert keys[-2:] == ["tokenize", "pack"]
    assert tuple(keys) == schema.STAGES


def test_every_named_function_resolves():
    for d in declarations():
        for field in ("decide", "run", "prepare", "salt", "check", "skip"):
            ref = getattr(d, field)
            assert ref is None or callable(load(ref)), (d.key, field, ref)


def test_deciders_and_sections_come_from_the_declarations():
    assert tasks.DECIDERS == {d.key: d.decide for d in declarations() if d.decide}
    assert set(recipe.ROW_SECTIONS) == {d.key for d in declarations() if d.per_source}
    for key in recipe.ROW_SECTIONS + recipe.GLOBAL_SECTIONS:  # a section for every stage, top level and source
        assert key in recipe.Recipe.model_fields and key in recipe.JsonlSource.model_fields, key


def test_makefile_has_a_file_target_per_stage_on_the_previous_manifest():
    make = (ROOT / "Makefile").read_text()
    keys = [d.key for d in declarations()]
    for prev, d in zip([None, *keys], declarations()):
        rule = re.search(rf"^\$\(WORKDIR\)/{d.key}/_manifest\.json: (.*)$", make, re.M)
        assert rule, f"Makefile: no file target for {d.key}"
        if prev:
            assert f"$(WORKDIR)/{prev}/_manifest.json" in rule.group(1), d.key
        assert re.search(rf"^{d.target}: \$\(WORKDIR\)/{d.key}/_manifest\.json$", make, re.M), d.target
        assert f"$(RUN) --stages {d.key}" in make


def test_a_bad_declaration_is_refused():
    with pytest.raises(ValueError, match="kind"):
        Stage(key="x", order=1, kind="rowwise", summary="", decide="a:b")
    with pytest.raises(ValueError, match="decide"):
        Stage(key="x", order=1, kind="row", summary="")
