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
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from curate.errors import RecipeError, did_you_mean
from curate.stagespec import declarations

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class NearDedupConfig(Model):
    """MinHash LSH near-duplicate removal (curate/stages/near_dedup.py)."""

    ngram: int = Field(5, ge=1, description="shingle width in word tokens (BigCode/StarCoder: 5)")
    num_perm: int = Field(256, ge=2, le=4096, description="MinHash permutations (StarCoder: 256)")
    threshold: float = Field(0.7, gt=0, le=1, description="Jaccard at or above which two documents are duplicates "
                             "(StarCoder: 0.7; The Stack v1 paper: 0.85)")
    candidate_threshold: float | None = Field(None, gt=0, le=1, description="the Jaccard the LSH bands are tuned "
                                              "for; default threshold - 0.2 (at least 0.05): verification removes "
                                              "the extra candidates, the lower tuning recovers missed pairs")
    bands: int | None = Field(None, ge=1, description="LSH bands; default: datasketch's optimal (b, r) for "
                              "candidate_threshold (equal false-positive/negative weights)")
    rows: int | None = Field(None, ge=1, description="rows per band; set together with bands")
    verify: Literal["exact", "signature", "none"] = Field("exact", description="exact: a candidate pair is an "
                                                          "edge if the exact Jaccard of its shingle sets reaches "
                                                          "threshold; signature: if the MinHash agreement does; "
                                                          "none: every candidate pair is an edge")
    seed: int = Field(1, ge=0, description="permutation seed (datasketch's default, 1)")
    audit_pairs: int = Field(1000, ge=0, description="candidate pairs sampled for the manifest's exact-Jaccard audit")
    max_bucket_docs: int = Field(100, ge=2, description="LSH buckets with more documents pair only with their "
                                 "first document (bounds the pairs of boilerplate buckets)")
    local_components_max_edges: int = Field(2_000_000, ge=0, description="up to this many verified edges, "
                                            "components run in one task; above, as distributed star rounds")
    against: str | list[str] | None = Field(None, description="WORKDIR of an earlier run (or a list of them): new "
                                            "documents that near-duplicate one it kept are dropped "
                                            "(near_dedup.indexed_duplicate); its documents are never touched, and the "
                                            "runs it ran against are followed. Needs the same ngram, num_perm, seed, "
                                            "bands and rows")

    @field_validator("against")
    @classmethod
    def _against_not_empty(cls, v):
        if isinstance(v, list) and not v:
            raise ValueError("an empty list: name an earlier run's WORKDIR, or leave `against` out")
        return v

    @model_validator(mode="after")
    def _bands_rows(self) -> NearDedupConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("near_dedup.bands: bands and rows are set together (or both left to the optimiser)")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"near_dedup.bands: bands * rows = {self.bands * self.rows} > num_perm = {self.num_perm}")
        if self.candidate_threshold is not None and self.candidate_threshold > self.threshold:
            raise ValueError("near_dedup.candidate_threshold: must be <= threshold")
        return self


class CodeCommentsConfig(Model):
    """Optional natural-language ID of code documents' comments (never of the code itself)."""

    keep: list[str] = Field(["en"], min_length=1, description="comment languages kept (model labels)")
    min_score: float = Field(0.5, ge=0, le=1, description="a comment language below this score is not trusted: "
                             "the document is kept")
    min_chars: int = Field(200, ge=1, description="documents with fewer comment characters are not judged (kept)")


LinguistType = Literal["programming", "markup", "data", "prose"]


class CodeLanguageSelection(Model):
    """Code languages chosen by Linguist type, plus names: `{types: [programming], names: [JSON]}`."""

    types: list[LinguistType] = Field([], description="every Linguist language of these types")
    names: list[str] = Field([], description="more languages by name (Linguist's, case-insensitive)")

    @model_validator(mode="after")
    def _not_empty(self) -> CodeLanguageSelection:
        if not self.types and not self.names:
            raise ValueError("language.code_languages: name at least one type or language (an empty selection "
                             "would drop every code document)")
        return self


