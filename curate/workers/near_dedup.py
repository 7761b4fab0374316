"""near_dedup's worker side: the global phases as tasks over files grouped by bucket, then marking.

    signature_part    per part: shingle sets (sorted, distinct), signatures; writes band rows (by band-key
                      bucket), the shingle payload and the ranking fields (by node bucket)
    candidates_range  per band-key bucket range: candidate pairs (u < v), by node bucket of u
    verification      (near_dedup_verify.py) routed: one task plans (components of the candidate graph ->
                      tasks), each part's payload is split by task, each task scores its components' pairs
                      by merge, skipping pairs already connected by accepted ones (with an earlier run's
                      index too); above ROUTE_MAX_DOCS documents in pairs, per node-bucket range of u
                      (verify_range).
                      The accepted pairs (edges), by bucket of u
    components        one task below local_components_max_edges, else large-star/small-star rounds,
                      each a task per node-bucket range; the labels are written by node bucket
    members_range     per node-bucket range: labels joined with ranking fields, by bucket of the cluster
    survivors_range   per cluster-bucket range: the survivor of each cluster, members by part
    decide            per part: marks its members (curate.tasks.DECIDERS)

Every phase output is written atomically with a `.json` record after it (with the task's own peak RSS and
seconds), so a rerun reuses it. Memory per document (num_perm = 256): signature_part ~ (8 x shingles + 1
KiB) per document of the batch; candidates ~ 16 bytes per (document, band) of its range plus ~16 bytes
per distinct pair; routing plan ~ 100 bytes per document in pairs (at most ROUTE_MAX_DOCS) plus
ROUTE_CHUNK_PAIRS pairs, whatever the number of pairs; routed
verification ~ 8 bytes per distinct shingle of its documents (about 2 x CHUNK_BYTES at most, a larger
component is cut) plus ~40 bytes per pair (by range of u: its own range and one chunk of the v side, at
most ~CHUNK_BYTES each); components ~ 32 bytes per edge row;
members/survivors ~ 100 bytes per clustered document. No phase holds all documents unless its bucket
range is all buckets.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate import parts
from curate.errors import RecipeError
from curate.schema import ID, META, TEXT
from curate.stages import components as C
from curate.stages import near_dedup as N
from curate.tasks import PartTask
from curate.workers import near_dedup_verify as V
from curate.workers.near_dedup_files import _doc_in, _once, _read, _write
from curate.workpath import WorkPath

BAND_BUCKETS = 256


# ---------------------------------------------------------------------------------------------- index
@dataclass(frozen=True)
class Index:
    """The signature indexes earlier runs' near_dedup left in their WORKDIR/near_dedup/_work: band rows,
    shingle payloads, ranking fields and survivors of their documents (`near_dedup.against`). Level k is
    workdirs[k]: the runs named, then the runs each of them ran against, followed. Files are (path, level)
    pairs; a level's documents get node ids flagged with its level (N.index_nodes). Every file is grouped
    by the same buckets as this run's, so each phase reads the same bucket range of all of them."""

    workdirs: tuple[str, ...]
    bands: tuple[tuple[str, int], ...]
    payload: tuple[tuple[str, int], ...]
    docs: tuple[tuple[str, int], ...]
    survivors: tuple[tuple[str, int], ...]
    fingerprint: str  # the earlier runs' near_dedup output fingerprints: a changed index changes this stage
    docs_in_index: int = 0  # their documents with shingles (they join this run's bucket ranges)

    def dropped_nodes(self) -> pa.Array:
        """Flagged ids of the documents those runs dropped as near duplicates: not matched against."""
        ids = [np.zeros(0, np.int64)]
        for f, level in self.survivors:
            t = pq.read_table(WorkPath(f).open_input(), columns=["doc", "is_survivor"])
            ids.append(N.index_nodes(t.filter(pc.invert(t["is_survivor"]))["doc"].to_numpy(), level))
        return pa.array(np.concatenate(ids), pa.int64())


COMPATIBLE = ("ngram", "num_perm", "seed")  # with (bands, rows): what makes two runs' band keys comparable
# The layout of the files in _work that an index is read from (payload as large_list, ranking fields as
# raw `meta`); recorded in the manifest, and an index of another layout is refused rather than misread.
INDEX_FORMAT = 2


