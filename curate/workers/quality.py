"""quality's worker side: reads a part, scores it with the optional fastText classifier (loaded once per
worker process) and applies the rule table."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate import parts, tasks
from curate.quality_classifier import classifier_model, score_texts
from curate.schema import KIND, TEXT
from curate.stages import quality
from curate.tasks import PartTask


def classifier_scores(batch: pa.Table, cfg) -> np.ndarray | None:
    """P(high quality) for the rows of the classifier's kinds, NaN for the others; None without a classifier."""
    if cfg is None:
        return None
    kinds = ("code", "text") if cfg.applies_to == "all" else (cfg.applies_to,)
    mask = pc.is_in(batch[KIND], pa.array(kinds)).to_numpy(zero_copy_only=False)
    scores = np.full(batch.num_rows, np.nan)
    if mask.any():
        scores[mask] = score_texts(classifier_model(cfg.model), batch[TEXT].filter(pa.array(mask)), cfg.max_chars)
    return scores


def decide(task: PartTask, extra: dict) -> Iterator[pa.Table]:
    for batch in parts.iter_part(task.input_part):
        yield tasks.by_source(batch, lambda rows, source: decide_rows(rows, task.recipe, source))


def decide_rows(batch: pa.Table, recipe, source: str | None) -> pa.Table:
    """One source's rows under its effective quality settings and profile."""
    cfg = recipe.settings("quality", source)
    profile = recipe.quality_profile(source) if source is not None else (cfg.profile or "none")
    active = quality.active_rules(cfg.thresholds, cfg.disable, profile, cfg.profiles)
    scores = classifier_scores(batch, cfg.classifier)
    return quality.apply(batch, active, scores, cfg.classifier.min_score if cfg.classifier else 0.0, profile)


def classifier_salt(recipe) -> str:
    """The quality classifier's checksum: a retrained model at the same path redoes the stage."""
    return parts.file_salt(recipe.quality.classifier.model if recipe.quality.classifier else None)


def check(recipe, workdir, selected, explicit, dry_run) -> None:
    """The quality classifier, if the recipe names one, exists (exit 2 otherwise)."""
    from pathlib import Path

    from curate.errors import RecipeError

    clf = recipe.quality.classifier
    if clf is not None and not Path(clf.model).is_file():
        raise RecipeError(f"quality.classifier.model: file not found: {clf.model} (train one with `curate train-quality`)")