class LanguageConfig(Model):
    model: str | None = Field(None, description="fastText language-ID model; default: lid.176.ftz from `curate assets` "
                              "(CURATE_HOME/assets, found from any folder); or e.g. the larger lid.176.bin; its label "
                              "set is what `keep` is checked against")
    keep: list[str] = Field(["en"], min_length=1, description="natural languages kept (model labels, e.g. en, de)")
    min_score: float = Field(0.65, ge=0, le=1, description="lowest top-label probability kept (RefinedWeb, Sec. 3.1: 0.65)")
    code_languages: list[str] | CodeLanguageSelection | None = Field(
        None, description="code languages kept: a list of names as in The Stack's `lang` column (Linguist's; "
        "case-insensitive, aliases such as `viml` accepted), or `{types: [...], names: [...]}`; default: every "
        "Linguist language of type programming or markup, plus JSON, YAML, TOML, XML, INI, SQL, Protocol "
        "Buffer, GraphQL, Markdown, reStructuredText, AsciiDoc (curate.sources.linguist.DEFAULT_CODE_LANGUAGES)")
    max_chars: int = Field(10_000, ge=1, description="text documents are identified on their first max_chars characters")
    code_comments: CodeCommentsConfig | None = Field(
        None, description="when set, code whose comments are confidently in a language outside "
        "code_comments.keep is dropped (language.comment_not_kept); default: off")
    identify: bool = Field(True, description="false: trust the source's `lang` / `lang_field` and run no language ID "
                           "on its text (lang_score null); for sources that are in one language by construction")
    mask_markup: bool = Field(True, description="identify the prose only: code blocks, LaTeX commands and math, "
                              "wikitext templates and tables, HTML tags and URLs are blanked in the string given to "
                              "the model (the kept text is unchanged)")

    @field_validator("code_languages", mode="before")
    @classmethod
    def _code_languages_shape(cls, value: Any) -> Any:
        """One message naming the field, instead of one per union branch."""
        if isinstance(value, dict):
            try:
                return CodeLanguageSelection.model_validate(value)
            except ValidationError as exc:
                err = exc.errors()[0]
                where = field_path(["language", "code_languages", *err["loc"]])
                msg = err["msg"].removeprefix("Value error, ")
                if err["type"] == "extra_forbidden":
                    close = difflib.get_close_matches(str(err["loc"][-1]), list(CodeLanguageSelection.model_fields), n=1)
                    msg = "unknown key" + (f"; did you mean {close[0]!r}?" if close else " (allowed: names, types)")
                raise ValueError(msg if msg.startswith("language.") else f"{where}: {msg}") from None
        if isinstance(value, list):
            for k, name in enumerate(value):
                if not isinstance(name, str):
                    raise ValueError(f"language.code_languages[{k}]: must be a language name (a string)")
        elif value is not None and not isinstance(value, CodeLanguageSelection):
            raise ValueError("language.code_languages: a list of language names, or {types: [...], names: [...]}")
        return value


class QualityClassifierConfig(Model):
    model: str = Field(description="a fastText model trained by `curate train-quality`")
    min_score: float = Field(0.5, ge=0, le=1, description="documents with P(high quality) below this are dropped")
    applies_to: Literal["text", "code", "all"] = Field("text", description="which documents the classifier scores")
    max_chars: int = Field(10_000, ge=1, description="documents are scored on their first max_chars characters")


class QualityProfileConfig(Model):
    """A recipe's own profile: another profile's rules, with rules added or removed and thresholds changed."""

    base: str = Field(description="the profile this one starts from (built-in or another of the recipe's)")
    enable: list[str] = Field([], description="rule ids added to the base's rules")
    disable: list[str] = Field([], description="rule ids removed from the base's rules")
    thresholds: dict[str, float] = Field({}, description="rule id -> threshold within this profile")


