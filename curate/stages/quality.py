"""Stage `quality`: rule-based quality signals for code and text, and an optional fastText classifier.

Input: the document schema (after `language`). Output: the same rows and order plus
    quality_signals             struct of every signal (float; null where a signal does not apply to the row's
                                kind or is undefined, e.g. mean word length of a text with no words)
    quality_flags               list of the rule ids that fired, in rule-table order
    quality_score               passed / applicable rules, in [0, 1] (1.0 when no rule applies)
    quality_classifier_score    the classifier's probability of `__label__hq` (null when not scored)
Reason codes: `quality.<rule id>` for the first rule that fired (one per row of `curate/rules/quality_rules.csv`,
which cites each threshold's paper), then `quality.classifier_low_score`.
Rules: Gopher quality and repetition (Rae et al. 2021), C4 (Raffel et al. 2020), FineWeb (Penedo et al. 2024)
for text; Codex (Chen et al. 2021), The Stack (Kocetkov et al. 2022), StarCoder (Li et al. 2023) for code.
Signals are computed in one shared tokenisation per kind (`curate.rules.text_metrics` / `code_metrics`);
code also gets `linguist_generated` / `linguist_vendored` from GitHub Linguist's rules (go-enry) on its path.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.rules.code_metrics import code_signals
from curate.rules.profiles import active_rules as profile_rules
from curate.rules.table import Rule, rules
from curate.rules.text_metrics import text_signals
from curate.schema import DROP_DETAIL, DROP_REASON, KIND, LANG, PATH, TEXT
from curate.stagespec import Stage

STAGE = Stage(key="quality", order=50, kind="row", per_source=True,
              summary="rule profiles per source, optional fastText quality classifier",
              decide="curate.workers.quality:decide", salt="curate.workers.quality:classifier_salt",
              check="curate.workers.quality:check")

CLASSIFIER_REASON = "quality.classifier_low_score"


def active_rules(thresholds: dict[str, float], disable: list[str], profile: str | None = None,
                 profiles: dict | None = None) -> list[Rule]:
    """The rules of `profile` (`curate.rules.profiles`; None: every rule of the table at its published
    threshold) with the recipe's threshold overrides, without the disabled rules."""
    if profile is not None:
        return profile_rules(profile, profiles or {}, thresholds, disable)
    return [r.with_threshold(thresholds[r.id]) if r.id in thresholds else r for r in rules() if r.id not in disable]


@lru_cache(maxsize=1)
def signal_names() -> tuple[str, ...]:
    """Every signal name, text first then code, in a fixed order (the struct's fields)."""
    probe_text = text_signals(pa.array([""], pa.string()))
    probe_code = _code_signals(pa.array([""], pa.string()), pa.array(["Python"]), pa.array(["x.py"]))
    return tuple(probe_text) + tuple(k for k in probe_code if k not in probe_text)


def compute_signals(table: pa.Table) -> dict[str, np.ndarray]:
    """All signals for all rows: text signals on text rows and code signals on code rows, NaN elsewhere."""
    n = table.num_rows
    is_text = pc.equal(table[KIND], "text").to_numpy(zero_copy_only=False)
    texts = table[TEXT].combine_chunks()
    paths = table[PATH].combine_chunks() if PATH in table.column_names else pa.nulls(n, pa.string())
    out = {name: np.full(n, np.nan) for name in signal_names()}
    for mask, fn in ((is_text, lambda t, _, __: text_signals(t)), (~is_text, _code_signals)):
        if mask.any():
            sel = pa.array(mask)
            for name, values in fn(texts.filter(sel), table[LANG].combine_chunks().filter(sel), paths.filter(sel)).items():
                out[name][mask] = values
    return out


def _code_signals(texts: pa.Array, langs: pa.Array, paths: pa.Array) -> dict[str, np.ndarray]:
    """Code signals, plus GitHub Linguist's generated-file and vendored-path rules (go-enry) on the
    documents' paths and texts: 1.0 / 0.0, NaN for a document without a path."""
    from curate.sources.linguist import generated_flags, vendored_flags

    out = code_signals(texts, langs)
    no_path = pc.is_null(paths).to_numpy(zero_copy_only=False)
    vendored = vendored_flags(paths)
    # Linguist also calls some vendored paths generated (Go's vendor/, node_modules/): those are left to
    # linguist_vendored, which the default profile records without dropping
    out["linguist_generated"] = np.where(no_path, np.nan, generated_flags(paths, texts) & ~vendored)
    out["linguist_vendored"] = np.where(no_path, np.nan, vendored)
    return out


