"""Streaming aggregates over a stage's kept parts, and sampled examples of its dropped documents.

Only the needed columns are read, one record batch at a time; per batch, Arrow group-bys and numpy
histograms update small accumulators, so memory is bounded by one batch (a few MB of text) whatever
the number of documents. Examples per drop reason are the `k` documents with the smallest 64-bit xxh3
of their id: a uniform, deterministic sample that needs only `k` rows in memory per reason.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from curate.schema import DROP_DETAIL, DROP_REASON, ID, KIND, LANG, SOURCE, TEXT
from stats.artifacts import Workdir
from stats.hist import LOG_EDGES, SCORE_EDGES, Histogram

SCORES = ("lang_score", "quality_score")
SIGNALS = ("quality_signals", "quality_flags")
N_TOKENS = "n_tokens"
EXAMPLES_PER_REASON = 3


class _Sums:
    """Sums of docs / bytes / chars / tokens per key, accumulated over batches."""

    def __init__(self, with_tokens: bool):
        self.fields = ["docs", "bytes", "chars"] + (["tokens"] if with_tokens else [])
        self.rows: dict[tuple, dict[str, int]] = {}

    def add(self, table: pa.Table, keys: list[str]) -> None:
        aggs = [("bytes", "count")] + [(f, "sum") for f in self.fields[1:]]
        g = table.group_by(keys).aggregate(aggs)
        cols = [g[k].to_pylist() for k in keys]
        vals = [g["bytes_count"].to_pylist()] + [g[f"{f}_sum"].to_pylist() for f in self.fields[1:]]
        for i, key in enumerate(zip(*cols)):
            acc = self.rows.setdefault(key, dict.fromkeys(self.fields, 0))
            for f, v in zip(self.fields, vals):
                acc[f] += v[i] or 0

    def to_json(self, names: list[str]) -> list[dict]:
        return [{**dict(zip(names, k)), **v} for k, v in sorted(self.rows.items())]


def profile(wd: Workdir, stage: str) -> dict | None:
    """Per (kind, lang) and per source sums, length / score histograms per kind, quality signal rates."""
    paths = wd.kept_parts(stage)
    if not paths:
        return None
    names = set().union(*(wd.schema(p).names for p in paths[:1]))
    optional = [c for c in (N_TOKENS, *SCORES, *SIGNALS) if c in names]
    with_tokens = N_TOKENS in optional
    by_lang, by_source = _Sums(with_tokens), _Sums(with_tokens)
    hists: dict[str, dict[str, Histogram]] = {}
    signals: dict[str, dict[str, list[int]]] = {}
    for batch in wd.iter_batches(paths, [TEXT, KIND, SOURCE, LANG, *optional]):
        t = pa.Table.from_batches([batch])
        cols = {"kind": t[KIND], "lang": pc.fill_null(t[LANG], ""), "source": t[SOURCE],
                "bytes": pc.cast(pc.binary_length(t[TEXT]), pa.int64()),
                "chars": pc.cast(pc.utf8_length(t[TEXT]), pa.int64())}
        if with_tokens:
            cols["tokens"] = pc.cast(t[N_TOKENS], pa.int64())
        sums = pa.table(cols)
        by_lang.add(sums, ["kind", "lang"])
        by_source.add(sums, ["source", "kind"])
        _add_hists(hists, t, sums)
        for c in SIGNALS:
            if c in t.column_names:
                _add_signals(signals, c, t)
    return {"stage": stage, "documents": sum(r["docs"] for r in by_lang.rows.values()),
            "by_lang": by_lang.to_json(["kind", "lang"]), "by_source": by_source.to_json(["source", "kind"]),
            "hist": {name: {k: h.to_json() for k, h in sorted(per_kind.items())} for name, per_kind in sorted(hists.items())},
            "signals": {k: {rule: {"fired": f, "docs": n, "rate": f / n if n else 0.0} for rule, (f, n) in sorted(v.items())}
                        for k, v in sorted(signals.items())}}


def _add_hists(hists: dict, t: pa.Table, sums: pa.Table) -> None:
    kinds = sums["kind"].to_numpy(zero_copy_only=False)
    values = {"chars": (sums["chars"], LOG_EDGES)}
    if "tokens" in sums.column_names:
        values["tokens"] = (sums["tokens"], LOG_EDGES)
    for c in SCORES:
        if c in t.column_names:
            values[c] = (pc.cast(t[c], pa.float64()), SCORE_EDGES)
    for name, (col, edges) in values.items():
        arr = col.to_numpy(zero_copy_only=False) if col.null_count == 0 else pc.drop_null(col).to_numpy()
        kk = kinds if col.null_count == 0 else kinds[pc.is_valid(col).to_numpy(zero_copy_only=False)]
        for kind in np.unique(kk):
            hists.setdefault(name, {}).setdefault(str(kind), Histogram(edges)).add(arr[kk == kind])


def _add_signals(signals: dict, column: str, t: pa.Table) -> None:
    """Fire counts per rule: a struct of booleans (`quality_signals`) or a list of fired rule names
    (`quality_flags`); numeric signals are left to the score histograms."""
    col, kinds = t[column], t[KIND]
    for kind in pc.unique(kinds).to_pylist():
        sub = pc.filter(col, pc.equal(kinds, kind))
        acc = signals.setdefault(str(kind), {})
        if pa.types.is_struct(sub.type):
            for i, f in enumerate(sub.type):
                if pa.types.is_boolean(f.type):
                    child = pc.struct_field(sub, [i])
                    fired, n = pc.sum(child).as_py() or 0, len(child) - child.null_count
                    prev = acc.setdefault(f.name, [0, 0])
                    prev[0], prev[1] = prev[0] + fired, prev[1] + n
        elif pa.types.is_list(sub.type) or pa.types.is_large_list(sub.type):
            counts = pc.value_counts(pc.list_flatten(sub)).to_pylist() if len(sub) else []
            for name in {c["values"] for c in counts} | set(acc):
                prev = acc.setdefault(name, [0, 0])
                prev[1] += len(sub)
            for c in counts:
                acc[c["values"]][0] += c["counts"]


def examples(wd: Workdir, stage: str, k: int = EXAMPLES_PER_REASON) -> dict[str, dict]:
    """Per drop reason: its count and the `k` dropped documents with the smallest xxh3-64 of their id."""
    best: dict[str, list] = {}
    counts: dict[str, int] = {}
    columns = [ID, SOURCE, DROP_REASON, DROP_DETAIL, "text_head"]
    for batch in wd.iter_batches(wd.dropped_parts(stage), columns):
        t = pa.Table.from_batches([batch])
        ids = t[ID].to_pylist()
        h = np.fromiter((xxhash.xxh3_64_intdigest(i.encode()) for i in ids), dtype=np.uint64, count=len(ids))
        reasons = t[DROP_REASON].to_numpy(zero_copy_only=False)
        for reason in np.unique(reasons):
            rows = np.flatnonzero(reasons == reason)
            counts[reason] = counts.get(reason, 0) + len(rows)
            pick = rows[np.argsort(h[rows], kind="stable")[:k]]
            cand = best.setdefault(str(reason), [])
            cand += [(int(h[i]), ids[i], _row(t, int(i))) for i in pick]
            cand.sort(key=lambda c: (c[0], c[1]))
            del cand[k:]
    return {r: {"count": counts[r], "examples": [c[2] for c in best[r]]} for r in sorted(best)}


def _row(t: pa.Table, i: int) -> dict:
    return {"id": t[ID][i].as_py(), "source": t[SOURCE][i].as_py(), "detail": t[DROP_DETAIL][i].as_py(),
            "text_head": t["text_head"][i].as_py() if "text_head" in t.column_names else None}