class QualityConfig(Model):
    profile: str | None = Field(None, description="the rule profile (curate/rules/quality_profiles.csv: web, curated, "
                                "code, code-strict, none; or one of `profiles`); default: web for text, code for code")
    profiles: dict[str, QualityProfileConfig] = Field({}, description="the recipe's own profiles, by name")
    thresholds: dict[str, float] = Field(
        {}, description="rule id -> threshold, overriding the profile's (and the published default of "
        "curate/rules/quality_rules.csv)")
    disable: list[str] = Field([], description="rule ids not applied (their signals are still recorded)")
    classifier: QualityClassifierConfig | None = Field(None, description="optional fastText quality classifier")

    @model_validator(mode="after")
    def _known_rules(self) -> QualityConfig:
        from curate.rules.profiles import profile_errors
        from curate.rules.table import rule_ids

        named = [(f"quality.thresholds.{k}", k) for k in self.thresholds]
        named += [(f"quality.disable[{i}]", k) for i, k in enumerate(self.disable)]
        for name, p in self.profiles.items():
            named += [(f"quality.profiles.{name}.enable[{i}]", k) for i, k in enumerate(p.enable)]
            named += [(f"quality.profiles.{name}.disable[{i}]", k) for i, k in enumerate(p.disable)]
            named += [(f"quality.profiles.{name}.thresholds.{k}", k) for k in p.thresholds]
        for where, rid in named:
            if rid not in rule_ids():
                raise ValueError(f"{where}: unknown rule {rid!r}{did_you_mean(rid, rule_ids())}")
        errors = profile_errors(self.profile, self.profiles)
        if errors:
            raise ValueError(errors[0])
        return self


class BenchmarkConfig(Model):
    """One benchmark whose items must not be in the corpus: a jsonl or parquet file of one item per row."""

    name: str = Field(pattern=NAME_PATTERN, description="named in drop details and reports, e.g. humaneval")
    format: Literal["jsonl", "parquet"] = Field("jsonl", description="jsonl (compression from the extension: "
                                                ".gz, .zst) or parquet")
    paths: list[str] = Field(min_length=1, description="files or globs")
    fields: list[str] = Field(min_length=1, description="the fields whose text an item is (joined by a newline), "
                              "e.g. [prompt, canonical_solution]")
    id_field: str | None = Field(None, description="the field that names an item; default: its row number")


class DecontaminateConfig(Model):
    """Benchmark n-gram overlap (curate/stages/decontaminate.py)."""

    benchmarks: list[BenchmarkConfig] | None = Field(
        None, description="default: HumanEval (prompt and canonical_solution) from the asset `curate assets` "
        "fetches; [] : none (the stage keeps everything)")
    ngram: int = Field(13, ge=1, description="word n-gram length (GPT-3, Llama: 13)")
    min_matches: int = Field(1, ge=1, description="n-grams a document must share with one benchmark item to be dropped")

    @field_validator("benchmarks")
    @classmethod
    def _unique_names(cls, value):
        names = [b.name for b in value or []]
        if len(set(names)) != len(names):
            raise ValueError(f"benchmark names repeat: {names}")
        return value


class RedactConfig(Model):
    """E-mail, IP address and secret redaction (curate/stages/redact.py)."""

    types: list[Literal["email", "ip_address", "secret"]] = Field(
        ["email", "ip_address", "secret"], description="what is detected and replaced; [] turns redaction off "
        "(e.g. for one source)")
    replacement: Literal["placeholder", "synthetic"] = Field(
        "placeholder", description="placeholder: <EMAIL>, <IP_ADDRESS>, <SECRET>; synthetic: a fake of the same "
        "shape (example.com address, documentation-range IP, key with the same prefix), seeded, so code still parses")
    allow: list[str] = Field([], description="exact values kept as they are (a project's public contact address)")


class TokenizeConfig(Model):
    tokenizer: str | None = Field(
        None, description="a tokenizer.json path, or a Hugging Face hub name (online only); required to run tokenize"
    )
    eos_token: str | None = Field(
        None, description="end-of-document token; default: the first special token among </s>, <|endoftext|>, "
        "<|end_of_text|>, <eos>, <EOT>"
    )
    add_bos: bool = Field(False, description="also prepend a beginning-of-document token")
    bos_token: str | None = Field(
        None, description="with add_bos; default: the first special token among <s>, <|begin_of_text|>, <|startoftext|>, <bos>"
    )
    batch_size: int = Field(1000, ge=1, description="documents per encode_batch call")