def load_index(cfg, workdir: str | WorkPath) -> Index | None:
    """The indexes named by `near_dedup.against` and, followed, the ones each of those ran against (each
    directory once), checked: earlier, finished near_dedup runs whose signatures and bands are comparable
    with this recipe's. Refused with the field path (and the chain that led there) otherwise (exit 2)."""
    if cfg.against is None:
        return None
    queue = [(str(w), f"near_dedup.against: {w}") for w in _as_list(cfg.against)]
    levels, seen = [], set()
    while queue:
        where, field = queue.pop(0)
        if WorkPath(where).identity in seen:
            continue
        seen.add(WorkPath(where).identity)
        if len(levels) == N.MAX_LEVELS:
            raise RecipeError(f"{field}: more than {N.MAX_LEVELS} earlier runs in the chain")
        files, manifest = _load_level(cfg, where, field, workdir)
        levels.append((where, files, manifest))
        own = manifest.get("config", {}).get("against")
        queue += [(str(w), f"{field} -> {w} (its own near_dedup.against)") for w in _as_list(own)]

    def pick(kind: str) -> tuple[tuple[str, int], ...]:
        return tuple((f, level) for level, (_, files, _) in enumerate(levels) for f in files[kind])

    size = sum(m["extra"].get("docs", 0) - m["extra"].get("no_shingles", 0) for _, _, m in levels)
    return Index(tuple(w for w, _, _ in levels), pick("bands"), pick("payload"), pick("docs"), pick("survivors"),
                 fingerprint="|".join(m.get("output_fingerprint", "") for _, _, m in levels), docs_in_index=size)


def _as_list(against) -> list[str]:
    return [] if against is None else [against] if isinstance(against, str) else list(against)


def _load_level(cfg, where: str, field: str, workdir: str | WorkPath) -> tuple[dict[str, tuple[str, ...]], dict]:
    """One earlier run's index files by kind, and its near_dedup manifest, after every check."""
    stage = WorkPath(where) / "near_dedup"
    if WorkPath(where).identity == WorkPath(workdir).identity:
        raise RecipeError(f"{field}: is this run's own work directory; name an earlier run's")
    try:
        manifest = (stage / "_manifest.json").read_json()
    except (OSError, ValueError):
        raise RecipeError(f"{field}: no finished near_dedup there ({stage}/_manifest.json missing or unreadable)") from None
    old, bands, rows = manifest.get("config", {}), *N.resolve_bands(cfg)[:2]
    theirs = {k: old.get(k) for k in COMPATIBLE} | {"bands": manifest["extra"].get("bands"), "rows": manifest["extra"].get("rows")}
    ours = {k: getattr(cfg, k) for k in COMPATIBLE} | {"bands": bands, "rows": rows}
    if theirs != ours:
        diff = ", ".join(f"{k} {theirs[k]} there, {ours[k]} here" for k in ours if theirs[k] != ours[k])
        raise RecipeError(f"{field}: signatures are not comparable ({diff}); use the same near_dedup settings")
    if manifest["extra"].get("index_format") != INDEX_FORMAT:
        raise RecipeError(f"{field}: its index was written by another version of curate (format "
                          f"{manifest['extra'].get('index_format', 1)}, this one reads {INDEX_FORMAT}); rerun its near_dedup")
    if cfg.verify == "signature" and old.get("verify") != "signature":
        raise RecipeError(f"{field}: verify: signature needs an index built with verify: signature")
    work = stage / "_work"
    names = [p.removesuffix(".parquet") for p in manifest.get("parts", [])]
    if names and max(parts.part_index(n) for n in names) >= N.MAX_INDEXED_PARTS:
        raise RecipeError(f"{field}: has more than {N.MAX_INDEXED_PARTS} parts, more than an index can address")
    files = {kind: tuple(str(work / kind / f"{n}.parquet") for n in names) for kind in ("bands", "payload", "docs")}
    missing = [f for fs in files.values() for f in fs if not WorkPath(f).is_file()]
    if missing:
        raise RecipeError(f"{field}: the index is incomplete ({len(missing)} files missing, e.g. {missing[0]})")
    survivors = tuple(str(f) for f in WorkPath(work / "survivors").files("survivors-*.parquet"))
    if not survivors or any(not WorkPath(f + ".json").is_file() for f in survivors):
        raise RecipeError(f"{field}: the index is incomplete (its survivors in {work / 'survivors'} are missing)")
    return files | {"survivors": survivors}, manifest


