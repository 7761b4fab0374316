"""Hugging Face `datasets` output: the directory `PREFIX/` that `datasets.load_from_disk` opens.

Each shard becomes one Arrow file in the work folder (written atomically, the resume unit); at the end
they are opened memory-mapped, concatenated and saved with `save_to_disk`, and `PREFIX/README.md`, the
dataset card, is written from the pack manifest (recipe, tokenizer, mixture plan, totals) and, for a work
directory, the stage manifests (documents and bytes in and kept per stage). Columns:
    unit sequence   index, input_ids (seq_len, padding included), doc_ids, doc_lengths, doc_starts,
                    n_pad_tokens (+ texts with --text)
    unit document   id, n_tokens, input_ids (+ text with --text)
`datasets` is an optional dependency (the `test` extra); only this format needs it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa

from curate import parts
from curate.export.output import ExportUsageError, file_record
from curate.export.text import Decoder
from curate.export.units import Entries
from curate.shard_reader import ShardSet


def _lists(offsets: np.ndarray, values) -> pa.Array:
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values))


def entries_table(entries: Entries, decoder: Decoder | None) -> pa.Table:
    if entries.rows is None:
        columns = {"id": pa.array(entries.doc_ids.tolist(), pa.string()), "n_tokens": pa.array(entries.lengths()),
                   "input_ids": pa.LargeListArray.from_arrays(pa.array(entries.offsets), pa.array(entries.tokens))}
        if decoder:
            columns["text"] = pa.array(decoder.documents(entries), pa.string())
        return pa.table(columns)
    rows = entries.rows
    seq_len = rows.input_ids.shape[1]
    columns = {"index": pa.array(entries.index),
               "input_ids": pa.FixedSizeListArray.from_arrays(pa.array(rows.input_ids.reshape(-1)), seq_len),
               "doc_ids": _lists(rows.offsets, pa.array(rows.doc_ids.tolist(), pa.string())),
               "doc_lengths": _lists(rows.offsets, rows.doc_lengths), "doc_starts": _lists(rows.offsets, rows.doc_starts),
               "n_pad_tokens": pa.array(rows.n_pad)}
    if decoder:
        columns["texts"] = _lists(rows.offsets, pa.array(decoder.pieces(entries), pa.string()))
    return pa.table(columns)


def stage_funnel(shards: ShardSet) -> list[dict]:
    """Documents and bytes in and kept per stage, from the stage manifests beside `shards/` (a work
    directory; a published destination has none)."""
    from curate.schema import STAGES

    if shards.prefix != "shards/":
        return []
    funnel = []
    for stage in STAGES:
        data = shards.store.read_bytes(f"{stage}/_manifest.json")
        totals = json.loads(data).get("totals", {}) if data else {}
        if "docs_in" in totals:
            funnel.append({"stage": stage, **{k: totals.get(k) for k in ("docs_in", "docs_kept", "bytes_in", "bytes_kept")}})
    return funnel


def dataset_card(manifest: dict, unit: str, entries: int, tokens: int, funnel: list[dict] = ()) -> str:
    recipe, tok, totals = manifest.get("recipe", {}), manifest.get("tokenizer", {}), manifest.get("totals", {})
    plan = manifest.get("plan", {})
    lines = ["---", "tags: [curate, pretraining, tokenized]", "---", "",
             f"# {recipe.get('name', 'curate')}: packed pretraining data", "",
             f"Exported by `curate export --format hf --unit {unit}`: {entries} entries, {tokens} tokens.", "",
             "## Run", "",
             f"- recipe `{recipe.get('name')}`, hash `{recipe.get('hash')}`, seed {recipe.get('seed')}",
             f"- tokenizer `{tok.get('tokenizer')}` (sha256 `{tok.get('sha256')}`), vocabulary {tok.get('vocab_size')}, "
             f"ids {tok.get('dtype')}, EOS {tok.get('eos_id')}",
             f"- {totals.get('sequences')} sequences of {manifest.get('seq_len')} tokens in {len(manifest.get('shards', []))} "
             f"shards: {totals.get('code_tokens')} code, {totals.get('text_tokens')} text, {totals.get('pad_tokens')} "
             "padding tokens", ""]
    if plan.get("mixture"):
        ratio = plan.get("ratio_planned")
        planned = f"; planned code:text {ratio:.4f}" if ratio else ""
        lines += ["## Mixture", "", f"- asked: {plan['mixture']}{planned}", ""]
    groups = plan.get("groups") or []
    if groups:
        lines += ["| side | source | lang | tokens available | tokens planned | epochs |", "|---|---|---|---|---|---|"]
        lines += [f"| {g['side']} | {g['source']} | {g.get('lang') or '-'} | {g['tokens_available']} | "
                  f"{g['tokens_planned']} | {g['epochs']} |" for g in groups]
        lines.append("")
    if funnel:
        lines += ["## Curation", "", "| stage | documents in | kept | MB in | MB kept |", "|---|---|---|---|---|"]
        lines += [f"| {f['stage']} | {f['docs_in']} | {f['docs_kept']} | {(f['bytes_in'] or 0) / 1e6:.1f} | "
                  f"{(f['bytes_kept'] or 0) / 1e6:.1f} |" for f in funnel]
        lines.append("")
    return "\n".join(lines)


class HfWriter:
    def __init__(self, prefix: Path, decoder: Decoder | None, shards: ShardSet, unit: str):
        try:
            import datasets  # noqa: F401
        except ImportError as exc:
            raise ExportUsageError("--format hf needs the `datasets` package (pip install datasets)") from exc
        self.prefix, self.decoder, self.manifest, self.unit = prefix, decoder, shards.manifest, unit
        self.funnel = stage_funnel(shards)
        self.identity: dict = {}  # set by the driver: what the export is made from and how
        self.work = prefix.parent / f"{prefix.name}.export-work"

    def describe(self) -> dict:
        return {"files": [f"{self.prefix.name}/"], "text": self.decoder is not None}

    def start(self, positions: dict | None) -> None:
        if positions is None:
            shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True, exist_ok=True)

    def write(self, k: int, entries: Entries) -> dict:
        table = entries_table(entries, self.decoder)
        with parts.atomic_path(self.work / f"part-{k:05d}.arrow") as tmp:
            with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table, max_chunksize=1024)
        return {"parts": k + 1}

    def finish(self, n_shards: int, entries: int, tokens: int) -> list[dict]:
        import datasets

        parts_ = [datasets.Dataset.from_file(str(self.work / f"part-{k:05d}.arrow")) for k in range(n_shards)]
        data = datasets.concatenate_datasets(parts_)
        data.info.description = f"curate export, unit {self.unit}"
        # datasets derives the fingerprint from the part files' paths; the export's identity makes state.json
        # (and so the whole directory) the same for the same shards and options, wherever it was written
        data._fingerprint = hashlib.sha256(json.dumps(self.identity, sort_keys=True).encode()).hexdigest()[:16]
        shutil.rmtree(self.prefix, ignore_errors=True)
        bars = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()  # curate logs per shard; a bar per save would interleave with it
        try:
            data.save_to_disk(str(self.prefix))
        finally:
            if bars:
                datasets.enable_progress_bars()
        del data, parts_
        (self.prefix / "README.md").write_text(
            dataset_card(self.manifest, self.unit, entries, tokens, self.funnel), encoding="utf-8")
        shutil.rmtree(self.work, ignore_errors=True)
        return [{**file_record(p), "file": p.relative_to(self.prefix.parent).as_posix()}
                for p in sorted(self.prefix.rglob("*")) if p.is_file()]
