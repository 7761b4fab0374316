"""`curate explain WORKDIR DOC_ID`: the stages a document passed and, if dropped, where and why."""

from __future__ import annotations

import pyarrow.dataset as ds

from curate import parts
from curate.reasons import REASONS
from curate.schema import STAGES
from curate.workpath import WorkPath


def find_in(files: list[WorkPath], doc_id: str, columns: list[str]) -> dict | None:
    """The first row with this id in the parts (row-group statistics let a scan skip most of each part)."""
    if not files:
        return None
    fs = files[0].arrow_location()[0]
    table = ds.dataset([f.arrow_location()[1] for f in files], format="parquet", filesystem=fs).to_table(filter=ds.field("id") == doc_id, columns=columns)
    return table.slice(0, 1).to_pylist()[0] if table.num_rows else None


def find_in_shards(shards: WorkPath, doc_id: str) -> list[tuple[str, int]]:
    """(shard file, sequence index) of every copy of the document that starts in a shard (a scan of the
    shards' doc_ids and doc_starts columns only)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.ipc as ipc

    found = []
    for path in shards.files("shard-*.arrow"):
        # on disk the stream is memory-mapped (zero-copy: the token pages are mapped, never read)
        source = path.open_stream() if path.remote else pa.memory_map(str(path))
        with source, ipc.open_stream(source) as reader:
            table = reader.read_all().select(["doc_ids", "doc_starts"])
        ids = table["doc_ids"].combine_chunks()
        hit = pc.and_(pc.equal(pc.list_flatten(ids), doc_id), pc.list_flatten(table["doc_starts"].combine_chunks()))
        rows = pc.list_parent_indices(ids).to_numpy()[np.asarray(hit.to_numpy(zero_copy_only=False), bool)]
        found += [(path.name, int(r)) for r in rows]
    return found


def explain(workdir: str | WorkPath, doc_id: str) -> list[str]:
    """Lines describing the document's fate, stage by stage; empty if no stage ever saw it."""
    workdir = WorkPath(workdir)
    lines: list[str] = []
    for stage in STAGES:
        d = parts.stage_dir(workdir, stage)
        if not (d / "_manifest.json").is_file():
            continue
        dropped = find_in((d / "dropped").files("part-*.parquet"), doc_id,
                          ["id", "source", "drop_reason", "drop_detail"])
        if dropped:
            reason = dropped["drop_reason"]
            lines.append(f"{stage}: DROPPED {reason} ({REASONS.get(reason, 'unregistered reason')})")
            if dropped["drop_detail"]:
                lines.append(f"  detail: {dropped['drop_detail']}")
            return lines
        if stage == "pack":  # pack's kept documents are in the shards, not in parts
            found = find_in_shards(workdir / "shards", doc_id)
            if found:
                where = ", ".join(f"{shard} sequence {seq}" for shard, seq in found[:5])
                more = f" (+{len(found) - 5} more)" if len(found) > 5 else ""
                lines.append(f"pack: packed, {len(found)} cop{'y' if len(found) == 1 else 'ies'}, starting in {where}{more}")
                continue
        kept = find_in(parts.part_files(d), doc_id, ["id", "source", "kind", "lang"])
        if kept:
            lines.append(f"{stage}: kept (source {kept['source']}, kind {kept['kind']}, lang {kept['lang']})")
        elif lines:
            lines.append(f"{stage}: not present (it was not in this stage's input)")
            return lines
    return lines