class PackConfig(Model):
    mixture: dict[Literal["code", "text"], float] = Field(
        {"code": 10.0, "text": 1.0}, description="token ratio between the sides (Lemur: 10:1 code:text)"
    )
    source_weights: dict[str, float] = Field(
        {}, description="sampling weight per source within its side (default 1: natural proportions)"
    )
    lang_weights: dict[str, float] = Field({}, description="sampling weight per language within its side (default 1)")
    max_epochs: dict[str, float] = Field({}, description="per source: most times its tokens may be repeated")
    default_max_epochs: float = Field(1.0, gt=0, description="max_epochs of a source not named in max_epochs")
    total_tokens: int | None = Field(None, ge=1, description="token budget of the output (default: as much as the ratio allows)")
    seq_len: int = Field(4096, ge=2, description="tokens per packed sequence (Lemur: 4096)")
    last: Literal["pad", "drop"] = Field("pad", description="the last partial sequence: padded with EOS, or dropped")
    shard_tokens: int = Field(268_435_456, ge=1, description="target tokens per output shard")
    ratio_tolerance: float = Field(0.01, gt=0, lt=1, description="largest relative ratio error allowed in any shard")

    @field_validator("mixture")
    @classmethod
    def _mixture(cls, value: dict) -> dict:
        if any(v < 0 for v in value.values()) or sum(value.values()) <= 0:
            raise ValueError("pack.mixture: weights must be >= 0 with at least one > 0")
        return value

    @field_validator("source_weights", "lang_weights", "max_epochs")
    @classmethod
    def _non_negative(cls, value: dict) -> dict:
        if any(v < 0 for v in value.values()):
            raise ValueError("pack: weights and max_epochs must be >= 0")
        return value


# ---------------------------------------------------------------------------------------------- overrides
def _override_model(config: type[Model], name: str) -> type[Model]:
    """`config`'s keys, each optional and unset by default: a source's partial section. Constraints stay
    (a source's `min_score: 2` is refused at its own path); cross-key rules are checked on the merged section."""
    fields = {name: (f.annotation | None, FieldInfo.merge_field_infos(f, default=None))
              for name, f in config.model_fields.items()}
    return create_model(name, __base__=Model, __module__=__name__, **fields)


IngestOverride = _override_model(IngestConfig, "IngestOverride")
LanguageOverride = _override_model(LanguageConfig, "LanguageOverride")
QualityOverride = _override_model(QualityConfig, "QualityOverride")
DecontaminateOverride = _override_model(DecontaminateConfig, "DecontaminateOverride")
RedactOverride = _override_model(RedactConfig, "RedactOverride")


# ---------------------------------------------------------------------------------------------- sources
#: Row stages read their settings per source: the top-level section, overridden key by key by the same
#: section under the source. Global stages compare or mix documents across sources and take no such section.
#: Both read from the stages' declarations (`per_source`); each names a field of the Recipe and of _SourceBase.
ROW_SECTIONS = tuple(d.key for d in declarations() if d.per_source)
GLOBAL_SECTIONS = tuple(d.key for d in declarations() if not d.per_source)
_WHY_GLOBAL = {
    "exact_dedup": "it compares documents across sources",
    "near_dedup": "it compares documents across sources",
    "tokenize": "every source must be tokenized alike for one training run",
    "pack": "it mixes documents across sources; per source, use pack.source_weights and pack.max_epochs",
}


