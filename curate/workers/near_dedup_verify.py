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
- By bucket range of u (`verify_range`; with an earlier run's index, or above ROUTE_MAX_PAIRS candidate
  pairs, where one planning task would hold too many): each task reads the whole payload for its v side.

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
# Up to this many candidate pairs (summed over the candidate tasks, before the ranges' repeats are
# removed) one task plans the routing (`route_plan`: ~80 bytes a pair at its peak, over a worker's ~550 MB,
# so under 1 GB); above, the pairs are verified by bucket range of u (`verify_range`), whose tasks read
# the whole payload for their v side.
ROUTE_MAX_PAIRS = 5_000_000


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
                  cfg, audit_seed: int) -> tuple[list[str], list[dict], list[dict]]:
    """Verification with each task holding whole components of the candidate graph (see `route_plan`):
    plan, then each part's payload split by task (one read of the payload), then one task per share.
    `doc_bytes`: the payload's mean bytes per document: a component of more than 2 x CHUNK_BYTES of
    shingle sets (and more than a task's share of documents) is cut, so a task's memory stays bounded.
    Returns the edge files, the plan's and routing tasks' results, and the verification tasks' results."""
    plan_out, needs = f"{work}/route/pairs.parquet", f"{work}/route/needs.parquet"
    cap = int(2 * CHUNK_BYTES / max(doc_bytes, 1.0))
    results = engine.map(route_plan, [(pair_files, n_tasks, cap, plan_out, needs)], desc="near_dedup: route pairs")
    routed = [f"{work}/route/payload-{parts.part_index(Path(f).name):05d}.parquet" for f in payload_files]
    results += engine.map(route_part, [(f, needs, r) for f, r in zip(payload_files, routed)],
                          desc="near_dedup: route payload")
    edges = [f"{work}/edges/task-{t:03d}.parquet" for t in range(n_tasks)]
    verified = engine.map(verify_task, [(plan_out, routed, t, out, cfg, audit_seed) for t, out in enumerate(edges)],
                          desc="near_dedup: verify")
    return edges, results, verified


def route_plan(pair_files: list[str], n_tasks: int, cap: int, out_pairs: str, out_needs: str) -> dict:
    """The distinct candidate pairs grouped by verification task, and which task needs which document's
    shingles (grouped by part). A task gets whole components of the candidate graph, packed by size
    (largest first, onto the least loaded task): every pair of a component is verified in one task, in
    (u, v) order, so which pairs are skipped no longer depends on the number of tasks, and a document's
    shingles are read by one task. A component of more than `cap` documents and more than a task's share
    is cut into slices of that size; a pair goes to its u's task, which also gets v's shingles."""
    def run() -> dict:
        t = _read(pair_files, list(range(C.NODE_BUCKETS)))
        if t is None:
            t = pa.table({"u": pa.array([], pa.int64()), "v": pa.array([], pa.int64())})
        n = t.num_rows
        nodes, rank = np.unique(np.concatenate([t["u"].to_numpy(), t["v"].to_numpy()]), return_inverse=True)
        del t
        key = np.unique(rank[:n].astype(np.int64) * nodes.size + rank[n:])  # distinct pairs, (u, v) order
        del rank
        a, b = key // max(nodes.size, 1), key % max(nodes.size, 1)
        task_of, cut = assign_tasks(a, b, nodes.size, n_tasks, cap)
        task = task_of[a]
        need = np.unique(np.concatenate([a, b]) * n_tasks + np.concatenate([task, task]))  # (doc, task) once
        doc = nodes[need // n_tasks]
        _write(out_needs, pa.table({"doc": doc, "task": (need % n_tasks).astype(np.int32)}),
               key=(doc >> 32).astype(np.int32))
        _write(out_pairs, pa.table({"u": nodes[a], "v": nodes[b]}), key=task.astype(np.int32))
        return {"pairs": int(key.size), "docs": int(nodes.size), "shipped": int(need.size), "cut_components": cut}

    return _once(out_pairs, run)


def assign_tasks(a: np.ndarray, b: np.ndarray, n: int, n_tasks: int, cap: int) -> tuple[np.ndarray, int]:
    """(the task of each of n nodes, the number of components cut) for the edges (a, b) among nodes
    0..n-1, as route_plan describes: deterministic for the same edges, tasks and cap."""
    from curate.stages import near_dedup_kernels as K

    if not n:
        return np.zeros(0, np.int64), 0
    root = K.component_roots(a.astype(np.int64), b.astype(np.int64), n)
    sizes = np.bincount(root, minlength=n)
    cap = max(1, cap, -(-n // n_tasks))
    order = np.argsort(root, kind="stable")  # by component, then by node
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - (np.cumsum(sizes) - sizes)[root[order]]
    units, unit_of, unit_size = np.unique(root * (n + 1) + rank // cap, return_inverse=True, return_counts=True)
    load, task_of_unit = np.zeros(n_tasks, np.int64), np.zeros(units.size, np.int64)
    for k in np.lexsort((units, -unit_size)):  # largest first, ties by unit: a fixed order
        t = int(np.argmin(load))
        task_of_unit[k], load[t] = t, load[t] + unit_size[k]
    return task_of_unit[unit_of], int((sizes > cap).sum())


def route_part(payload_file: str, needs_file: str, out: str) -> dict:
    """One part's shingle sets, each written once for every task that needs it, grouped by task."""
    def run() -> dict:
        index = parts.part_index(Path(payload_file).name)
        needs = parts.read_groups(needs_file, [index])
        payload = parts.read_groups(payload_file, list(range(C.NODE_BUCKETS))).drop_columns(["bucket"])
        routed = payload.take(pc.index_in(needs["doc"], value_set=payload["doc"]))
        _write(out, routed, key=needs["task"].to_numpy())
        return {"rows": routed.num_rows}

    return _once(out, run)


def verify_task(pairs_file: str, routed_files: list[str], task: int, out: str, cfg, audit_seed: int) -> dict:
    """One task's pairs, verified against the shingle sets routed to it (all its pairs' documents)."""
    def run() -> dict:
        t = parts.read_groups(pairs_file, [task])
        u, v = N.unique_pairs(t["u"].to_numpy(), t["v"].to_numpy())  # (u, v) order
        perm = cfg.num_perm if cfg.verify == "signature" else 0
        side = _store([parts.read_groups(f, [task]) for f in routed_files], [], perm)
        audit, h = audit_mask(u, v, cfg.audit_pairs, audit_seed)
        state, exact = verify_chunked(u, v, side, lambda bs, docs: side, 1, cfg, audit) if u.size else (
            np.zeros(0, np.int8), np.zeros(0))
        return _accepted(out, u, v, state, exact, audit, h)

    return _once(out, run)
