"""near_dedup's verification phase: candidate pairs of a node-bucket range of u -> the pairs accepted as edges.

Input: the pair files of `candidates_range` (grouped by the node bucket of u) and the shingle payloads of
`signature_part` (grouped by the node bucket of the document): each document's shingle hashes sorted and
without repeats (computed once, at signature time), plus its signature with `verify: signature`.
Output: the accepted pairs (u, v), grouped by the bucket of u, read by the components phase; and per
task the counts and the audit sample the manifest sums.

Two ways to split the pairs into tasks, with the same result:
- Routed (the default; `verify_routed`): one task finds the components of the candidate graph and packs
  whole components onto tasks (`route_plan`); each part's payload is read once and split by task
  (`route_part`); each task then reads only the shingle sets of its own documents (`verify_task`). So
  the payload is read twice in all, not once per task, and a component's pairs meet one union-find:
  which pairs are skipped does not depend on the number of tasks (unless a component larger than a
  task's memory bound is cut).
  With an earlier run's index the indexed documents' shingle sets are routed from its payload files
  too. The planner's memory follows the documents in pairs, not the pairs (it streams the pair files).
- By bucket range of u (`verify_range`; above ROUTE_MAX_DOCS documents, where one planning task would
  hold too many): each task reads the whole payload for its v side.

How a `verify_range` task works, and why (the merge, the skipping and the audit are the same in both):
- Its pairs are deduplicated and sorted by (u, v); the v side is cut into `v_chunks` contiguous bucket
  ranges, and the pairs are processed chunk by chunk, in (u, v) order inside a chunk: a fixed order.
- Each shingle set is read and unpacked once per task: the u side (this task's own buckets) once for
  the task, the v side once per chunk, each cut down to the documents its pairs name as soon as a part's
  groups are read. Memory is then bounded by the task's share of the payload plus one chunk, whatever
  the number of pairs (a document in 300 pairs is held once, not 300 times).
- A pair is scored by one linear merge of two sorted arrays (near_dedup_kernels.verify_pairs), and only
  if its documents are not already connected by the pairs this task accepted so far (a union-find):
  the components are the same, since a skipped pair could only join what is already joined, and a pair
  below the threshold joins nothing. A cluster of n copies costs about n merges instead of n^2/2.
  Which pairs are skipped depends on how the pairs are split into tasks (the bucket ranges), so the
  manifest's `edges`, `pairs_verified` and `pairs_skipped` may differ between machines; clusters,
  survivors and dropped ids never do.
- The audit sample (the `audit_pairs` pairs of smallest pair hash, as before) always gets its exact
  Jaccard and its decision, skipped or not, so the manifest's audit means what it did.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate import parts
from curate.stages import components as C
from curate.stages import near_dedup as N
from curate.workers.near_dedup_files import _flagged, _once, _read, _write

MODES = {"exact": 0, "signature": 1, "none": 2}
SKIPPED, REJECTED, ACCEPTED, AUDIT_REJECTED, AUDIT_ACCEPTED = range(5)  # verify_pairs' states
# The payload one chunk of the v side (and a task's own u side) may hold: the phase makes enough tasks
# and chunks for this bound (`plan`), so a verification worker stays well under 1 GB.
CHUNK_BYTES = 96 << 20
# Up to this many documents (this run's and an index's, or twice the candidate pairs if fewer) one task
# plans the routing (`route_plan`: ~100 bytes per document in pairs over ~0.4 GB, measured 0.79 GB at 4.0 M
# and 1.16 GB at 7.7 M documents with 19 M pairs, so under 1 GB here); above, the pairs are verified by
# bucket range of u (`verify_range`), whose tasks read the whole payload for their v side.
ROUTE_MAX_DOCS = 5_000_000


def plan(payload_bytes: int, cpu_ranges: int, buckets: int) -> tuple[int, int]:
    """(tasks, v_chunks): at least one task per CPU range, and enough of both that a task's own share and
    one chunk of the v side each hold about CHUNK_BYTES of payload at most."""
    need = max(1, -(-payload_bytes // CHUNK_BYTES))
    return min(buckets, max(cpu_ranges, need)), min(buckets, need)


@dataclass
class Shingles:
    """Shingle sets of some documents: the sets of row i are vals[off[i]:off[i + 1]]; one extra empty row
    at the end stands for a document without a payload (scored as an empty set, as before)."""

    doc: np.ndarray  # node ids, in row order
    order: np.ndarray  # argsort of doc
    off: np.ndarray
    vals: np.ndarray
    sig: np.ndarray  # [rows + 1, num_perm] uint32 with verify: signature, else [0, 1]

    def rows(self, nodes: np.ndarray) -> np.ndarray:
        sorted_doc = self.doc[self.order]
        at = np.minimum(np.searchsorted(sorted_doc, nodes), max(self.doc.size - 1, 0))
        found = sorted_doc[at] == nodes if self.doc.size else np.zeros(nodes.size, bool)
        return np.where(found, self.order[at] if self.doc.size else 0, self.doc.size).astype(np.int64)


def load_shingles(files, buckets, docs: np.ndarray, indexed=(), num_perm: int = 0) -> Shingles:
    """The payload rows of `docs` from the groups `buckets` of `files` (and of earlier runs' index files,
    (path, level) pairs, their ids flagged): one file's groups are read, then cut to `docs` at once."""
    want = pa.array(np.unique(docs), pa.int64())
    tables = [parts.read_groups(f, buckets) for f in files]
    tables = [t.filter(pc.is_in(t["doc"], value_set=want)) for t in tables if t.num_rows]
    old = []
    for f, level in indexed:  # as large as that run: one group at a time
        for g in parts.iter_groups(f, buckets):
            g = _flagged(g, level)
            old.append(g.filter(pc.is_in(g["doc"], value_set=want)))
    return _store(tables, old, num_perm)