class _SourceBase(Model):
    name: str = Field(pattern=NAME_PATTERN, description="unique source name; prefix of every document id")
    kind: Literal["code", "text"]
    paths: list[str] = Field(min_length=1, description="files, globs (`**` recurses) or URIs")
    lang: str | None = Field(None, description="language given to every document that has none")
    # per-source overrides of the row stages: any subset of the top-level section's keys
    ingest: IngestOverride | None = Field(None, description="this source's ingest keys (any subset of the top level's)")
    language: LanguageOverride | None = Field(None, description="this source's language keys")
    quality: QualityOverride | None = Field(None, description="this source's quality keys (not `profiles`)")
    decontaminate: DecontaminateOverride | None = Field(None, description="this source's decontaminate keys")
    redact: RedactOverride | None = Field(None, description="this source's redact keys (`types: []`: off)")
    exact_dedup: Any = Field(None, exclude=True)
    near_dedup: Any = Field(None, exclude=True)
    tokenize: Any = Field(None, exclude=True)
    pack: Any = Field(None, exclude=True)

    @field_validator(*GLOBAL_SECTIONS)
    @classmethod
    def _no_global_section(cls, value: Any, info) -> Any:
        if value is not None:
            raise ValueError(f"a global stage takes no per-source section ({_WHY_GLOBAL[info.field_name]}); "
                             f"set {info.field_name} at the top level")
        return value

    def overrides(self, stage: str) -> dict:
        """The keys this source sets for a row stage (an empty dict when it sets none)."""
        section = getattr(self, stage)
        return {} if section is None else section.model_dump(exclude_unset=True)


class _RecordSource(_SourceBase):
    """Sources of records with named fields (jsonl, parquet, arrow)."""

    text_field: str = "text"
    id_field: str | None = None
    lang_field: str | None = None
    path_field: str | None = None
    meta_fields: list[str] = []


class JsonlSource(_RecordSource):
    """JSON lines, optionally `.gz` / `.zst` compressed (inferred from the file name)."""

    format: Literal["jsonl"]


class TableSource(_RecordSource):
    """Parquet or Arrow IPC (file or stream) tables, e.g. The Stack's parquet layout."""

    format: Literal["parquet", "arrow"]


class CodeTreeSource(_SourceBase):
    """A directory of source files; the language is GitHub Linguist's, by go-enry (curate/sources/linguist.py)."""

    format: Literal["code-tree"]
    extensions: dict[str, str] | None = Field(
        None, description="extension -> language; wins over go-enry, e.g. {'.pyx': 'Cython', '.h': 'C'}"
    )
    include_unknown: bool = Field(
        False, description="also read files that go-enry cannot classify by name, shebang or modeline "
        "(`lang` null; the language stage drops them as language.unknown_code_language)"
    )


Source = Annotated[JsonlSource | TableSource | CodeTreeSource, Field(discriminator="format")]


