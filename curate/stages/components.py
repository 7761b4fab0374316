"""Connected components of an edge list, as rounds that a cluster can run without one big process.

Alternating large-star and small-star rounds (Kiveris, Lattanzi, Mirrokni, Rastogi & Vassilvitskii,
"Connected Components in MapReduce and Beyond", SoCC 2014): each round groups the edges by one endpoint
and rewrites them within each group, so a round is a shuffle plus independent per-group work. When a
large-star round followed by a small-star round leaves the edge set unchanged, every component is a
star around its smallest node, so each node's label is the smallest node of its component.

Tables of edges are numpy int64 arrays. `large_star_rows` / `small_star_rows` give the rows a round
groups (key, other), keyed so the worker can route them by `node_bucket(key)`; `large_star` /
`small_star` are the per-group reductions over any set of whole groups. `components_local` runs the
same rounds in memory (the fast path for graphs of up to a few million edges), and
`union_find_reference` is the plain textbook algorithm the tests compare against.
Memory: a round's task holds ~32 bytes per edge row of its bucket range.
"""

from __future__ import annotations

import numpy as np

from curate.stages.near_dedup import INDEX_BITS, fmix64, unique_pairs

NODE_BUCKETS = 256


def node_bucket(nodes: np.ndarray) -> np.ndarray:
    """The shuffle bucket of a node id (a hash, so consecutive ids spread over all buckets). The index flag
    and level are ignored, so an earlier run's files, grouped by its unflagged ids, are read by the same
    buckets."""
    return (fmix64((nodes & ~INDEX_BITS).astype(np.uint64)) >> np.uint64(56)).astype(np.int32)


def unique_edges(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows (u, v) sorted by (u, v)."""
    return unique_pairs(u, v)


def large_star_rows(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Large-star groups each node with all its neighbours: both directions of every edge."""
    return np.concatenate([u, v]), np.concatenate([v, u])


def small_star_rows(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Small-star groups each node with its smaller neighbours: every edge keyed by its larger end."""
    return np.maximum(u, v), np.minimum(u, v)


def _group_min(key: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows deduplicated and sorted by key, plus the minimum of {key} and its group's others, per row."""
    key, other = unique_edges(key, other)
    if key.size == 0:
        return key, other, key.copy()
    start = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
    size = np.diff(np.append(start, key.size))
    mins = np.minimum(np.minimum.reduceat(other, start), key[start])
    return key, other, np.repeat(mins, size)


def large_star(key: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each node u with neighbours N(u) and m = min(N(u) + u): edges (v, m) for v in N(u), v > u."""
    key, other, m = _group_min(key, other)
    sel = other > key
    return unique_edges(other[sel], m[sel])


def small_star(key: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each node u with smaller neighbours N(u) and m = min(N(u) + u): edges (v, m) for v in N(u) + u,
    except (m, m). Rows must come from `small_star_rows` (other < key)."""
    key, other, m = _group_min(key, other)
    if key.size == 0:
        return key, other
    first = np.concatenate([[True], key[1:] != key[:-1]])
    v = np.concatenate([other, key[first]])
    mm = np.concatenate([m, m[first]])
    sel = v != mm
    return unique_edges(v[sel], mm[sel])


def edge_set_digest(u: np.ndarray, v: np.ndarray) -> tuple[int, int]:
    """(count, order-independent 64-bit sum of hashes) of a deduplicated undirected edge set, so that the
    shards of a distributed round can be summed to test convergence without collecting the edges."""
    lo, hi = np.minimum(u, v).astype(np.uint64), np.maximum(u, v).astype(np.uint64)
    h = fmix64(fmix64(lo) ^ (hi * np.uint64(0x9E3779B97F4A7C15)))
    return int(lo.size), int(np.sum(h, dtype=np.uint64)) if lo.size else 0


def star_rounds(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(node, label) by large-star/small-star rounds in memory: what the distributed path computes,
    one bucket range per task; the tests hold it to the reference."""
    u, v = unique_edges(*small_star_rows(u, v))
    u, v = u[u != v], v[u != v]
    while True:
        before = edge_set_digest(u, v)
        u, v = large_star(*large_star_rows(u, v))
        u, v = small_star(*small_star_rows(u, v))
        if edge_set_digest(u, v) == before:
            return star_labels(u, v)


def components_local(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(node, label = smallest node of its component) in one process: hooking on labels plus pointer
    jumping (Shiloach-Vishkin style), O(log n) vectorised iterations; the fast path below
    `near_dedup.local_components_max_edges` (a 1M-node chain takes seconds, not the minute that
    in-memory star rounds need)."""
    nodes, inv = np.unique(np.concatenate([u, v]).astype(np.int64), return_inverse=True)
    a, b = inv[: u.size], inv[u.size :]
    label = np.arange(nodes.size)
    while True:
        la, lb = label[a], label[b]
        if np.array_equal(la, lb):
            return nodes, nodes[label]
        m = np.minimum(la, lb)
        np.minimum.at(label, la, m)  # hook each root to the smallest root it touches
        np.minimum.at(label, lb, m)
        while True:  # shortcut: point every node at its root
            jumped = label[label]
            if np.array_equal(jumped, label):
                break
            label = jumped


def star_labels(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels from a converged star forest: every edge joins a node to its component's smallest node."""
    leaf, center = np.maximum(u, v), np.minimum(u, v)
    nodes = np.concatenate([leaf, center])
    labels = np.concatenate([center, center])
    nodes, idx = np.unique(nodes, return_index=True)
    return nodes, labels[idx]


def union_find_reference(u, v) -> dict[int, int]:
    """node -> smallest node of its component, by union-find with path halving (tests' reference)."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(map(int, u), map(int, v)):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)  # the smaller root wins, so each root is its set's minimum
    return {x: find(x) for x in list(parent)}
