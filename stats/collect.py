"""Every figure of the report, gathered from a work directory's artifacts into one JSON-able dict
(`stats.json`). Sections appear when their artifacts exist; `coverage.missing` names the rest."""

from __future__ import annotations

from stats import funnel as F
from stats.artifacts import Workdir
from stats.contamination import contamination
from stats.output import output
from stats.profile import examples, profile
from stats.redactions import mask_examples, redactions


def collect(wd: Workdir) -> dict:
    manifests = wd.manifests()
    shards_manifest = wd.shards_manifest()
    rows = F.funnel(manifests)
    stats = {
        "coverage": F.stage_coverage(manifests, shards_manifest is not None),
        "run": F.run_card(manifests, shards_manifest),
        "funnel": rows,
        "funnel_totals": F.funnel_totals(rows),
        "ledger_checks": F.check_ledgers(wd, manifests),
        "examples": mask_examples({s: ex for s in manifests if (ex := examples(wd, s))}, manifests.get("redact")),
        "dedup": F.dedup(manifests),
        "profiles": profiles(wd, manifests),
    }
    stats["code_mix"] = code_mix(stats["profiles"], manifests, shards_manifest)
    stats["rule_rates"] = rule_rates(manifests.get("quality"), stats["profiles"])
    if (found := contamination(manifests.get("decontaminate"))) is not None:
        stats["contamination"] = found
    if (found := redactions(manifests.get("redact"))) is not None:
        stats["redactions"] = found
    out = output(wd)
    if out is not None:
        out["target_ratio"] = target_ratio(_pack_config(manifests, shards_manifest), out.get("plan"))
        stats["output"] = out
    return stats


def profiles(wd: Workdir, manifests: dict[str, dict]) -> dict:
    """The first stage with kept parts ("before cleaning") and the last one ("after"); one read if the same."""
    with_parts = [s for s in manifests if wd.kept_parts(s)]
    if not with_parts:
        return {}
    first = profile(wd, with_parts[0])
    final = first if with_parts[-1] == with_parts[0] else profile(wd, with_parts[-1])
    return {"first": first, "final": final}


def code_mix(profiles: dict, manifests: dict[str, dict], shards_manifest: dict | None) -> list[dict] | None:
    """Per programming language: docs/bytes before and after, tokens after, the share of the final code
    tokens (or bytes, before tokenize) and the recipe's pack weight for that language."""
    if not profiles:
        return None
    weights = _pack_config(manifests, shards_manifest).get("lang_weights", {})
    before = {r["lang"]: r for r in profiles["first"]["by_lang"] if r["kind"] == "code"}
    after = {r["lang"]: r for r in profiles["final"]["by_lang"] if r["kind"] == "code"}
    unit = "tokens" if any("tokens" in r for r in after.values()) else "bytes"
    total = sum(r[unit] for r in after.values())
    rows = []
    for lang in sorted(set(before) | set(after)):
        b, a = before.get(lang, {}), after.get(lang, {})
        rows.append({"lang": lang, "docs_before": b.get("docs", 0), "bytes_before": b.get("bytes", 0),
                     "docs_after": a.get("docs", 0), "bytes_after": a.get("bytes", 0), "tokens_after": a.get("tokens"),
                     "share_unit": unit, "share": a.get(unit, 0) / total if total else 0.0,
                     "weight": weights.get(lang, 1.0)})
    return rows


def rule_rates(manifest: dict | None, profiles: dict) -> list[dict] | None:
    """Per quality drop reason and kind: documents it dropped / documents of that kind the stage read.
    A document is dropped by the first rule that fires, so this is the rule's share of the drops."""
    if manifest is None or not profiles:
        return None
    kind_of = {r["source"]: r["kind"] for r in profiles["first"]["by_source"]}
    docs_in: dict[str, int] = {}
    dropped: dict[tuple[str, str], int] = {}
    for source, c in manifest["ledger"].items():
        kind = kind_of.get(source, "?")
        docs_in[kind] = docs_in.get(kind, 0) + c["docs_in"]
        for reason, n in c["docs_dropped"].items():
            dropped[(kind, reason)] = dropped.get((kind, reason), 0) + n
    return [{"kind": k, "reason": r, "dropped": n, "docs_in": docs_in[k], "rate": n / docs_in[k] if docs_in[k] else 0.0}
            for (k, r), n in sorted(dropped.items())]


def _pack_config(manifests: dict[str, dict], shards_manifest: dict | None) -> dict:
    if "pack" in manifests and isinstance(manifests["pack"].get("config"), dict):
        return manifests["pack"]["config"]
    return (shards_manifest or {}).get("config", {}) if isinstance((shards_manifest or {}).get("config"), dict) else {}


def target_ratio(config: dict, plan) -> float | None:
    """code/text of the recipe's pack.mixture (from the pack manifest's config, else the plan's)."""
    for src in (config, plan if isinstance(plan, dict) else {}):
        mix = src.get("mixture")
        if isinstance(mix, dict) and mix.get("text"):
            return mix.get("code", 0) / mix["text"]
    return None