# ---------------------------------------------------------------------------------------------- recipe
class Recipe(Model):
    _settings: dict = PrivateAttr(default_factory=dict)  # (stage, source) -> effective section

    name: str = Field(pattern=NAME_PATTERN)
    workdir: str | None = Field(None, description="default: work/<name>; `--workdir` overrides")
    seed: int = Field(0, ge=0)
    sources: list[Source] = Field(min_length=1)
    ingest: IngestConfig = IngestConfig()
    exact_dedup: ExactDedupConfig = ExactDedupConfig()
    near_dedup: NearDedupConfig = NearDedupConfig()
    language: LanguageConfig = LanguageConfig()
    quality: QualityConfig = QualityConfig()
    decontaminate: DecontaminateConfig = DecontaminateConfig()
    redact: RedactConfig = RedactConfig()
    tokenize: TokenizeConfig = TokenizeConfig()
    pack: PackConfig = PackConfig()

    @field_validator("ingest", "exact_dedup", "near_dedup", "language", "quality", "decontaminate", "redact",
                     "tokenize", "pack", mode="before")
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

    @model_validator(mode="after")
    def _pack_sources(self) -> Recipe:
        names = {s.name for s in self.sources}
        for key in ("source_weights", "max_epochs"):
            for name in getattr(self.pack, key):
                if name not in names:
                    raise ValueError(f"pack.{key}.{name}: no source named {name!r}")
        return self

    @model_validator(mode="after")
    def _source_settings(self) -> Recipe:
        """Each source's effective row-stage sections (top level overridden by the source's keys) are valid as
        a whole, and computed once: `settings(stage, source)` returns them."""
        for i, source in enumerate(self.sources):
            for stage in ROW_SECTIONS:
                self._settings[(stage, source.name)] = self._merged(stage, source, i)
            self._check_identify(source, i)
            self._check_profile(source, i)
        return self

    def _merged(self, stage: str, source, i: int) -> Model:
        over = source.overrides(stage)
        top = self.section(stage)
        if not over:
            return top
        if stage == "quality" and "profiles" in over:
            raise ValueError(f"sources[{i}].quality.profiles: profiles are defined at the top level "
                             "(quality.profiles); a source picks one with `profile`")
        try:
            return type(top).model_validate({**top.model_dump(), **over})
        except ValidationError as exc:
            err = exc.errors()[0]
            msg = err["msg"].removeprefix("Value error, ")
            if msg.startswith(f"{stage}.") and ": " in msg:  # a section validator named the field itself
                raise ValueError(f"sources[{i}].{msg}") from None
            raise ValueError(f"sources[{i}].{stage}.{field_path(list(err['loc']))}: {msg}") from None

    def _check_identify(self, source, i: int) -> None:
        if source.kind != "text" or self.settings("language", source.name).identify:
            return
        if source.lang is None and getattr(source, "lang_field", None) is None:
            where = (f"sources[{i}].language.identify" if "identify" in source.overrides("language")
                     else f"language.identify (applies to sources[{i}] {source.name!r})")
            raise ValueError(f"{where}: false needs the source's language: set sources[{i}].lang (e.g. en) or "
                             f"sources[{i}].lang_field")

    def _check_profile(self, source, i: int) -> None:
        from curate.rules.profiles import profile_kinds

        cfg = self.settings("quality", source.name)
        name = self.quality_profile(source.name)
        if name != "none" and source.kind not in profile_kinds(name, cfg.profiles):
            where = (f"sources[{i}].quality.profile" if "profile" in source.overrides("quality")
                     else f"quality.profile (applies to sources[{i}] {source.name!r})")
            raise ValueError(f"{where}: profile {name!r} has no rule for {source.kind} documents; pick a "
                             f"{source.kind} profile (or none) for this source")

    def source(self, name: str) -> JsonlSource | TableSource | CodeTreeSource:
        return next(s for s in self.sources if s.name == name)

    def settings(self, stage: str, source: str | None) -> Model:
        """A row stage's effective section for one source: the source's keys, else the top level's, else
        the defaults (None: the top level's section)."""
        return self.section(stage) if source is None else self._settings[(stage, source)]

    def quality_profile(self, source: str, kind: str | None = None) -> str:
        """The quality profile a source's documents get: its own, else the top level's, else by kind."""
        from curate.rules.profiles import DEFAULT_PROFILE

        return self.settings("quality", source).profile or DEFAULT_PROFILE[kind or self.source(source).kind]

    def effective_settings(self, stage: str) -> dict[str, dict]:
        """Per source, the keys of a row stage's effective section that differ from the defaults (plus the
        quality profile and language `identify`, always shown): what `--dry-run` and the stats report print."""
        defaults = type(self.section(stage))().model_dump(mode="json")
        out = {}
        for source in self.sources:
            eff = self.settings(stage, source.name).model_dump(mode="json")
            shown = {k: v for k, v in eff.items() if v != defaults.get(k) and k != "profiles"}
            if stage == "quality":
                shown["profile"] = self.quality_profile(source.name)
            if stage == "language" and source.kind == "text":
                shown["identify"] = eff["identify"]
            out[source.name] = shown
        return out

    @property
    def default_workdir(self) -> str:
        return self.workdir or f"work/{self.name}"

    def section(self, stage: str) -> Model:
        return getattr(self, stage)

    def recipe_hash(self) -> str:
        return sha256_json(self.model_dump(mode="json"))

    def config_hash(self, stage: str) -> str:
        """Hash of everything that changes a stage's output: its section, the seed, the sources with their
        own keys for this stage (another row stage's per-source keys do not redo this one)."""
        from curate import __version__

        others = set(ROW_SECTIONS) - {stage}
        payload = {
            "stage": stage,
            "config": self.section(stage).model_dump(mode="json") if hasattr(self, stage) else None,
            "seed": self.seed,
            "sources": [s.model_dump(mode="json", exclude=others, exclude_none=True) for s in self.sources],
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
    if msg.startswith(("sources[", "tokenize.", "pack.", "language.", "quality.", "near_dedup.", "decontaminate.")) \
            and ": " in msg:
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
