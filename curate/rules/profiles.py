"""Quality rule profiles: which rules of `quality_rules.csv` a kind of source gets, and at what thresholds.

`quality_profiles.csv` has one row per (profile, rule): `threshold` (empty: the rule's published default)
and `why`, the evidence for the rule's place in the profile. Built-in profiles:

    web          crawled web pages: Gopher quality and repetition, C4, FineWeb (their published use)
    curated      edited text (encyclopedias, books, papers, Q&A, documentation, math): only what catches
                 broken or spam documents; nothing that penalises length, braces, LaTeX, code blocks, short
                 items or few lines
    code         what the cited code pipelines applied to every file
    code-strict  code plus ablations and per-language filters (comment ratio, char/token, JSON/YAML alphabet,
                 Linguist's vendored paths)
    none         no rule (signals are still recorded)

A recipe may add profiles (`quality.profiles: {NAME: {base, enable, disable, thresholds}}`); a source
picks one with `quality.profile` (default: `web` for text, `code` for code). The recipe's own
`quality.thresholds` and `quality.disable` then refine the chosen profile.
"""

from __future__ import annotations

from functools import lru_cache

from curate.errors import did_you_mean
from curate.rules.table import Rule, _read_csv, rules

DEFAULT_PROFILE = {"text": "web", "code": "code"}
NONE = "none"


@lru_cache(maxsize=1)
def builtin_profiles() -> dict[str, dict[str, float | None]]:
    """Built-in profile -> {rule id: threshold or None (the rule's default)}, in table order."""
    known = {r.id for r in rules()}
    out: dict[str, dict[str, float | None]] = {NONE: {}}
    for row in _read_csv("quality_profiles.csv"):
        if row["rule"] not in known:
            raise ValueError(f"quality_profiles.csv: profile {row['profile']}: unknown rule {row['rule']!r}")
        threshold = float(row["threshold"]) if row["threshold"].strip() else None
        out.setdefault(row["profile"], {})[row["rule"]] = threshold
    return out


def profile_names(custom: dict) -> list[str]:
    return sorted(set(builtin_profiles()) | set(custom))


def profile_errors(profile: str | None, custom: dict) -> list[str]:
    """Unknown profile names (the chosen one, every custom profile's base) and cycles among custom
    profiles, each naming its field with a did-you-mean."""
    names = profile_names(custom)
    errors = []
    for name, spec in custom.items():
        if name in builtin_profiles():
            errors.append(f"quality.profiles.{name}: {name!r} is a built-in profile; give yours another name")
        elif spec.base not in names:
            errors.append(f"quality.profiles.{name}.base: unknown profile {spec.base!r}{did_you_mean(spec.base, names)}")
        elif _cycle(name, custom):
            errors.append(f"quality.profiles.{name}.base: profiles based on each other in a circle ({_cycle(name, custom)})")
    if profile is not None and profile not in names:
        errors.append(f"quality.profile: unknown profile {profile!r}{did_you_mean(profile, names)}")
    return errors


def _cycle(name: str, custom: dict) -> str:
    seen = [name]
    while name in custom:
        name = custom[name].base
        if name in seen:
            return " -> ".join([*seen, name])
        seen.append(name)
    return ""


def resolve(profile: str, custom: dict) -> dict[str, float | None]:
    """{rule id: threshold or None} of a profile, built-in or the recipe's (base, then enable/disable,
    then thresholds)."""
    if profile in custom:
        spec = custom[profile]
        out = dict(resolve(spec.base, custom))
        out.update({rid: out.get(rid) for rid in spec.enable})
        for rid in spec.disable:
            out.pop(rid, None)
        out.update(spec.thresholds)
        return out
    return dict(builtin_profiles()[profile])


def profile_kinds(profile: str, custom: dict) -> set[str]:
    """The document kinds (code, text) a profile has rules for."""
    by_id = {r.id: r for r in rules()}
    return {by_id[rid].applies_to for rid in resolve(profile, custom)}


def active_rules(profile: str, custom: dict, thresholds: dict[str, float], disable: list[str]) -> list[Rule]:
    """The rules a document under `profile` is judged by, in rule-table order (the first that fires is
    the reason): the profile's rules at its thresholds, then the recipe's `thresholds` and `disable`."""
    chosen = resolve(profile, custom)
    out = []
    for rule in rules():
        if rule.id not in chosen or rule.id in disable:
            continue
        threshold = thresholds.get(rule.id, chosen[rule.id])
        out.append(rule.with_threshold(threshold) if threshold is not None else rule)
    return out