def _store(tables: list[pa.Table], old: list[pa.Table], num_perm: int) -> Shingles:
    cols = ["doc", "shingles"] + (["sig"] if num_perm else [])
    tables = [t.select(cols) for t in tables + old if t.num_rows]
    if not tables:
        t = pa.table({"doc": pa.array([], pa.int64()), "shingles": pa.array([], pa.large_list(pa.uint64()))})
    else:
        t = pa.concat_tables(tables, promote_options="default")
    lists = t["shingles"].combine_chunks()
    counts = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    vals = pc.list_flatten(lists).to_numpy(zero_copy_only=False).astype(np.uint64, copy=False)
    if old:  # an earlier version wrote index payloads in text order with repeats; merges need sets
        vals, counts = N.sorted_sets(vals, counts)
    off = np.concatenate([[0], np.cumsum(counts), [counts.sum()]]).astype(np.int64)
    doc = t["doc"].to_numpy()
    sig = np.zeros((0, 1), np.uint32)
    if num_perm:
        flat = pc.list_flatten(t["sig"].combine_chunks()).to_numpy(zero_copy_only=False)
        sig = np.concatenate([flat.reshape(-1, num_perm), np.full((1, num_perm), N.MAX_HASH32, np.uint32)])
    return Shingles(doc, np.argsort(doc, kind="stable"), off, vals, np.ascontiguousarray(sig, np.uint32))


