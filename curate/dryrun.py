"""`curate run --dry-run`: what a run would do, without starting an engine or writing anything."""

from __future__ import annotations

from pathlib import Path

from curate.summary import human_bytes


def describe(recipe, workdir: Path, stages: list[str], plan: list | None) -> str:
    from curate import pipeline

    lines = [f"recipe {recipe.name!r} (hash {recipe.recipe_hash()[:12]}, seed {recipe.seed}), workdir {workdir}"]
    if plan is not None:
        lines.append(f"inputs: {len(plan)} partitions")
        for source in recipe.sources:
            mine = [p for p in plan if p.source == source.name]
            files = {f.uri: f for p in mine for f in p.files}  # a file read in several partitions counts once
            size = sum(f.size for f in files.values() if f.size > 0)
            lines.append(f"  {source.name:<24} {source.kind:<4} {source.format:<9} {len(files):>6} files "
                         f"{human_bytes(size):>10} {len(mine):>6} partitions")
        from curate.sources import compressed_to_measure

        if measured := compressed_to_measure(plan, recipe):
            lines.append(f"  (+ {len(measured)} compressed jsonl file(s) counted as one partition each here: the run "
                         "decompresses them once and splits any holding more than ingest.partition_bytes)")
    lines += source_settings(recipe, stages)
    lines.append("stages:")
    for stage in stages:
        upstream = pipeline.upstream_of(stage, stages, workdir)
        done = pipeline.read_manifest(workdir, stage)
        state = "complete in workdir (rerun only if its config or input changed)" if done else "to run"
        lines.append(f"  {stage:<13} input: {upstream or 'sources':<13} {state}")
    if "pack" in stages:
        p = recipe.pack
        side = ", ".join(f"{k} {v:g}" for k, v in p.mixture.items())
        budget = f"{p.total_tokens:,} tokens" if p.total_tokens else "as many tokens as the ratio allows"
        lines.append(f"pack plan: mixture {side} by tokens; {budget}; sequences of {p.seq_len}; "
                     f"~{p.shard_tokens:,} tokens per shard")
        for source in recipe.sources:
            epochs = p.max_epochs.get(source.name, p.default_max_epochs)
            weight = p.source_weights.get(source.name, 1.0)
            lines.append(f"  {source.name:<24} {source.kind:<4} weight {weight:g}, at most {epochs:g} epochs")
        if p.lang_weights:
            lines.append("  language weights: " + ", ".join(f"{k} {v:g}" for k, v in p.lang_weights.items()))
        lines.append("  (token counts, and so the exact plan, are known after tokenize)")
    return "\n".join(lines)


def source_settings(recipe, stages: list[str]) -> list[str]:
    """Per source, the effective settings of each selected row stage that differ from the defaults, with
    the quality profile and language `identify` always shown."""
    from curate.recipe import ROW_SECTIONS

    lines = []
    for stage in (s for s in stages if s in ROW_SECTIONS):
        lines.append(f"{stage} settings per source (what differs from the defaults):")
        for source, shown in recipe.effective_settings(stage).items():
            text = ", ".join(f"{k}={_short(v)}" for k, v in shown.items()) or "defaults"
            lines.append(f"  {source:<24} {text}")
    return lines


def _short(value) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."