# ---------------------------------------------------------------------------------------------- signatures
def signature_part(input_part: str, work: str, cfg, bands: int, rows: int) -> dict:
    name = WorkPath(input_part).stem
    out = f"{work}/bands/{name}.parquet"
    return _once(out, lambda: _signature_part(input_part, work, name, cfg, bands, rows))


def _signature_part(input_part, work, name, cfg, bands, rows) -> dict:
    """No per-document Python here: the text column goes to the vectorised shingler as Arrow, and the
    ranking fields stay raw `meta` JSON until a document is found in a cluster (members_range)."""
    index = parts.part_index(name)
    band_tables, payloads, docs, first_row = [], [], [], 0
    stats = {"docs": 0, "bytes": 0, "no_shingles": 0, "shingles": 0}
    for batch in parts.iter_part(input_part, columns=[ID, TEXT, META]):
        h, counts = N.shingle_sets(batch[TEXT], cfg.ngram)  # sorted and distinct: the payload as it is merged
        doc = np.repeat(np.arange(batch.num_rows, dtype=np.int64), counts)
        sig = N.signatures(doc, h, batch.num_rows, cfg.num_perm, cfg.seed)
        node = (np.int64(index) << np.int64(32)) | np.arange(first_row, first_row + batch.num_rows, dtype=np.int64)
        has = counts > 0  # documents without shingles are never candidates
        keys = N.band_keys(sig[has], bands, rows)
        band_tables.append(pa.table({"key": keys.ravel(), "doc": np.repeat(node[has], bands)}))
        shingle_lists = pa.LargeListArray.from_arrays(pa.array(np.concatenate([[0], np.cumsum(counts)]), pa.int64()),
                                                      pa.array(h, pa.uint64()))
        payload = {"doc": node, "shingles": shingle_lists}
        if cfg.verify == "signature":
            payload["sig"] = pa.FixedSizeListArray.from_arrays(pa.array(sig.ravel(), pa.uint32()), cfg.num_perm)
        keep = pa.array(has)
        payloads.append(pa.table(payload).filter(keep))
        docs.append(pa.table({"doc": node, ID: batch[ID], META: batch[META]}).filter(keep))
        stats["docs"] += batch.num_rows
        stats["bytes"] += int(pc.sum(pc.binary_length(batch[TEXT])).as_py() or 0)
        stats["no_shingles"] += int((~has).sum())
        stats["shingles"] += int(h.size)
        first_row += batch.num_rows
    band = pa.concat_tables(band_tables)
    key_bucket = (band["key"].to_numpy() >> np.uint64(56)).astype(np.int32)
    _write(f"{work}/payload/{name}.parquet", pa.concat_tables(payloads), "doc")
    _write(f"{work}/docs/{name}.parquet", pa.concat_tables(docs), "doc")
    _write(f"{work}/bands/{name}.parquet", band, key=key_bucket)
    return stats


# ---------------------------------------------------------------------------------------------- candidates
def candidates_range(band_files: list[str], buckets: list[int], out: str, max_bucket_docs: int,
                     index: Index | None = None, dropped_file: str | None = None) -> dict:
    """Candidate pairs of this band-key bucket range. With an earlier run's index: its band rows are read
    only under keys this run has, its documents that run dropped (`dropped_file`, see `write_dropped`) are
    left out, and each new document pairs with at most max_bucket_docs - 1 indexed documents per key (the
    smallest ids); pairs among new documents are bounded by the new documents alone, and no pair of two
    indexed documents is made (that run settled them). So every pair has a new document as u (flagged ids
    are larger)."""
    def run() -> dict:
        t = _read(band_files, buckets)
        u, v = (np.zeros(0, np.int64),) * 2 if t is None else N.candidate_pairs(
            t["key"].to_numpy(), t["doc"].to_numpy(), max_bucket_docs)
        if index is not None and t is not None:
            keys = pc.unique(t["key"])
            with WorkPath(dropped_file).local_copy() as local:  # memory-mapped: a file on this node's disk
                dropped = np.load(local, mmap_mode="r")
                old = _read([], buckets, index.bands,
                            where=lambda g: _not_dropped(g.filter(pc.is_in(g["key"], value_set=keys)), dropped))
                del dropped
            if old is not None:
                ou, ov = _pairs_with_index(t, old, max_bucket_docs - 1)
                u, v = N.unique_pairs(np.concatenate([u, ou]), np.concatenate([v, ov]))
        _write(out, pa.table({"u": u, "v": v}), "u")
        return {"pairs": int(u.size)}

    return _once(out, run)


