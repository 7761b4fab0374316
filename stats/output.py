"""Output figures computed from the shards themselves, then cross-checked with `shards/manifest.json`.

Only the per-sequence counters and the piece lists are read (`n_code_tokens`, `n_text_tokens`,
`n_pad_tokens`, `doc_ids`, `doc_lengths`, `doc_starts`); `input_ids` is skipped batch by batch. A piece
whose `doc_starts` is false continues a document begun in an earlier sequence: their count is the
number of extra sequence boundaries inside documents, and the distinct ids among them the number of
documents split across sequences (ids kept as 64-bit hashes, so memory is 8 bytes per split piece).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from stats.artifacts import Workdir

COUNTERS = ("n_code_tokens", "n_text_tokens", "n_pad_tokens")
PIECES = ("doc_ids", "doc_lengths", "doc_starts")


def output(wd: Workdir) -> dict | None:
    manifest = wd.shards_manifest()
    if manifest is None:
        return None
    per_shard, continued = [], []
    totals = dict.fromkeys(("sequences", "code", "text", "padding", "pieces", "documents_started", "piece_tokens"), 0)
    seq_len = None
    for path in wd.shard_files():
        s = _shard(wd, path, continued)
        seq_len = seq_len or s.pop("seq_len")
        s.pop("seq_len", None)
        per_shard.append(s)
        for k in totals:
            totals[k] += s[k]
    code, text, pad = totals["code"], totals["text"], totals["padding"]
    ratios = [s["code"] / s["text"] for s in per_shard if s["text"]]
    split = np.unique(np.asarray(continued, dtype=np.uint64)).size
    out = {
        "shards": len(per_shard), "sequences": totals["sequences"], "seq_len": seq_len,
        "tokens": {"code": code, "text": text, "padding": pad, "total": code + text},
        "ratio_code_text": code / text if text else None,
        "ratio_per_shard": {"min": min(ratios), "max": max(ratios)} if ratios else None,
        "padding_fraction": pad / (code + text + pad) if code + text + pad else 0.0,
        "pieces": totals["pieces"], "documents_started": totals["documents_started"],
        "continuation_pieces": len(continued), "documents_split": int(split),
        "per_shard": per_shard, "plan": manifest.get("plan"),
    }
    out["checks"] = cross_check(out, totals, manifest)
    return out


def _shard(wd: Workdir, path: str, continued: list) -> dict:
    s = {"file": path.rsplit("/", 1)[-1], "sequences": 0, "code": 0, "text": 0, "padding": 0, "pieces": 0,
         "documents_started": 0, "piece_tokens": 0, "seq_len": wd.shard_seq_len(path)}
    for batch in wd.iter_shard(path, [*COUNTERS, *PIECES]):
        t = pa.Table.from_batches([batch])
        s["sequences"] += t.num_rows
        for key, col in zip(("code", "text", "padding"), COUNTERS):
            s[key] += int(pc.sum(t[col]).as_py() or 0)
        starts = pc.list_flatten(t["doc_starts"])
        s["pieces"] += len(starts)
        s["documents_started"] += int(pc.sum(pc.cast(starts, pa.int64())).as_py() or 0)
        s["piece_tokens"] += int(pc.sum(pc.list_flatten(t["doc_lengths"])).as_py() or 0)
        ids = pc.filter(pc.list_flatten(t["doc_ids"]), pc.invert(starts)).to_pylist()
        continued.extend(xxhash.xxh3_64_intdigest(str(i).encode()) for i in ids)
    s["ratio_code_text"] = s["code"] / s["text"] if s["text"] else None
    return s


# Where a pack manifest may state each figure (first match wins); the pack stage is written in parallel.
ALIASES = {
    "shards": [("shards",), ("n_shards",), ("totals", "shards")],
    "sequences": [("sequences",), ("totals", "sequences"), ("n_sequences",)],
    "code": [("tokens", "code"), ("totals", "code_tokens"), ("totals", "n_code_tokens"), ("totals", "tokens", "code"),
             ("code_tokens",), ("n_code_tokens",)],
    "text": [("tokens", "text"), ("totals", "text_tokens"), ("totals", "n_text_tokens"), ("totals", "tokens", "text"),
             ("text_tokens",), ("n_text_tokens",)],
    "padding": [("tokens", "padding"), ("tokens", "pad"), ("totals", "pad_tokens"), ("totals", "n_pad_tokens"),
                ("totals", "tokens", "padding"), ("totals", "tokens", "pad"), ("pad_tokens",), ("n_pad_tokens",)],
    "seq_len": [("seq_len",), ("config", "seq_len")],
}


def _lookup(obj: dict, path: tuple) -> object:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return obj


def cross_check(out: dict, totals: dict, manifest: dict) -> list[dict]:
    """Each figure against the manifest's (when it states it), plus internal consistency of the shards."""
    ours = {"shards": out["shards"], "sequences": out["sequences"], "code": out["tokens"]["code"],
            "text": out["tokens"]["text"], "padding": out["tokens"]["padding"], "seq_len": out["seq_len"]}
    checks = []
    for name, value in ours.items():
        stated = next((v for p in ALIASES[name] if (v := _lookup(manifest, p)) is not None), None)
        if isinstance(stated, list):
            stated = len(stated)  # a list of per-shard entries
        if isinstance(stated, (int, float)) and not isinstance(stated, bool):
            checks.append({"figure": name, "shards": value, "manifest": stated, "ok": stated == value})
    filled = out["sequences"] * (out["seq_len"] or 0)
    checks.append({"figure": "code + text + padding = sequences x seq_len", "shards": totals["code"] + totals["text"]
                   + totals["padding"], "manifest": filled, "ok": totals["code"] + totals["text"] + totals["padding"] == filled})
    checks.append({"figure": "sum of piece lengths = code + text", "shards": totals["piece_tokens"],
                   "manifest": totals["code"] + totals["text"], "ok": totals["piece_tokens"] == totals["code"] + totals["text"]})
    return checks
