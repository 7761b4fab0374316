"""`curate explain WORKDIR DOC_ID`: the stages a document passed and, if dropped, where and why."""

from __future__ import annotations

from pathlib import Path

import pyarrow.dataset as ds

from curate import parts
from curate.reasons import REASONS
from curate.schema import STAGES


def find_in(files: list[Path], doc_id: str, columns: list[str]) -> dict | None:
    if not files:
        return None
    table = ds.dataset([str(f) for f in files], format="parquet").to_table(filter=ds.field("id") == doc_id, columns=columns)
    return table.slice(0, 1).to_pylist()[0] if table.num_rows else None


def explain(workdir: str | Path, doc_id: str) -> list[str]:
    """Lines describing the document's fate, stage by stage; empty if no stage ever saw it."""
    workdir = Path(workdir)
    lines: list[str] = []
    for stage in STAGES:
        d = parts.stage_dir(workdir, stage)
        if not (d / "_manifest.json").exists():
            continue
        dropped = find_in(sorted((d / "dropped").glob("part-*.parquet")), doc_id,
                          ["id", "source", "drop_reason", "drop_detail"])
        if dropped:
            reason = dropped["drop_reason"]
            lines.append(f"{stage}: DROPPED {reason} ({REASONS.get(reason, 'unregistered reason')})")
            if dropped["drop_detail"]:
                lines.append(f"  detail: {dropped['drop_detail']}")
            return lines
        kept = find_in(parts.part_files(d), doc_id, ["id", "source", "kind", "lang"])
        if kept:
            lines.append(f"{stage}: kept (source {kept['source']}, kind {kept['kind']}, lang {kept['lang']})")
        elif lines:
            lines.append(f"{stage}: not present (it was not in this stage's input)")
            return lines
    return lines