def write_dropped(index: Index, work: str) -> str:
    """Writes, once per run, the sorted flagged ids of the documents the indexed run dropped as one .npy
    file; candidate tasks memory-map it and look up only the indexed documents their keys meet, so the
    earlier run's survivors files are read once, not once per bucket range."""
    out = f"{work}/index_dropped.npy"

    def run() -> dict:
        dropped = np.sort(index.dropped_nodes().to_numpy())
        with WorkPath(out).writer() as sink:
            np.save(sink, dropped)
        return {"dropped": int(dropped.size)}

    _once(out, run)
    return out


def _not_dropped(rows: pa.Table, dropped: np.ndarray) -> pa.Table:
    """`rows` whose `doc` is not in the sorted array `dropped` (memory-mapped: a lookup reads the pages
    its binary search touches)."""
    doc = rows["doc"].to_numpy()
    if not doc.size or not dropped.size:
        return rows
    found = dropped[np.minimum(np.searchsorted(dropped, doc), dropped.size - 1)] == doc
    return rows.filter(pa.array(~found))


def _pairs_with_index(new: pa.Table, old: pa.Table, per_key: int) -> tuple[np.ndarray, np.ndarray]:
    """(new doc, indexed doc) for every band key both have, with the first `per_key` indexed docs of a key."""
    old = old.sort_by([("key", "ascending"), ("doc", "ascending")])
    key = old["key"].to_numpy()
    start = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]])) if key.size else np.zeros(0, np.int64)
    rank = np.arange(key.size) - np.repeat(start, np.diff(np.append(start, key.size)))
    old = old.filter(pa.array(rank < per_key)).rename_columns(["key", "v"])
    joined = new.select(["key", "doc"]).join(old, "key", join_type="inner")
    return joined["doc"].to_numpy(), joined["v"].to_numpy()


# ---------------------------------------------------------------------------------------------- components
def components_single(edge_files: list[str], out: str) -> dict:
    def run() -> dict:
        t = _read(edge_files, list(range(C.NODE_BUCKETS)))
        u, v = (np.zeros(0, np.int64),) * 2 if t is None else (t["u"].to_numpy(), t["v"].to_numpy())
        nodes, labels = C.components_local(u, v)
        _write(out, pa.table({"doc": nodes, "comp": labels}), "doc")
        return {"nodes": int(nodes.size)}

    return _once(out, run)


def star_round(in_files: list[str], buckets: list[int], op: str, out: str) -> dict:
    """One large-star or small-star round over the groups of a node-bucket range. Returns the digest of
    its deduplicated input edge set (each undirected edge counted once over all ranges)."""
    def run() -> dict:
        t = _read(in_files, buckets)
        key, other = (np.zeros(0, np.int64),) * 2 if t is None else (t["key"].to_numpy(), t["other"].to_numpy())
        key, other = C.unique_edges(key, other)
        once = key > other  # large-star rows hold both directions; small-star rows only key > other
        digest = C.edge_set_digest(key[once], other[once])
        if op == "large":
            x, y = C.large_star(key, other)
            k, o = C.small_star_rows(x, y)
        elif op == "small":
            x, y = C.small_star(key, other)
            k, o = C.large_star_rows(x, y)
        else:  # "label": the input is a converged star forest; each node's label is its group's minimum
            k, o = _labels(key, other)
            _write(out, pa.table({"doc": k, "comp": o}), "doc")
            return {"count": digest[0], "sum": str(digest[1])}
        _write(out, pa.table({"key": k, "other": o}), "key")
        return {"count": digest[0], "sum": str(digest[1])}

    return _once(out, run)


