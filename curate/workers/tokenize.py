"""tokenize's worker side: load the tokenizer (once per worker process), validate it, encode parts.

`load_tokenizer` and `tokenizer_identity` are also what `curate validate` / `curate run` call before any
work starts, so a missing or corrupt tokenizer file, or one without an end-of-document token, exits 2.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from curate import parts, tasks
from curate.errors import RecipeError
from curate.schema import DROP_DETAIL, DROP_REASON, KIND
from curate.stages import tokenize as T


def is_hub_name(spec: str) -> bool:
    """`org/name` that is not a local file: only the hub can provide it."""
    path = Path(spec)
    return not (path.suffix == ".json" or path.exists() or "/" not in spec or spec.startswith((".", "/")))


def load_tokenizer(spec: str | None):
    """A `tokenizers.Tokenizer` from a tokenizer.json path, or from the hub when online."""
    from tokenizers import Tokenizer

    if not spec:
        raise RecipeError("tokenize.tokenizer: required to run tokenize (a tokenizer.json path or a hub name)")
    path = Path(spec)
    if path.is_file():
        try:
            return Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on a malformed file
            raise RecipeError(f"tokenize.tokenizer: {path}: not a valid tokenizer.json ({exc})") from None
    if not is_hub_name(spec):
        raise RecipeError(f"tokenize.tokenizer: {spec}: file not found (train one with `curate train-tokenizer`)")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise RecipeError(f"tokenize.tokenizer: {spec!r} is a hub name but HF_HUB_OFFLINE is set; "
                          "give the path of a local tokenizer.json")
    try:
        return Tokenizer.from_pretrained(spec)
    except Exception as exc:
        raise RecipeError(f"tokenize.tokenizer: {spec!r}: not a file, and the hub could not provide it "
                          f"(offline? give a local tokenizer.json path): {str(exc).splitlines()[0]}") from None


def special_ids(tokenizer, cfg) -> T.Special:
    """EOS (required), BOS (with add_bos) and the id dtype; RecipeError when a token is missing."""
    eos = T.find_special(tokenizer, cfg.eos_token, T.EOS_CANDIDATES)
    if eos is None:
        named = repr(cfg.eos_token) if cfg.eos_token else f"none of {', '.join(T.EOS_CANDIDATES)}"
        raise RecipeError(f"tokenize.eos_token: the tokenizer has {named} (name its end-of-document token)")
    bos = T.find_special(tokenizer, cfg.bos_token, T.BOS_CANDIDATES) if cfg.add_bos else None
    if cfg.add_bos and bos is None:
        raise RecipeError("tokenize.bos_token: add_bos is set but the tokenizer has no BOS token (name one)")
    size = max(tokenizer.get_vocab_size(with_added_tokens=True), max(tokenizer.get_vocab(True).values()) + 1)
    return T.Special(eos[1], bos[1] if bos else None, T.id_dtype(size))


def tokenizer_identity(cfg) -> dict:
    """What the manifests record: the tokenizer's sha256, vocabulary size, EOS/BOS ids and id dtype."""
    tok = load_tokenizer(cfg.tokenizer)
    special = special_ids(tok, cfg)
    path = Path(cfg.tokenizer)
    digest = parts.sha256_file(path) if path.is_file() else hashlib.sha256(tok.to_str().encode()).hexdigest()
    return {"tokenizer": cfg.tokenizer, "sha256": digest, "vocab_size": tok.get_vocab_size(with_added_tokens=True),
            "eos_id": special.eos_id, "bos_id": special.bos_id, "dtype": special.dtype}


def _loaded(cfg):
    def factory():
        tok = load_tokenizer(cfg.tokenizer)
        return tok, special_ids(tok, cfg)

    return tasks.cached(("tokenizer", cfg.tokenizer, cfg.eos_token, cfg.add_bos, cfg.bos_token), factory)


def set_parallelism(parallel: bool) -> None:
    """tokenizers' own (Rayon) thread pool splits a batch's documents over every core. It is on when this
    process is the only one encoding (LocalEngine) and off in Ray workers, which already run one task per
    CPU: a pool in each worker would put two threads on every core (measured in curate/bench/pack.py).
    tokenizers reads TOKENIZERS_PARALLELISM at every call; a user's explicit setting is left alone."""
    if not parallel:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def decide(task: tasks.PartTask, extra: dict) -> Iterator[pa.Table]:
    cfg = task.recipe.tokenize
    tok, special = _loaded(cfg)
    set_parallelism(task.options.get("parallel_encode", False))
    for kind in ("code", "text"):
        extra.setdefault(f"tokens_{kind}", 0)
    for batch in parts.iter_part(task.input_part, batch_size=cfg.batch_size):
        out = T.encode(tok, batch, special)
        for kind, n in zip(*_tokens_by_kind(out)):
            extra[f"tokens_{kind}"] = extra.get(f"tokens_{kind}", 0) + n
        n = out.num_rows
        yield out.append_column(DROP_REASON, pa.nulls(n, pa.string())).append_column(DROP_DETAIL, pa.nulls(n, pa.string()))


def _tokens_by_kind(table: pa.Table) -> tuple[list, list]:
    if table.num_rows == 0:
        return [], []
    g = pa.table({"k": table[KIND], "n": table[T.N_TOKENS]}).group_by("k").aggregate([("n", "sum")])
    return g["k"].to_pylist(), g["n_sum"].to_pylist()


def run(ctx, upstream: str):
    """tokenize's driver: the tokenizer's identity (checksum, EOS id, dtype) salts the config hash and
    reaches the manifest, which pack reads; then the row runner encodes each part."""
    from curate.pipeline import run_row_stage

    identity = tokenizer_identity(ctx.recipe.tokenize)
    # in-process, tokenizers' thread pool uses every core; Ray workers encode on one thread each (one task per CPU)
    options = {"parallel_encode": getattr(ctx.engine, "name", "") == "local"}
    return run_row_stage(ctx, upstream, "tokenize", prepare=lambda *_: (options, {"tokenizer": identity}),
                         salt=identity["sha256"])


def skip_reason(recipe) -> str | None:
    """tokenize and pack cannot run without a tokenizer: a default run leaves them out."""
    return None if recipe.tokenize.tokenizer else "the recipe names no tokenize.tokenizer"


def check(recipe, workdir, selected, explicit: bool, dry_run: bool) -> None:
    """A missing or corrupt tokenizer, or one without EOS, is refused before any work (exit 2); the
    tokenizer is required when tokenize is asked for by name (`--stages`)."""
    check_tokenizer(recipe, required=explicit, hub_only=dry_run)


def check_tokenizer(recipe, required: bool, hub_only: bool = False) -> None:
    if recipe.tokenize.tokenizer is None:
        if required:
            raise RecipeError("tokenize.tokenizer: required to run tokenize (a tokenizer.json path or a hub name)")
        return
    if hub_only and is_hub_name(recipe.tokenize.tokenizer):
        print(f"tokenize.tokenizer: {recipe.tokenize.tokenizer!r} is a hub name: not fetched by validate "
              "(it is loaded, and checked, when tokenize runs)")
        return
    tokenizer_identity(recipe.tokenize)