def audit_mask(u: np.ndarray, v: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(mask of the n pairs with the smallest pair hash, the hashes): a deterministic sample whose union over
    tasks, cut to the n smallest again, is the same sample whatever the number of tasks."""
    h = N.fmix64(N.fmix64(u.astype(np.uint64) ^ np.uint64(seed)) ^ v.astype(np.uint64))
    mask = np.zeros(u.size, bool)
    mask[np.argsort(h, kind="stable")[:n]] = True
    return mask, h


def verify_chunked(u, v, u_side: Shingles, load_v, v_chunks: int, cfg, audit: np.ndarray):
    """(state, exact) of every pair (u, v) (sorted by (u, v)), processed chunk of v buckets by chunk with
    one union-find over the task's documents. `load_v(buckets, docs)` gives the Shingles of a chunk."""
    from curate.stages import near_dedup_kernels as K

    nodes, inv = np.unique(np.concatenate([u, v]), return_inverse=True)
    a, b = inv[: u.size].astype(np.int64), inv[u.size :].astype(np.int64)
    parent = np.arange(nodes.size, dtype=np.int64)
    state, exact = np.zeros(u.size, np.int8), np.full(u.size, np.nan)
    vb = C.node_bucket(v)
    ra = u_side.rows(u)
    bounds = [round(i * C.NODE_BUCKETS / v_chunks) for i in range(v_chunks + 1)]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        sel = np.flatnonzero((vb >= lo) & (vb < hi))
        if not sel.size:
            continue
        v_side = load_v(list(range(lo, hi)), v[sel])
        st, ex = np.zeros(sel.size, np.int8), np.full(sel.size, np.nan)
        K.verify_pairs(a[sel], b[sel], ra[sel], v_side.rows(v[sel]), u_side.off, u_side.vals, v_side.off,
                       v_side.vals, u_side.sig, v_side.sig, MODES[cfg.verify], float(cfg.threshold), audit[sel],
                       parent, ex, st)
        state[sel], exact[sel] = st, ex
        del v_side
    return state, exact


def verify_range(pair_files: list[str], buckets: list[int], payload_files: list[str], out: str, cfg,
                 audit_seed: int, index=None, v_chunks: int = 1) -> dict:
    """The accepted pairs of this range of u (see the module docstring). v may be a document of an earlier
    run's index (u never is), so its payload is read from there too."""
    def run() -> dict:
        t = _read(pair_files, buckets)
        u, v = (np.zeros(0, np.int64),) * 2 if t is None else N.unique_pairs(t["u"].to_numpy(), t["v"].to_numpy())
        del t
        perm = cfg.num_perm if cfg.verify == "signature" else 0
        audit, h = audit_mask(u, v, cfg.audit_pairs, audit_seed)
        state, exact = np.zeros(0, np.int8), np.zeros(0)
        indexed = index.payload if index is not None else ()
        if u.size and v_chunks == 1:  # everything fits: one read of the payload serves both sides
            both = load_shingles(payload_files, list(range(C.NODE_BUCKETS)), np.concatenate([u, v]), indexed, perm)
            state, exact = verify_chunked(u, v, both, lambda bs, docs: both, 1, cfg, audit)
        elif u.size:
            u_side = load_shingles(payload_files, buckets, u, num_perm=perm)
            state, exact = verify_chunked(u, v, u_side, lambda bs, docs: load_shingles(
                payload_files, bs, docs, indexed, perm), v_chunks, cfg, audit)
        return _accepted(out, u, v, state, exact, audit, h)

    return _once(out, run)


def _accepted(out: str, u, v, state, exact, audit, h) -> dict:
    """Writes the accepted pairs (by bucket of u, as the components phase reads them); the task's counts."""
    keep = state == ACCEPTED
    _write(out, pa.table({"u": u[keep], "v": v[keep]}), "u")
    take = np.flatnonzero(audit)
    take = take[np.argsort(h[take], kind="stable")]
    scored = int(((state == REJECTED) | (state == ACCEPTED)).sum())
    return {"candidates": int(u.size), "edges": int(keep.sum()), "verified": scored, "skipped": int(u.size - scored),
            "audit": [[str(h[i]), round(float(exact[i]), 6), bool(state[i] in (ACCEPTED, AUDIT_ACCEPTED))]
                      for i in take]}


# ---------------------------------------------------------------------------------------------- routed
def verify_routed(engine, work: str, pair_files: list[str], payload_files: list[str], n_tasks: int, doc_bytes: float,
                  cfg, audit_seed: int, index=None) -> tuple[list[str], list[dict], list[dict]]:
    """Verification with each task holding whole components of the candidate graph (see `route_plan`):
    plan, then each part's payload split by task (one read of the payload; with `index`, the earlier runs'
    payload files too, their ids flagged), then one task per share. `doc_bytes`: the payload's mean bytes
    per document: a component of more than 2 x CHUNK_BYTES of shingle sets (and more than a task's share
    of documents) is cut, so a task's memory stays bounded. Returns the edge files, the plan's and routing
    tasks' results, and the verification tasks' results."""
    plan_out, needs = f"{work}/route/plan", f"{work}/route/needs.parquet"
    cap = int(2 * CHUNK_BYTES / max(doc_bytes, 1.0))
    results = engine.map(route_plan, [(pair_files, n_tasks, cap, plan_out, needs)], desc="near_dedup: route pairs")
    sources = [(f, None) for f in payload_files] + list(index.payload if index is not None else ())
    routed = [f"{work}/route/payload-{'' if level is None else f'L{level:02d}-'}{parts.part_index(Path(f).name):05d}.parquet"
              for f, level in sources]
    results += engine.map(route_part, [(f, needs, r, level) for (f, level), r in zip(sources, routed)],
                          desc="near_dedup: route payload")
    edges = [f"{work}/edges/task-{t:03d}.parquet" for t in range(n_tasks)]
    own = [r for (f, level), r in zip(sources, routed) if level is None]
    old = [r for (f, level), r in zip(sources, routed) if level is not None]
    verified = engine.map(verify_task, [(results[0]["pair_files"], own, old, t, out, cfg, audit_seed)
                                        for t, out in enumerate(edges)], desc="near_dedup: verify")
    return edges, results, verified


# Distinct pairs the planner holds at once while it writes them out by task (~40 bytes each).
ROUTE_CHUNK_PAIRS = 1_000_000


def route_plan(pair_files: list[str], n_tasks: int, cap: int, out: str, out_needs: str) -> dict:
    """The candidate pairs grouped by verification task (files `out-NNNNN.parquet`), and which task needs
    which document's shingles (grouped by part). A task gets whole components of the candidate graph,
    packed by size (largest first, onto the least loaded task): every pair of a component is verified in
    one task, in (u, v) order, so which pairs are skipped does not depend on the number of tasks, and a
    document's shingles are read by one task. A component of more than `cap` documents and more than a
    task's share is cut into slices of that size; a pair goes to its u's task, which also gets v's shingles.

    Memory follows the documents, not the pairs: the pair files are read group by group, three times
    (the distinct nodes; a union-find over node indices; the pairs written out by task, at most
    ROUTE_CHUNK_PAIRS at once), and only per-document arrays are held across groups."""
    from curate.stages import near_dedup_kernels as K

    def run() -> dict:
        nodes = _distinct_nodes(pair_files)
        table = K.index_table(nodes)  # node id -> its index in nodes (sorted: the same roots as one sort)
        parent = np.arange(nodes.size, dtype=np.int64)
        for u, v in _pair_groups(pair_files):
            K.unite(parent, K.lookup(table, nodes, u), K.lookup(table, nodes, v))
        task_of, cut = pack_components(K.flatten(parent), n_tasks, cap)
        del parent
        own, cross = np.zeros(nodes.size, bool), _IntSet()
        files, buf, held, read = [], [], 0, 0
        for u, v in _pair_groups(pair_files):
            a, b = K.lookup(table, nodes, u), K.lookup(table, nodes, v)
            task = task_of[a]
            same = task_of[b] == task
            own[a], own[b[same]] = True, True
            cross.add(b[~same] * n_tasks + task[~same])  # a cut component: v's set shipped to u's task
            buf.append(a * nodes.size + b)
            held, read = held + u.size, read + u.size
            if held >= ROUTE_CHUNK_PAIRS:
                files.append(_write_routed(out, len(files), buf, nodes, task_of))
                buf, held = [], 0
        if buf or not files:
            files.append(_write_routed(out, len(files), buf, nodes, task_of))
        i = np.flatnonzero(own)
        need = np.unique(np.concatenate([i * n_tasks + task_of[i], cross.values()]))  # (doc, task), once each
        doc = nodes[need // n_tasks]
        _write(out_needs, pa.table({"doc": doc, "task": (need % n_tasks).astype(np.int32)}),
               key=(doc >> 32).astype(np.int32))
        return {"pairs_read": read, "pair_files": files, "docs": int(nodes.size), "shipped": int(need.size),
                "cut_components": cut}

    return _once(out, run)


def _pair_groups(pair_files: list[str]):
    """(u, v) of the candidate pair files, one group (one node bucket of u of one file) at a time."""
    for f in pair_files:
        for g in parts.iter_groups(f, range(C.NODE_BUCKETS)):
            if g.num_rows:
                yield g["u"].to_numpy().astype(np.int64), g["v"].to_numpy().astype(np.int64)


class _IntSet:
    """Distinct int64 values (>= 0) in the compiled hash set of `near_dedup_kernels.distinct_add`: memory by
    the distinct values, whatever the number of repeats added."""

    def __init__(self):
        self.table, self.seen, self.count = np.full(1 << 16, -1, np.int64), np.empty(1 << 15, np.int64), 0

    def add(self, values: np.ndarray) -> None:
        from curate.stages import near_dedup_kernels as K

        self.table, self.seen, self.count = K.distinct_add(self.table, self.seen, self.count, values)

    def values(self) -> np.ndarray:
        """The distinct values, in the order they first came."""
        return self.seen[:self.count]


def _distinct_nodes(pair_files: list[str]) -> np.ndarray:
    """The node ids of the pair files, sorted."""
    nodes = _IntSet()
    for u, v in _pair_groups(pair_files):
        nodes.add(u)
        nodes.add(v)
    return np.sort(nodes.values())


def _write_routed(out: str, k: int, buf: list, nodes: np.ndarray, task_of: np.ndarray) -> str:
    """One file of distinct pairs (keys a * n + b of their node indices), grouped by task (repeats of a
    pair in other files are removed by its task, which gets them all: a pair's task is its u's)."""
    key = np.unique(np.concatenate(buf)) if buf else np.zeros(0, np.int64)
    a, b = key // max(nodes.size, 1), key % max(nodes.size, 1)
    path = f"{out}-{k:05d}.parquet"
    _write(path, pa.table({"u": nodes[a], "v": nodes[b]}), key=task_of[a].astype(np.int32))
    return path


def assign_tasks(a: np.ndarray, b: np.ndarray, n: int, n_tasks: int, cap: int) -> tuple[np.ndarray, int]:
    """(the task of each of n nodes, the number of components cut) for the edges (a, b) among nodes
    0..n-1, as route_plan describes: deterministic for the same edges, tasks and cap."""
    from curate.stages import near_dedup_kernels as K

    if not n:
        return np.zeros(0, np.int64), 0
    return pack_components(K.component_roots(a.astype(np.int64), b.astype(np.int64), n), n_tasks, cap)


def pack_components(root: np.ndarray, n_tasks: int, cap: int) -> tuple[np.ndarray, int]:
    """(the task of each node, the number of components cut) given each node's component (its smallest
    node): components cut into slices of at most max(cap, ceil(n / tasks)) nodes, packed largest first."""
    n = root.size
    if not n:
        return np.zeros(0, np.int64), 0
    sizes = np.bincount(root, minlength=n)
    cap = max(1, cap, -(-n // n_tasks))
    order = np.argsort(root, kind="stable")  # by component, then by node
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - (np.cumsum(sizes) - sizes)[root[order]]
    del order
    units, unit_of, unit_size = np.unique(root * (n + 1) + rank // cap, return_inverse=True, return_counts=True)
    load, task_of_unit = np.zeros(n_tasks, np.int64), np.zeros(units.size, np.int64)
    for k in np.lexsort((units, -unit_size)):  # largest first, ties by unit: a fixed order
        t = int(np.argmin(load))
        task_of_unit[k], load[t] = t, load[t] + unit_size[k]
    return task_of_unit[unit_of], int((sizes > cap).sum())


def route_part(payload_file: str, needs_file: str, out: str, level: int | None = None) -> dict:
    """One part's shingle sets, each written once for every task that needs it, grouped by task. `level`:
    the part is an earlier run's (`near_dedup.against`), its node ids flagged with that level."""
    def run() -> dict:
        index = parts.part_index(Path(payload_file).name)
        key = index if level is None else int(N.index_nodes(np.array([index << 32], np.int64), level)[0] >> 32)
        needs = parts.read_groups(needs_file, [key])
        wanted = list(range(C.NODE_BUCKETS)) if needs.num_rows else []  # a part none of whose sets is needed: not read
        payload = parts.read_groups(payload_file, wanted).drop_columns(["bucket"])
        if level is not None:
            payload = _flagged(payload, level)
        routed = payload.take(pc.index_in(needs["doc"], value_set=payload["doc"]))
        _write(out, routed, key=needs["task"].to_numpy())
        return {"rows": routed.num_rows}

    return _once(out, run)


def verify_task(pair_files: list[str], routed_files: list[str], routed_old: list[str], task: int, out: str, cfg,
                audit_seed: int) -> dict:
    """One task's pairs, verified against the shingle sets routed to it (all its pairs' documents);
    `routed_old`: those routed from earlier runs' indexes."""
    def run() -> dict:
        t = pa.concat_tables([parts.read_groups(f, [task]) for f in pair_files])
        u, v = N.unique_pairs(t["u"].to_numpy(), t["v"].to_numpy())  # (u, v) order
        del t
        perm = cfg.num_perm if cfg.verify == "signature" else 0
        side = _store([parts.read_groups(f, [task]) for f in routed_files],
                      [parts.read_groups(f, [task]) for f in routed_old], perm)
        audit, h = audit_mask(u, v, cfg.audit_pairs, audit_seed)
        state, exact = verify_chunked(u, v, side, lambda bs, docs: side, 1, cfg, audit) if u.size else (
            np.zeros(0, np.int8), np.zeros(0))
        return _accepted(out, u, v, state, exact, audit, h)

    return _once(out, run)