def _labels(key: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if key.size == 0:
        return key, other
    start = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
    return key[start], np.minimum(np.minimum.reduceat(other, start), key[start])


def edges_to_rows(edge_file: str, out: str) -> dict:
    """The first round's input: verified edges as large-star rows (both directions)."""
    def run() -> dict:
        t = _read([edge_file], list(range(C.NODE_BUCKETS)))
        u, v = (np.zeros(0, np.int64),) * 2 if t is None else (t["u"].to_numpy(), t["v"].to_numpy())
        k, o = C.large_star_rows(u, v)
        _write(out, pa.table({"key": k, "other": o}), "key")
        return {"rows": int(k.size)}

    return _once(out, run)


# ---------------------------------------------------------------------------------------------- survivors
def members_range(label_files: list[str], doc_files: list[str], buckets: list[int], out: str,
                  index: Index | None = None) -> dict:
    def run() -> dict:
        labels = _read(label_files, buckets)
        indexed = index.docs if index and labels is not None and N.in_index(labels["doc"].to_numpy()).any() else ()
        docs = _read(doc_files, buckets, indexed, where=_doc_in(labels["doc"]) if indexed else None)
        if labels is None or docs is None:
            labels = pa.table({"doc": pa.array([], pa.int64()), "comp": pa.array([], pa.int64())})
            docs = docs if docs is not None else pa.table({"doc": pa.array([], pa.int64()), ID: pa.array([], pa.string()),
                                                           META: pa.array([], pa.string())})
        joined = labels.join(docs, "doc", join_type="inner")
        ranks = N.rank_columns(joined)  # only clustered documents' meta JSON is ever parsed
        joined = joined.drop_columns([META]).append_column("stars", ranks["stars"]).append_column(
            "forks", ranks["forks"]).append_column("date", ranks["date"])
        _write(out, joined, "comp")
        return {"members": joined.num_rows}

    return _once(out, run)


def survivors_range(member_files: list[str], buckets: list[int], out: str) -> dict:
    def run() -> dict:
        t = _read(member_files, buckets)
        if t is None:
            t = pa.table({"comp": pa.array([], pa.int64()), "doc": pa.array([], pa.int64()), ID: pa.array([], pa.string()),
                          "stars": pa.array([], pa.int64()), "forks": pa.array([], pa.int64()), "date": pa.array([], pa.string())})
        chosen = N.choose_survivors(t)
        comp_sizes = np.unique(t["comp"].to_numpy(), return_counts=True)[1]
        chosen = chosen.filter(pa.array(~N.in_index(chosen["doc"].to_numpy())))  # an index's documents stay as they are
        part = (chosen["doc"].to_numpy() >> np.int64(32)).astype(np.int32)
        _write(out, chosen, key=part)
        hist = np.unique(comp_sizes, return_counts=True)
        indexed = pc.sum(pc.and_(chosen["survivor_in_index"], pc.invert(chosen["is_survivor"]))).as_py() or 0
        return {"clusters": int(comp_sizes.size), "sizes": {str(k): int(c) for k, c in zip(*hist)},
                "indexed_duplicates": int(indexed)}

    return _once(out, run)


# ---------------------------------------------------------------------------------------------- marking
def decide(task: PartTask, extra: dict) -> Iterator[pa.Table]:
    index = parts.part_index(task.name)
    files = WorkPath(task.options["survivors_dir"]).files("survivors-*.parquet")
    found = [parts.read_groups(f, [index]) for f in files]
    found = [t.drop_columns(["bucket"]) for t in found if t.num_rows]
    members = pa.concat_tables(found) if found else pa.table(
        {"doc": pa.array([], pa.int64()), "survivor": pa.array([], pa.string()), "is_survivor": pa.array([], pa.bool_())})
    first_row = 0
    started = time.time()
    for batch in parts.iter_part(task.input_part):
        rows = (np.int64(index) << np.int64(32)) | np.arange(first_row, first_row + batch.num_rows, dtype=np.int64)
        yield N.mark_members(batch, rows, members)
        first_row += batch.num_rows
    extra["mark_seconds"] = round(time.time() - started, 3)


# ---------------------------------------------------------------------------------------------- the plan
def prepare(ctx, up: dict, inputs: list[WorkPath], d: WorkPath, index: Index | None = None) -> tuple[dict, dict]:
    """near_dedup's global phases, each an `engine.map` over parts or bucket ranges (run_row_stage's hook);
    `index` is the `against` index the runner loaded (`load_index`)."""
    from curate.pipeline import bucket_ranges

    cfg, engine, work = ctx.recipe.near_dedup, ctx.engine, str(d / "_work")
    bands, rows, cand = N.resolve_bands(cfg)
    clock = _Clock()
    stats = engine.map(signature_part, [(str(p), work, cfg, bands, rows) for p in inputs], desc="near_dedup: signatures")
    clock.lap("signatures")
    ranges = bucket_ranges(sum(s["docs"] for s in stats) + (index.docs_in_index if index else 0), engine.num_cpus,
                           C.NODE_BUCKETS)
    names = [p.stem for p in inputs]
    payload = [f"{work}/payload/{n}.parquet" for n in names]
    dropped = write_dropped(index, work) if index else None
    pairs = _ranged(engine, candidates_range, ranges, f"{work}/pairs", lambda r, out: (
        [f"{work}/bands/{n}.parquet" for n in names], r, out, cfg.max_bucket_docs, index, dropped))
    clock.lap("candidates")
    payload_bytes = sum(WorkPath(f).size() for f in payload) + sum(WorkPath(f).size() for f, _ in
                                                                   (index.payload if index else ()))
    n_tasks, v_chunks = V.plan(payload_bytes, len(ranges), C.NODE_BUCKETS)
    routing = []
    n_docs = sum(s["docs"] for s in stats) + (index.docs_in_index if index else 0)
    if min(n_docs, 2 * sum(x["pairs"] for x in pairs.results)) <= V.ROUTE_MAX_DOCS:
        v_chunks, (edge_files, routing, verified) = 1, V.verify_routed(engine, work, pairs.files, payload, n_tasks, payload_bytes / max(
            1, sum(s["docs"] - s["no_shingles"] for s in stats)), cfg, ctx.recipe.seed, index)
        right = _Ranged(edge_files, verified)
    else:  # more documents in pairs than one planning task should hold: by bucket range of u
        right = _ranged(engine, V.verify_range, bucket_ranges(0, n_tasks, C.NODE_BUCKETS), f"{work}/edges",
                        lambda r, out: (pairs.files, r, payload, out, cfg, ctx.recipe.seed, index, v_chunks))
    clock.lap("verification")
    n_edges = sum(x["edges"] for x in right.results)
    if n_edges <= cfg.local_components_max_edges:
        label_files, rounds = [f"{work}/labels/labels-all.parquet"], 0
        comps = engine.map(components_single, [(right.files, label_files[0])], desc="near_dedup: components")
    else:
        label_files, rounds, comps = _star_rounds(engine, ranges, right.files, f"{work}/rounds")
    clock.lap("components")
    docs = [f"{work}/docs/{n}.parquet" for n in names]
    members = _ranged(engine, members_range, ranges, f"{work}/members", lambda r, out: (label_files, docs, r, out, index))
    survivors = _ranged(engine, survivors_range, ranges, f"{work}/survivors",
                        lambda r, out: (members.files, r, out), prefix="survivors")
    clock.lap("survivors")
    extra = _summary(cfg, bands, rows, cand, stats, right.results, survivors.results, rounds, n_edges)
    extra["verify_tasks"], extra["verify_chunks"], extra["verify_routed"] = len(right.files), v_chunks, bool(routing)
    extra["verify_cut_components"] = routing[0]["cut_components"] if routing else None
    laps = clock.laps
    extra["phase_seconds"] = {"signatures": laps["signatures"],
                              "candidates_and_verification": round(laps["candidates"] + laps["verification"], 3),
                              "candidates": laps["candidates"], "verification": laps["verification"],
                              "components": laps["components"], "survivors": laps["survivors"]}
    extra["phase_peak_rss_mb"] = {name: max((x.get("rss_mb", 0.0) for x in results), default=0.0) for name, results in (
        ("signatures", stats), ("candidates", pairs.results), ("verification", routing + right.results), ("components", comps),
        ("survivors", members.results + survivors.results))}
    if index is not None:
        extra["against"] = {"workdir": index.workdirs[0], "workdirs": list(index.workdirs),
                            "fingerprint": index.fingerprint,
                            "indexed_duplicates": sum(x["indexed_duplicates"] for x in survivors.results)}
    return {"survivors_dir": f"{work}/survivors"}, extra


class _Ranged:
    def __init__(self, files: list[str], results: list[dict]):
        self.files, self.results = files, results


def _ranged(engine, fn, ranges, folder, args, prefix: str = "range") -> _Ranged:
    files = [f"{folder}/{prefix}-{r[0]:03d}-{r[-1]:03d}.parquet" for r in ranges]
    results = engine.map(fn, [args(r, out) for r, out in zip(ranges, files)], desc=f"near_dedup: {fn.__name__}")
    return _Ranged(files, results)


def _star_rounds(engine, ranges, edge_files: list[str], folder: str) -> tuple[list[str], int, list[dict]]:
    """Large-star / small-star rounds until a large-star round sees the same edge set as the previous one.
    Returns the label files, the number of rounds and every task's result."""
    files = [f"{folder}/r000-{i:03d}.parquet" for i in range(len(edge_files))]
    results = engine.map(edges_to_rows, list(zip(edge_files, files)), desc="near_dedup: edges")
    previous, n = None, 0
    while True:
        n += 1
        large = _ranged(engine, star_round, ranges, f"{folder}/r{n:03d}L", lambda r, out, f=files: (f, r, "large", out))
        results += large.results
        digest = (sum(x["count"] for x in large.results), sum(int(x["sum"]) for x in large.results) % (1 << 64))
        if digest == previous:  # the last large-star input was already a star forest: label from it
            labels = _ranged(engine, star_round, ranges, f"{folder}/labels",
                             lambda r, out, f=files: (f, r, "label", out))
            return labels.files, n - 1, results + labels.results
        previous = digest
        small = _ranged(engine, star_round, ranges, f"{folder}/r{n:03d}S",
                        lambda r, out, f=large.files: (f, r, "small", out))
        results += small.results
        files = small.files


class _Clock:
    def __init__(self):
        self.start, self.laps = time.time(), {}

    def lap(self, name: str) -> None:
        now = time.time()
        self.laps[name], self.start = round(now - self.start, 3), now


def _summary(cfg, bands, rows, cand, stats, verified, survivors, rounds, n_edges) -> dict:
    audit = sorted((a for x in verified for a in x["audit"]), key=lambda a: int(a[0]))[: cfg.audit_pairs]
    exact = np.array([a[1] for a in audit])
    kept = np.array([a[2] for a in audit], bool)
    sizes: dict[str, int] = {}
    for x in survivors:
        for k, c in x["sizes"].items():
            sizes[k] = sizes.get(k, 0) + c
    below = exact < cfg.threshold
    return {
        "bands": bands, "rows": rows, "candidate_threshold": cand, "verify": cfg.verify, "index_format": INDEX_FORMAT,
        "s_curve": N.s_curve(bands, rows),
        "docs": sum(s["docs"] for s in stats), "bytes": sum(s["bytes"] for s in stats),
        "no_shingles": sum(s["no_shingles"] for s in stats),
        "signature_worker_peak_rss_mb": max((s.get("rss_mb", 0.0) for s in stats), default=0.0),
        "candidate_pairs": sum(x["candidates"] for x in verified), "edges": n_edges, "star_rounds": rounds,
        # a pair is verified (scored) unless the pairs its task accepted before already connect its documents
        "pairs_verified": sum(x.get("verified", x["candidates"]) for x in verified),
        "pairs_skipped": sum(x.get("skipped", 0) for x in verified),
        "clusters": sum(x["clusters"] for x in survivors),
        "cluster_sizes": dict(sorted(sizes.items(), key=lambda kv: int(kv[0]))),
        "audit": {
            "sampled_pairs": int(exact.size),
            "candidates_below_threshold": round(float(below.mean()), 6) if exact.size else None,
            "edges_below_threshold": round(float(below[kept].mean()), 6) if kept.any() else None,
            "jaccard_quantiles": {q: round(float(np.quantile(exact, float(q))), 6) for q in ("0.1", "0.5", "0.9")}
            if exact.size else {},
        },
    }


def run(ctx, upstream: str):
    """near_dedup's driver: its global phases (signatures, LSH, verification, components, survivors), then
    the row runner marks each part. With `near_dedup.against`, the earlier run's index is loaded once: its
    identity salts the config hash (a changed index redoes the stage) and its files feed the phases."""
    from curate.pipeline import run_row_stage

    index = load_index(ctx.recipe.near_dedup, ctx.workdir)
    return run_row_stage(ctx, upstream, "near_dedup", prepare=lambda *args: prepare(*args, index=index),
                         salt=index.fingerprint if index else "")


def check(recipe, workdir, selected, explicit, dry_run) -> None:
    """An `against` index that is missing or not comparable is refused before any work (exit 2)."""
    load_index(recipe.near_dedup, workdir)
