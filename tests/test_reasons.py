"""Every reason code a module can emit is registered with a meaning, and follows `<stage>.<condition>`."""

from __future__ import annotations

import re
from pathlib import Path

from curate.reasons import REASONS
from curate.schema import STAGES

ROOT = Path(__file__).resolve().parents[1]
STAGE_ALT = "|".join(STAGES)
CODE = re.compile(rf"[\"']((?:{STAGE_ALT})\.[a-z0-9_]+)[\"']")


def emitted_codes() -> set[str]:
    found = set()
    for p in (ROOT / "curate").rglob("*.py"):
        if p.name == "reasons.py":
            continue
        found |= {m.group(1) for m in CODE.finditer(p.read_text())}
    return found


def test_every_emitted_code_is_registered():
    missing = {c for c in emitted_codes() if c not in REASONS and not c.endswith((".py", ".json", ".parquet"))}
    assert missing == set()


def test_codes_are_stage_dot_snake_case_with_a_meaning():
    for code, meaning in REASONS.items():
        stage, _, condition = code.partition(".")
        assert stage in STAGES, code
        assert re.fullmatch(r"[a-z][a-z0-9_]*[a-z0-9]", condition), code  # bad_utf8 is the style guide's own example
        assert meaning and meaning[0].islower(), code