def _applies(rule: Rule, kinds: np.ndarray, langs: np.ndarray) -> np.ndarray:
    mask = kinds == rule.applies_to
    if rule.languages:
        listed = np.isin(langs, list(rule.languages))
        mask &= ~listed if rule.exclude else listed
    return mask


def evaluate(signals: dict[str, np.ndarray], kinds: np.ndarray, langs: np.ndarray,
             active: list[Rule]) -> tuple[np.ndarray, np.ndarray]:
    """(fired, applicable): boolean matrices of shape (rules, rows). NaN values never fire."""
    fired = np.zeros((len(active), len(kinds)), dtype=bool)
    applicable = np.zeros_like(fired)
    for i, rule in enumerate(active):
        value = signals[rule.metric]
        defined = _applies(rule, kinds, langs) & ~np.isnan(value)
        with np.errstate(invalid="ignore"):
            past = value < rule.threshold if rule.op == "min" else value > rule.threshold
        fired[i] = defined & past
        applicable[i] = defined
    return fired, applicable


def apply(table: pa.Table, active: list[Rule], classifier_scores: np.ndarray | None = None,
          classifier_min: float = 0.0, profile: str | None = None) -> pa.Table:
    """The decided table for one batch; `classifier_scores` has NaN for rows the classifier does not score.
    `profile` (the name the rules came from) is written into the details of the rows it drops."""
    n = table.num_rows
    kinds = np.array(table[KIND].to_pylist(), dtype=object).astype(str)
    langs = np.array(pc.utf8_lower(pc.fill_null(table[LANG].cast(pa.string()), "")).to_pylist(), dtype=str)
    signals = compute_signals(table)
    fired, applicable = evaluate(signals, kinds, langs, active)
    n_app = applicable.sum(axis=0)
    score = np.where(n_app > 0, 1.0 - fired.sum(axis=0) / np.maximum(n_app, 1), 1.0)
    reasons, details = _first_fired(fired, active, signals, f"profile={profile} " if profile else "")
    cls = np.full(n, np.nan) if classifier_scores is None else classifier_scores
    low = ~np.isnan(cls) & (np.nan_to_num(cls, nan=1.0) < classifier_min) & (reasons == None)  # noqa: E711
    reasons[low] = CLASSIFIER_REASON
    details[low] = [f"classifier={c:.4f} < {classifier_min}" for c in cls[low]]
    return (table.append_column("quality_signals", _struct(signals))
                 .append_column("quality_flags", _flags(fired, active))
                 .append_column("quality_score", pa.array(score, pa.float32()))
                 .append_column("quality_classifier_score", pa.array(cls, pa.float32(), mask=np.isnan(cls)))
                 .append_column(DROP_REASON, pa.array(list(reasons), pa.string()))
                 .append_column(DROP_DETAIL, pa.array(list(details), pa.string())))


def _first_fired(fired: np.ndarray, active: list[Rule], signals: dict, prefix: str = "") -> tuple[np.ndarray, np.ndarray]:
    n = fired.shape[1]
    reasons = np.full(n, None, dtype=object)
    details = np.full(n, None, dtype=object)
    if not active:
        return reasons, details
    any_fired = fired.any(axis=0)
    first = fired.argmax(axis=0)
    for row in np.nonzero(any_fired)[0]:  # dropped rows only
        rule = active[first[row]]
        op = "<" if rule.op == "min" else ">"
        reasons[row] = rule.reason
        details[row] = f"{prefix}{rule.metric}={signals[rule.metric][row]:.4g} {op} {rule.threshold:g}"
    return reasons, details


def _struct(signals: dict[str, np.ndarray]) -> pa.StructArray:
    arrays = [pa.array(v, pa.float64(), mask=np.isnan(v)) for v in signals.values()]
    return pa.StructArray.from_arrays(arrays, names=list(signals))


def _flags(fired: np.ndarray, active: list[Rule]) -> pa.ListArray:
    rows, rule_idx = np.nonzero(fired.T)  # sorted by row, then rule order
    offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=fired.shape[1]))]).astype(np.int32)
    ids = pa.array([r.id for r in active], pa.string()) if active else pa.array([], pa.string())
    return pa.ListArray.from_arrays(pa.array(offsets), ids.take(pa.array(rule_idx, pa.int64())))
