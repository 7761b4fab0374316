"""redact's worker side: reads a part, redacts each source's rows under its effective settings.

Per-part counters (summed into the stage manifest's `extra`): `redactions[type][source]`, the values
replaced, and `documents_redacted[source]`. Counts only: no value, and no part of one, leaves the part.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from curate import parts, tasks
from curate.stages import redact as R
from curate.tasks import PartTask


def decide(task: PartTask, extra: dict) -> Iterator[pa.Table]:
    extra.update(redactions={t: {} for t in R.TYPES}, documents_redacted={})
    for batch in parts.iter_part(task.input_part):
        yield tasks.by_source(batch, lambda rows, source: decide_rows(rows, task.recipe, source, extra))


def decide_rows(batch: pa.Table, recipe, source: str | None, extra: dict) -> pa.Table:
    cfg = recipe.settings("redact", source)
    out = R.apply(batch, cfg.types, cfg.replacement, cfg.allow, recipe.seed)
    if source is not None and batch.num_rows:
        counts = out[R.REDACTIONS].combine_chunks()
        total = pc.add(pc.add(counts.field("email"), counts.field("ip_address")), counts.field("secret"))
        extra["documents_redacted"][source] = (extra["documents_redacted"].get(source, 0)
                                               + pc.sum(pc.greater(total, 0).cast(pa.int64())).as_py())
        for t in R.TYPES:
            extra["redactions"][t][source] = extra["redactions"][t].get(source, 0) + (pc.sum(counts.field(t)).as_py() or 0)
    return out
