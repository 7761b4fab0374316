"""The recipe: one YAML file that says what to read and how every stage behaves.

`load_recipe(path)` is the only reader of YAML in the project (safe loading only; duplicate keys are
refused). Every section and parameter has a default, so a stage section may be absent or empty.
Validation errors name the file and the field path, one line each, e.g.
`recipes/x.yaml: sources[1].format: Input should be 'jsonl', 'parquet', 'arrow' or 'code-tree'`.
Relative paths in a recipe (source paths, workdir, model files) are relative to the current directory.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from curate.errors import RecipeError

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------------- sources
class _SourceBase(Model):
    name: str = Field(pattern=NAME_PATTERN, description="unique source name; prefix of every document id")
    kind: Literal["code", "text"]
    paths: list[str] = Field(min_length=1, description="files, globs (`**` recurses) or URIs")
    lang: str | None = Field(None, description="language given to every document that has none")


class JsonlSource(_SourceBase):
    """JSON lines, optionally `.gz` / `.zst` compressed (inferred from the file name)."""

    format: Literal["jsonl"]
    text_field: str = "text"
    id_field: str | None = None
    lang_field: str | None = None
    path_field: str | None = None
    meta_fields: list[str] = []


class TableSource(_SourceBase):
    """Parquet or Arrow IPC (file or stream) tables, e.g. The Stack's parquet layout."""

    format: Literal["parquet", "arrow"]
    text_field: str = "text"
    id_field: str | None = None
    lang_field: str | None = None
    path_field: str | None = None
    meta_fields: list[str] = []


class CodeTreeSource(_SourceBase):
    """A directory of source files; the language comes from the extension map."""

    format: Literal["code-tree"]
    extensions: dict[str, str] | None = Field(
        None, description="extension -> language overrides/additions, e.g. {'.pyx': 'Cython'}"
    )
    include_unknown: bool = Field(
        False, description="also read files whose extension is not in the map (lang null)"
    )


Source = Annotated[JsonlSource | TableSource | CodeTreeSource, Field(discriminator="format")]


# ---------------------------------------------------------------------------------------------- stages
class IngestConfig(Model):
    max_bytes: int = Field(10_485_760, ge=1, description="documents larger than this (UTF-8 bytes) are dropped")
    partition_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="target input bytes per partition (the unit of work and resume)"
    )


class ExactDedupConfig(Model):
    normalize: Literal["exact", "whitespace"] = Field(
        "exact",
        description="exact: hash the exact bytes; whitespace: collapse whitespace runs and strip before hashing",
    )


# ---------------------------------------------------------------------------------------------- recipe
class Recipe(Model):
    name: str = Field(pattern=NAME_PATTERN)
    workdir: str | None = Field(None, description="default: work/<name>; `--workdir` overrides")
    seed: int = Field(0, ge=0)
    sources: list[Source] = Field(min_length=1)
    ingest: IngestConfig = IngestConfig()
    exact_dedup: ExactDedupConfig = ExactDedupConfig()

    @field_validator("ingest", "exact_dedup", mode="before")
    @classmethod
    def _empty_section(cls, value: Any) -> Any:
        return {} if value is None else value  # `ingest:` with nothing under it means all defaults

    @model_validator(mode="after")
    def _unique_source_names(self) -> Recipe:
        seen: set[str] = set()
        for i, source in enumerate(self.sources):
            if source.name in seen:
                raise ValueError(f"sources[{i}].name: duplicate source name {source.name!r}")
            seen.add(source.name)
        return self

    def source(self, name: str) -> JsonlSource | TableSource | CodeTreeSource:
        return next(s for s in self.sources if s.name == name)

    @property
    def default_workdir(self) -> str:
        return self.workdir or f"work/{self.name}"

    def section(self, stage: str) -> Model:
        return getattr(self, stage)

    def recipe_hash(self) -> str:
        return sha256_json(self.model_dump(mode="json"))

    def config_hash(self, stage: str) -> str:
        """Hash of everything that changes a stage's output: its section, the seed, the sources."""
        from curate import __version__

        payload = {
            "stage": stage,
            "config": self.section(stage).model_dump(mode="json") if hasattr(self, stage) else None,
            "seed": self.seed,
            "sources": [s.model_dump(mode="json") for s in self.sources],
            "curate": __version__,
        }
        return sha256_json(payload)


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------- loading
class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML loader that refuses duplicate keys instead of silently keeping the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    mapping: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_recipe(path: str | Path) -> Recipe:
    """Reads and validates a recipe; raises RecipeError naming the file and field paths."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (safe loader)
    except FileNotFoundError:
        raise RecipeError(f"{path}: recipe file not found") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a YAML mapping with at least 'name' and 'sources'")
    return parse_recipe(raw, origin=str(path))


def parse_recipe(raw: dict, origin: str = "<recipe>") -> Recipe:
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{origin}: {format_error(err, raw)}" for err in exc.errors()]
        raise RecipeError("\n".join(lines)) from None


_FORMAT_TAGS = {"jsonl", "parquet", "arrow", "code-tree", "JsonlSource", "TableSource", "CodeTreeSource"}


def format_error(err: dict, raw: dict) -> str:
    loc = [p for i, p in enumerate(err["loc"]) if not (i == 2 and err["loc"][0] == "sources" and p in _FORMAT_TAGS)]
    path = field_path(loc)
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key" + _did_you_mean(loc, raw)
    elif err["type"] == "union_tag_invalid":
        msg = "must be one of 'jsonl', 'parquet', 'arrow', 'code-tree'"
        path = field_path([*loc, "format"]) if loc and loc[-1] != "format" else path
    elif err["type"] == "union_tag_not_found":
        path, msg = field_path([*loc, "format"]), "required: one of 'jsonl', 'parquet', 'arrow', 'code-tree'"
    if msg.startswith(("sources[", "tokenize.", "pack.", "language.", "quality.", "near_dedup.")) and ": " in msg:
        return msg  # a cross-field validator already named the exact field
    return f"{path or '<top level>'}: {msg}"


def field_path(loc: list) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _did_you_mean(loc: list, raw: dict) -> str:
    allowed = _allowed_keys(loc[:-1], raw)
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return hint + (f" (allowed: {', '.join(sorted(allowed))})" if allowed and not close else "")


def _allowed_keys(parent: list, raw: dict) -> list[str]:
    model: Any = Recipe
    node: Any = raw
    for part in parent:
        node = node[part] if isinstance(node, (dict, list)) else None
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) else None
        if field is None:
            return []
        model = _model_of(field.annotation, node if isinstance(node, dict) else None)
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _model_of(annotation: Any, node: dict | None) -> Any:
    import typing

    args = typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in args:  # list[Source], Optional[...], Annotated[Union[...], ...]
        found = _model_of(arg, node)
        if found is not None and (node is None or "format" not in found.model_fields or _format_matches(found, node)):
            return found
    return None


def _format_matches(model: type[BaseModel], node: dict) -> bool:
    import typing

    return node.get("format") in typing.get_args(model.model_fields["format"].annotation)
