"""language's worker side: the fastText model (loaded once per worker process), batch prediction, and the
recipe check of language codes against the model's label set (run before any work starts)."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from curate import parts, tasks
from curate.assets import lid_model_path
from curate.errors import RecipeError
from curate.sources import linguist
from curate.sources.extensions import known_languages
from curate.stages import language
from curate.tasks import PartTask


def load_model(path: str):
    """A fastText model; `fasttext-numpy2-wheel` provides the `fasttext` module and works under numpy 2."""
    import fasttext

    if not Path(path).is_file():
        raise RecipeError(f"language.model: file not found: {path} (run `curate assets`)")
    return fasttext.load_model(str(path))


def model(path: str | None):
    """The model of a language section (`path` None: the default lid.176.ftz), loaded once per process."""
    path = lid_model_path(path)
    return tasks.cached(("fasttext", str(path)), lambda: load_model(path))


def predict(ft_model, prepared: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Top label (without `__label__`) and its probability for each prepared (one-line) text: one batch
    call into fastText's C++ `multilinePredict` through the binding's public `predict`."""
    if not prepared:
        return np.zeros(0, dtype=object), np.zeros(0, dtype=np.float64)
    labels, probs = ft_model.predict(prepared, k=1)
    scores = np.array([p[0] if len(p) else 0.0 for p in probs], dtype=np.float64)
    return language.strip_labels(labels), scores


def code_languages(cfg) -> set[str]:
    """The code languages a language section's `code_languages` keeps, lowercased (aliases of members match too);
    built once per process and selection."""
    return tasks.cached(("code_languages", repr(cfg.code_languages)), lambda: allowed_code_languages(cfg.code_languages))


def allowed_code_languages(chosen) -> set[str]:
    """A `code_languages` value (None: the default; a list of names; a {types, names} selection) as the
    lowercased set the stage matches `lang` against."""
    if chosen is None:
        return linguist.selection(linguist.DEFAULT_CODE_TYPES, linguist.DEFAULT_CODE_NAMES)
    if isinstance(chosen, list):
        return linguist.selection((), chosen)
    return linguist.selection(chosen.types, chosen.names)


def decide(task: PartTask, extra: dict) -> Iterator[pa.Table]:
    extra.update(text_docs=0, text_chars_scored=0)
    for batch in parts.iter_part(task.input_part):
        yield tasks.by_source(batch, lambda rows, source: decide_rows(rows, task.recipe.settings("language", source), extra))


def decide_rows(batch: pa.Table, cfg, extra: dict) -> pa.Table:
    """One source's rows under its effective language settings `cfg`."""
    if cfg.identify:
        ft = model(cfg.model)
        prepared = language.prepare_texts(language.text_column(batch), cfg.max_chars, cfg.mask_markup)
        labels, scores = predict(ft, prepared)
        extra["text_docs"] += len(prepared)
        extra["text_chars_scored"] += sum(map(len, prepared))
    else:  # the source's own language is trusted
        labels, scores = language.trusted_labels(batch)
    out = language.decide(batch, labels, scores, cfg.keep, cfg.min_score, code_languages(cfg))
    if cfg.code_comments is not None:
        cc = cfg.code_comments
        rows, comments = language.comment_candidates(out, cc.min_chars, cfg.max_chars)
        c_labels, c_scores = predict(model(cfg.model), comments)
        extra["code_comments_judged"] = extra.get("code_comments_judged", 0) + len(rows)
        out = language.decide_comments(out, rows, comments, c_labels, c_scores, cc.keep, cc.min_score)
    return out


