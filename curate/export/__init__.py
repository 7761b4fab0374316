"""`curate export WORKDIR --format megatron|jsonl|hf --out PREFIX [--unit sequence|document]`.

Reads the packed shards (a work directory, its shards/ folder or a published destination, like the
loader) in the pack's order, one shard at a time (memory: one shard and its entries), checks each
shard's sha256 against the pack manifest as it is read, and writes:

    megatron   PREFIX.bin + PREFIX.idx        (curate/export/megatron.py)
    jsonl      PREFIX.jsonl                   (curate/export/jsonl.py)
    hf         PREFIX/ (datasets save_to_disk, with README.md as dataset card)   (curate/export/hf.py)
and PREFIX.manifest.json: the source shards, the options, counts, and every output file with its bytes
and sha256 (`complete: true` once done). The manifest is rewritten after every shard; rerunning the same
command after a kill continues after the last finished shard, and a finished export is not redone.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from curate.export.output import ExportUsageError, Progress
from curate.export.units import UNITS, shard_entries
from curate.shard_reader import ShardSet

log = logging.getLogger("curate.export")
FORMATS = ("megatron", "jsonl", "hf")


def _writer(fmt: str, prefix: Path, shards: ShardSet, unit: str, decoder):
    if fmt == "megatron":
        from curate.export.megatron import MegatronWriter

        return MegatronWriter(prefix, shards.dtype)
    if fmt == "jsonl":
        from curate.export.jsonl import JsonlWriter

        return JsonlWriter(prefix, decoder)
    from curate.export.hf import HfWriter

    return HfWriter(prefix, decoder, shards, unit)


def _decoder(shards: ShardSet, text: bool, tokenizer: str | None):
    if not text:
        return None
    from curate.export.text import Decoder

    tok = shards.manifest.get("tokenizer", {})
    return Decoder(tokenizer or tok.get("tokenizer") or "", tok.get("sha256"))


def export(location: str | Path, fmt: str, out: str | Path, *, unit: str = "sequence", text: bool = False,
           tokenizer: str | None = None, endpoint_url: str | None = None) -> dict:
    """Writes the export (or finishes an interrupted one) and returns its manifest."""
    if fmt not in FORMATS:
        raise ExportUsageError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    if unit not in UNITS:
        raise ExportUsageError(f"--unit: {unit!r} is not one of {', '.join(UNITS)}")
    if text and fmt == "megatron":
        raise ExportUsageError("--text applies to --format jsonl and hf; Megatron files hold token ids")
    started = time.perf_counter()
    shards = ShardSet(location, endpoint_url)
    prefix = Path(out)
    writer = _writer(fmt, prefix, shards, unit, _decoder(shards, text, tokenizer))
    identity = {"format": fmt, "unit": unit, **writer.describe(),
                "source": {"dataset": shards.fingerprint, "shards": [{"file": f, "sha256": h}
                                                                     for f, h in zip(shards.files, shards.sha256)]}}
    writer.identity = identity
    progress = Progress(prefix, identity)
    if progress.complete:
        log.info("export: %s is complete and up to date", progress.path)
        return progress.state
    writer.start(progress.state["positions"] if progress.resumed else None)
    first = progress.state["shards_done"]
    if first:
        log.info("export: resuming after shard %d of %d", first, len(shards.files))
    offsets = [sum(shards.sizes[:k]) for k in range(len(shards.sizes))]
    for k in range(first, len(shards.files)):
        entries = shard_entries(shards, k, unit, offsets[k])
        positions = writer.write(k, entries)
        progress.shard_done(k, len(entries), len(entries.tokens), positions)
        log.info("export: shard %d/%d: %d entries", k + 1, len(shards.files), len(entries))
    outputs = writer.finish(len(shards.files), progress.state["entries"], progress.state["tokens"])
    return progress.finish(outputs, {"seconds": round(time.perf_counter() - started, 3),
                                     "bytes": sum(o["bytes"] for o in outputs)})
