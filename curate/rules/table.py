"""The quality rule table and the per-language comment syntax, both kept as data in this package.

`code_languages.csv` has one row per programming language (The Stack's spelling): `comment_prefixes`, the
markers that start a comment line, and `block_comments`, open/close pairs of block comments and
docstrings (Python's triple-quoted strings count: docstrings are where its prose is).

`quality_rules.csv` has one row per rule: `id` (the reason code is `quality.<id>`), `applies_to` (code or
text), `languages` (empty: every language; `A;B`: only these; `!A;B`: all but these; matched
case-insensitively against the `lang` column), `metric` (a signal computed by `curate.rules.text_metrics`
or `curate.rules.code_metrics`), `op` (`min`: the rule fires when value < threshold; `max`: when value >
threshold), the published `threshold`, its `source`, and a one-line `meaning`. A NaN value (a metric that
is undefined for a document, e.g. comment lines of JSON) never fires. Adding a rule is one row here, plus
a metric function if the metric is new.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True)
class Rule:
    id: str
    applies_to: str
    languages: frozenset[str]  # lowercased; empty = all
    exclude: bool  # True: `languages` lists the exceptions
    metric: str
    op: str
    threshold: float
    source: str
    meaning: str

    @property
    def reason(self) -> str:
        return f"quality.{self.id}"

    def with_threshold(self, threshold: float) -> Rule:
        return Rule(**{**self.__dict__, "threshold": float(threshold)})


def _read_csv(name: str) -> list[dict]:
    with resources.files("curate.rules").joinpath(name).open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@lru_cache(maxsize=1)
def rules() -> tuple[Rule, ...]:
    out = []
    for row in _read_csv("quality_rules.csv"):
        spec = row["languages"].strip()
        exclude = spec.startswith("!")
        langs = frozenset(s.strip().lower() for s in spec.lstrip("!").split(";") if s.strip())
        if row["op"] not in ("min", "max") or row["applies_to"] not in ("code", "text"):
            raise ValueError(f"quality_rules.csv: rule {row['id']}: bad op or applies_to")
        out.append(Rule(row["id"], row["applies_to"], langs, exclude, row["metric"], row["op"],
                        float(row["threshold"]), row["source"], row["meaning"]))
    return tuple(out)


def rule_ids() -> list[str]:
    return [r.id for r in rules()]


@lru_cache(maxsize=1)
def comment_prefixes() -> dict[str, tuple[str, ...]]:
    """Lowercased language -> the prefixes that start a comment line (after leading whitespace)."""
    return {row["language"].lower(): tuple(row["comment_prefixes"].split()) for row in _read_csv("code_languages.csv")}


@lru_cache(maxsize=1)
def block_comment_delimiters() -> dict[str, tuple[tuple[str, str], ...]]:
    """Lowercased language -> its (open, close) pairs of block comments and docstrings; the column lists
    them flat, space-separated (`/* */`; Python: its two triple quotes)."""
    out = {}
    for row in _read_csv("code_languages.csv"):
        flat = row["block_comments"].split()
        if len(flat) % 2:
            raise ValueError(f"code_languages.csv: {row['language']}: block_comments must be open/close pairs")
        out[row["language"].lower()] = tuple(zip(flat[::2], flat[1::2]))
    return out


def code_language_names() -> set[str]:
    """The languages of code_languages.csv, as written there (The Stack's spelling)."""
    return {row["language"] for row in _read_csv("code_languages.csv")}


def reason_codes() -> dict[str, str]:
    """Every `quality.<rule id>` code with its meaning, for curate.reasons."""
    return {r.reason: r.meaning for r in rules()}