def check_recipe(recipe) -> None:
    """Refuses language codes the model cannot emit (`eng` for a model that says `en`), naming the field;
    called by `curate validate` and `curate run` before any engine starts. Every source's effective section
    is checked (a source's own `keep` or `model` under `sources[i].language`)."""
    errors = []
    for where, cfg, text in _sections(recipe):
        if not (text and cfg.identify) and cfg.code_comments is None:
            continue  # no language ID runs under this section: no model needed
        labels = model_labels(cfg.model)
        if text and cfg.identify:
            for i, code in enumerate(cfg.keep):
                if code not in labels:
                    close = difflib.get_close_matches(code, sorted(labels), n=1, cutoff=0.5)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    errors.append(f"{where}.keep[{i}]: {code!r} is not a label of {lid_model_path(cfg.model)}{hint}")
        for i, code in enumerate(cfg.code_comments.keep if cfg.code_comments else []):
            if code not in labels:
                errors.append(f"{where}.code_comments.keep[{i}]: {code!r} is not a label of {lid_model_path(cfg.model)}")
    errors += code_language_errors(recipe)
    if errors:
        raise RecipeError("\n".join(dict.fromkeys(errors)))


def _sections(recipe) -> Iterator[tuple[str, object, bool]]:
    """(field path, effective section, whether text documents use it) per source, the top level's once."""
    top_text = False
    for i, source in enumerate(recipe.sources):
        if "language" in source.model_fields_set and source.overrides("language"):
            yield f"sources[{i}].language", recipe.settings("language", source.name), source.kind == "text"
        else:
            top_text |= source.kind == "text"
    yield "language", recipe.language, top_text


def code_language_errors(recipe) -> list[str]:
    """`language.code_languages` names: a near miss of a known name ('Pyhton', 'Javascirpt') is an error,
    since it would silently drop a whole language; a name that Linguist, the extension map and every
    source's `extensions` all lack is allowed (a source's `lang` may use it) with a warning. Known: any
    spelling of a Linguist language or alias, case-insensitively."""
    sections = [("language", recipe.language.code_languages)]
    sections += [(f"sources[{i}].language", s.language.code_languages) for i, s in enumerate(recipe.sources)
                 if "code_languages" in s.overrides("language")]
    known = _known_code_languages(recipe)
    errors = []
    for prefix, chosen in sections:
        if chosen is None:
            continue
        named = [(f"{prefix}.code_languages[{i}]", n) for i, n in enumerate(chosen)] if isinstance(chosen, list) else \
            [(f"{prefix}.code_languages.names[{i}]", n) for i, n in enumerate(chosen.names)]
        errors += [err for where, name in named if (err := _name_error(where, name, known))]
    return errors


def _known_code_languages(recipe) -> dict[str, str]:
    from curate.rules.table import code_language_names

    known = {key: name for key, (name, _type) in linguist.languages().items()}
    known.update({name.lower(): name for name in known_languages() | code_language_names()})
    for source in recipe.sources:
        known.update({lang.lower(): lang for lang in (getattr(source, "extensions", None) or {}).values()})
    return known


def _name_error(where: str, name: str, known: dict[str, str]) -> str | None:
    import logging

    if name.lower() in known or linguist.canonical(name):
        return None
    close = difflib.get_close_matches(name.lower(), sorted(known), n=1, cutoff=0.75)
    if close:
        return f"{where}: {name!r} is not a known language; did you mean {known[close[0]]!r}?"
    logging.getLogger("curate").warning(
        "%s: %r is not a Linguist language: only documents whose source gives this `lang` are kept under it", where, name)
    return None


def model_labels(path: str) -> set[str]:
    return {lab[len(language.LABEL_PREFIX):] for lab in model(path).get_labels()}


def models_salt(recipe) -> str:
    """Every language-ID model the sources use (a source may name its own), by checksum: a replaced model
    at the same path redoes the stage."""
    paths = sorted({lid_model_path(recipe.settings("language", s.name).model) for s in recipe.sources})
    return ":".join(parts.file_salt(p) for p in paths)


def check(recipe, workdir, selected, explicit, dry_run) -> None:
    """Language codes the model cannot emit are refused before any work (exit 2)."""
    check_recipe(recipe)
