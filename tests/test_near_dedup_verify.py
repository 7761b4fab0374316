"""near_dedup's verification (curate/workers/near_dedup_verify.py) against the implementation it replaced.

The reference is what near_dedup did before: every candidate pair scored by exact Jaccard (`old_jaccard`,
the former vectorised sort of both sides per pair, kept here verbatim in spirit; and Python sets of the
shingle strings), edges = pairs at or above the threshold, components by plain union-find, survivor =
the smallest id of each component (no ranking metadata in these corpora). The new path merges sorted
sets and skips pairs whose documents are already connected; its clusters, survivors and dropped ids
must be identical, on the planted-family corpus and on a corpus with one 300-member cluster, with one
verification task and with many tasks and chunks.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.recipe import NearDedupConfig
from curate.stages import near_dedup as N
from curate.stages import near_dedup_kernels as K
from curate.stages.components import union_find_reference
from curate.workers import near_dedup_verify as V
from tests.helpers import read_parts
from tests.test_near_dedup_pipeline import VOCAB, corpus, mutate, run_corpus


def old_jaccard(a: pa.ListArray, b: pa.ListArray) -> np.ndarray:
    """The former `near_dedup.jaccard`: per pair, one sort of every (pair, hash, side) of both sides."""
    na = pc.list_value_length(a).to_numpy(zero_copy_only=False).astype(np.int64)
    nb = pc.list_value_length(b).to_numpy(zero_copy_only=False).astype(np.int64)
    pair = np.concatenate([np.repeat(np.arange(na.size), na), np.repeat(np.arange(nb.size), nb)])
    vals = np.concatenate([pc.list_flatten(a).to_numpy(), pc.list_flatten(b).to_numpy()]).astype(np.uint64)
    side = np.concatenate([np.zeros(int(na.sum()), np.int8), np.ones(int(nb.sum()), np.int8)])
    order = np.lexsort((side, vals, pair))
    pair, vals, side = pair[order], vals[order], side[order]
    if pair.size == 0:
        return np.zeros(na.size)
    start = np.flatnonzero(np.concatenate([[True], (pair[1:] != pair[:-1]) | (vals[1:] != vals[:-1])]))
    last = np.append(start[1:], pair.size) - 1
    both = (side[start] == 0) & (side[last] == 1)
    union = np.bincount(pair[start], minlength=na.size).astype(np.int64)
    inter = np.bincount(pair[start][both], minlength=na.size).astype(np.int64)
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


hash_lists = st.lists(st.sampled_from([0, 1, 2, 3, 2**63, 2**64 - 1]) | st.integers(0, 2**64 - 1), max_size=40)


@settings(max_examples=300, deadline=None)
@given(hash_lists, hash_lists)
def test_merge_intersection_equals_python_sets(a, b):
    """Property: |set(a) & set(b)| by one merge of the sorted, repeat-free forms, for any lists of 64-bit
    hashes (empty, one element, repeats, the extreme values)."""
    (sa, ca), (sb, _) = N.sorted_sets(np.array(a, np.uint64), np.array([len(a)])), N.sorted_sets(
        np.array(b, np.uint64), np.array([len(b)]))
    assert sa.tolist() == sorted(set(a)) and ca.tolist() == [len(set(a))]
    assert K.intersection_size(sa, sb) == len(set(a) & set(b))


def test_sorted_sets_equal_the_reference_shingle_sets():
    """Per document, the payload (`shingle_sets`) is exactly `shingle_hashes(unique=True)`, the lexsort form."""
    rng = random.Random(3)
    docs = [" ".join(rng.choice(VOCAB[:30]) for _ in range(rng.randint(0, 60))) for _ in range(200)] + ["", "a"]
    vals, counts = N.shingle_sets(docs, 5)
    doc, h = N.shingle_hashes(docs, 5, unique=True)
    assert np.array_equal(vals, h) and np.array_equal(counts, np.bincount(doc, minlength=len(docs)))


def _verify(sets: list[list[int]], pairs: list[tuple[int, int]], threshold: float, chunks: int = 1, mode="exact"):
    """verify_chunked on documents 0..n-1 with the given shingle sets; pairs sorted as a task sorts them."""
    vals, counts = N.sorted_sets(np.array([x for s in sets for x in s], np.uint64), np.array([len(s) for s in sets]))
    t = pa.table({"doc": np.arange(len(sets), dtype=np.int64), "shingles": pa.LargeListArray.from_arrays(
        pa.array(np.concatenate([[0], np.cumsum(counts)]), pa.int64()), pa.array(vals, pa.uint64()))})
    side = V._store([t], [], 0)
    u, v = N.unique_pairs(np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]))
    cfg = NearDedupConfig(threshold=threshold, verify=mode)
    state, exact = V.verify_chunked(u, v, side, lambda bs, docs: side, chunks, cfg, np.zeros(u.size, bool))
    return list(zip(u.tolist(), v.tolist())), state.tolist()


def test_a_rejected_pair_never_joins_anything():
    """Documents 0 and 1 are near duplicates (J = 0.9); 2 is below the threshold with both. Processed in
    (u, v) order: (0, 1) is accepted, (0, 2) and (1, 2) are rejected. If a rejected pair's union were
    taken (the candidate graph instead of the verified one), (1, 2) would be skipped as connected and 2
    would join the cluster: it must be verified, and rejected."""
    base = list(range(100))
    sets = [base, base[:90] + list(range(1000, 1010)), base[:50] + list(range(2000, 2050))]
    pairs, state = _verify(sets, [(1, 2), (0, 2), (0, 1)], 0.7)
    assert pairs == [(0, 1), (0, 2), (1, 2)]
    assert state == [V.ACCEPTED, V.REJECTED, V.REJECTED]


def test_a_pair_is_skipped_only_when_accepted_pairs_connect_it():
    """A chain 0-1 (J 0.9), 1-2 (J 0.9) and 0-2 (J ~0.8 < 0.85): the pair (0, 2) is below the threshold but its
    documents are connected by two accepted pairs, so skipping it changes no component (the old path
    also put all three in one cluster); the chain 3-4 rejected leaves (3, 5) to be verified."""
    base = list(range(100))
    sets = [base, base[5:] + list(range(500, 505)), base[10:] + list(range(500, 510)),
            list(range(300, 400)), list(range(600, 700)), list(range(300, 395)) + [7000]]
    pairs, state = _verify(sets, [(0, 1), (1, 2), (0, 2), (3, 4), (4, 5), (3, 5)], 0.85)
    assert pairs == [(0, 1), (0, 2), (1, 2), (3, 4), (3, 5), (4, 5)]
    # (0, 2) is verified first (order (u, v)) and rejected at ~0.82; (1, 2) then joins 2
    assert state == [V.ACCEPTED, V.REJECTED, V.ACCEPTED, V.REJECTED, V.ACCEPTED, V.REJECTED]
    pairs, state = _verify(sets[:3], [(0, 1), (0, 2), (1, 2)], 0.8)  # at 0.8 (0, 2) joins; (1, 2) is skipped
    assert state == [V.ACCEPTED, V.ACCEPTED, V.SKIPPED]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32), st.sampled_from([1, 3]), st.sampled_from(["exact", "none"]))
def test_skipping_keeps_the_components_of_all_verified_pairs(seed, chunks, mode):
    """Property: on random families of overlapping sets and random candidate pairs, the components of the
    accepted pairs equal the components of every candidate pair the old path accepted (`old_jaccard`
    >= threshold, or all of them with verify: none), whatever the number of v chunks."""
    rng = random.Random(seed)
    sets = []
    for _ in range(rng.randint(1, 6)):
        base = [rng.randrange(1 << 40) for _ in range(rng.randint(0, 40))]
        sets += [[x for x in base if rng.random() > rng.choice([0.02, 0.2, 0.5])] for _ in range(rng.randint(1, 8))]
    n = len(sets)
    pairs = sorted({(min(a, b), max(a, b)) for a, b in ((rng.randrange(n), rng.randrange(n)) for _ in range(3 * n)) if a != b})
    if not pairs:
        return
    lists = pa.array(sets, pa.large_list(pa.uint64()))
    old = old_jaccard(lists.take([p[0] for p in pairs]), lists.take([p[1] for p in pairs]))
    accepted = [p for p, j in zip(pairs, old) if j >= 0.7 or mode == "none"]
    got, state = _verify(sets, pairs, 0.7, chunks, mode)
    edges = [p for p, s in zip(got, state) if s == V.ACCEPTED]
    assert _groups(edges, n) == _groups(accepted, n)


def _groups(edges, n) -> set:
    labels = union_find_reference([e[0] for e in edges] + list(range(n)), [e[1] for e in edges] + list(range(n)))
    out: dict = {}
    for node, label in labels.items():
        out.setdefault(label, set()).add(node)
    return {frozenset(g) for g in out.values() if len(g) > 1}


# ---------------------------------------------------------------------------------------------- end to end
def big_cluster_corpus(seed: int = 5) -> list[str]:
    """One file copied 300 times with 0-2 % of its tokens edited (one cluster, LSH buckets far above
    max_bucket_docs), plus 100 unrelated documents."""
    rng = random.Random(seed)
    base = [rng.choice(VOCAB) for _ in range(300)]
    docs = [" ".join(mutate(base, rng.choice([0.0, 0.005, 0.01, 0.02]), rng)) for _ in range(300)]
    docs += [" ".join(rng.choice(VOCAB) for _ in range(rng.randint(100, 300))) for _ in range(100)]
    rng.shuffle(docs)
    return docs


def reference(work: Path, docs: list[str], threshold: float) -> tuple[dict, set]:
    """(doc index -> survivor's id, dropped doc indices) as the old path made them: this run's candidate
    pairs, each scored by exact Jaccard of Python sets of its shingle strings."""
    ids = pa.concat_tables(pq.read_table(f, columns=["doc", "id"]) for f in sorted((work / "near_dedup/_work/docs").glob("*.parquet")))
    node_id = dict(zip(ids["doc"].to_pylist(), ids["id"].to_pylist()))
    pairs = pa.concat_tables(pq.read_table(f, columns=["u", "v"]) for f in sorted((work / "near_dedup/_work/pairs").glob("*.parquet")))
    index = lambda node: int(node_id[node].split("/")[-1][1:])  # noqa: E731
    sets = {i: N.shingles(d, 5) for i, d in enumerate(docs)}
    edges = [(index(u), index(v)) for u, v in zip(pairs["u"].to_pylist(), pairs["v"].to_pylist())
             if len(sets[index(u)] & sets[index(v)]) / max(len(sets[index(u)] | sets[index(v)]), 1) >= threshold]
    labels = union_find_reference([e[0] for e in edges], [e[1] for e in edges])
    name = {index(n): i for n, i in node_id.items()}
    members: dict = {}
    for doc, label in labels.items():
        members.setdefault(label, []).append(doc)
    survivor = {doc: min(name[m] for m in group) for group in members.values() for doc in group}
    return survivor, {doc for doc, s in survivor.items() if name[doc] != s}


def observed(work: Path) -> tuple[dict, set]:
    kept, dropped = read_parts(work / "near_dedup"), read_parts(work / "near_dedup" / "dropped")
    index = lambda i: int(i.split("/")[-1][1:])  # noqa: E731
    labels = {index(r["id"]): r["minhash_cluster"] for r in kept.select(["id", "minhash_cluster"]).to_pylist()
              if r["minhash_cluster"] is not None}
    labels.update({index(r["id"]): r["drop_detail"] for r in dropped.select(["id", "drop_detail"]).to_pylist()})
    return labels, {index(i) for i in dropped["id"].to_pylist()}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["planted", "cluster300"])
@pytest.mark.parametrize("chunk_bytes", [V.CHUNK_BYTES, 20_000])
@pytest.mark.parametrize("routed", [True, False], ids=["routed", "ranges"])
def test_clusters_survivors_and_dropped_ids_equal_the_old_path(tmp_path, local_engine, monkeypatch, name, chunk_bytes,
                                                               routed):
    """Known answer: the reference above; with the default bound (one task) and with a bound small enough
    for many verification tasks (and v chunks on the bucket-range path). Routed: tasks hold whole
    candidate components; ranges (more documents in pairs than ROUTE_MAX_DOCS, here forced): tasks by
    bucket of u. Pairs are skipped on the big cluster."""
    monkeypatch.setattr(V, "CHUNK_BYTES", chunk_bytes)
    docs = corpus(0) if name == "planted" else big_cluster_corpus()
    if not routed:
        monkeypatch.setattr(V, "ROUTE_MAX_DOCS", 10)
    work, manifest = run_corpus(tmp_path, docs, local_engine, threshold=0.7)
    extra = manifest["extra"]
    survivor, dropped = reference(work, docs, 0.7)
    assert observed(work) == (survivor, dropped) and dropped
    assert extra["pairs_verified"] + extra["pairs_skipped"] == extra["candidate_pairs"]
    assert extra["verify_routed"] == routed
    if routed:  # with 20 kB bounds the 300-member cluster is cut: pairs cross tasks, v's sets are shipped
        assert (extra["verify_cut_components"] > 0) == (chunk_bytes == 20_000 and name == "cluster300")
    assert (extra["verify_tasks"] > 1) == (chunk_bytes == 20_000)
    assert (extra["verify_chunks"] > 1) == (chunk_bytes == 20_000 and not routed)
    if name == "cluster300":
        assert extra["cluster_sizes"].get("300") == 1
        # a merge per document joined, about, when the cluster is in one task; with 20 kB bounds it is cut
        # (routed: into slices of 2 x 20 kB of shingle sets) or spread by bucket of u over 26 tasks, and
        # each task joins its share again from its pairs
        bound = 3000 if chunk_bytes == 20_000 else 500
        assert extra["pairs_verified"] < bound < extra["candidate_pairs"]
    assert extra["audit"]["edges_below_threshold"] in (0.0, None)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), max_size=120), st.integers(1, 6), st.integers(1, 20))
def test_routing_keeps_components_whole_up_to_the_cap(edges, n_tasks, cap):
    """Property: a component of at most max(cap, ceil(n / tasks)) nodes is in one task; a larger one is
    cut into slices of that many nodes (in node order), each in one task; every task index is valid and
    the assignment is the same when computed again."""
    edges = [(a, b) for a, b in edges if a != b]
    n = 1 + max((max(e) for e in edges), default=0)
    a = np.array([e[0] for e in edges], np.int64)
    b = np.array([e[1] for e in edges], np.int64)
    task, cut = V.assign_tasks(a, b, n, n_tasks, cap)
    assert np.array_equal(task, V.assign_tasks(a, b, n, n_tasks, cap)[0]) and ((task >= 0) & (task < n_tasks)).all()
    labels = union_find_reference(a.tolist(), b.tolist())
    limit = max(cap, -(-n // n_tasks))
    groups: dict = {}
    for node in range(n):
        groups.setdefault(labels.get(node, node), []).append(node)
    assert cut == sum(len(g) > limit for g in groups.values())
    for g in groups.values():
        for k in range(0, len(g), limit):
            assert len({int(task[x]) for x in g[k : k + limit]}) == 1


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 80), st.integers(0, 80)), max_size=200), st.integers(1, 5), st.integers(1, 30),
       st.integers(1, 3))
def test_streaming_route_plan_equals_the_plan_over_all_pairs_at_once(tmp_path_factory, edges, n_tasks, cap, files):
    """Property: the planner reads the pair files group by group and holds per-document arrays only, with
    pairs repeated across files and written out a few at a time (ROUTE_CHUNK_PAIRS 7): each task gets the
    distinct pairs whose u `assign_tasks` (over all the pairs at once) gives it, and each document's shingles
    go to its own task when a pair there names it, and to u's task when it is v in a pair across tasks. (A
    pair repeated in two written files stays in both; its task reads both and keeps it once.)"""
    import pyarrow as pa

    from curate import parts
    from curate.workers.near_dedup_files import _write

    d = tmp_path_factory.mktemp("route")
    pairs = sorted({(min(a, b), max(a, b)) for a, b in edges if a != b})
    node = lambda x: ((x % 3) << 32) | (x * 7919)  # noqa: E731  ids as the signature phase makes them
    pair_files = []
    for f in range(files):  # every pair in file f % files, some also in the next file (a repeat)
        mine = [p for i, p in enumerate(pairs) if i % files == f or (i + 1) % files == f and i % 2]
        path = str(d / f"pairs-{f}.parquet")
        _write(path, pa.table({"u": pa.array([node(a) for a, _ in mine], pa.int64()),
                               "v": pa.array([node(b) for _, b in mine], pa.int64())}), "u")
        pair_files.append(path)
    V.ROUTE_CHUNK_PAIRS, saved = 7, V.ROUTE_CHUNK_PAIRS
    try:
        result = V.route_plan(pair_files, n_tasks, cap, str(d / "plan"), str(d / "needs.parquet"))
    finally:
        V.ROUTE_CHUNK_PAIRS = saved
    nodes = np.unique([node(x) for p in pairs for x in p]).astype(np.int64)
    a = np.searchsorted(nodes, [node(p[0]) for p in pairs]).astype(np.int64)
    b = np.searchsorted(nodes, [node(p[1]) for p in pairs]).astype(np.int64)
    task_of, cut = V.assign_tasks(a, b, nodes.size, n_tasks, cap)
    assert result["cut_components"] == cut and result["docs"] == nodes.size
    for t in range(n_tasks):
        got = pa.concat_tables([parts.read_groups(f, [t]) for f in result["pair_files"]])
        want = sorted((int(nodes[x]), int(nodes[y])) for x, y in zip(a, b) if task_of[x] == t)
        assert sorted(set(zip(got["u"].to_pylist(), got["v"].to_pylist()))) == want  # (verify_task drops repeats)
    needs = pq.read_table(str(d / "needs.parquet"))
    want = {(int(nodes[x]), int(task_of[x])) for x in a} | {(int(nodes[y]), int(task_of[x])) for x, y in zip(a, b)}
    assert sorted(zip(needs["doc"].to_pylist(), needs["task"].to_pylist())) == sorted(want)


def test_hash_set_and_lookup_kernels_agree_with_numpy():
    """Known answer: np.unique and np.searchsorted, on values with many repeats, added in several calls."""
    from curate.stages import near_dedup_kernels as K

    rng = np.random.default_rng(3)
    x = (rng.integers(0, 5000, 200_000) << 32) | rng.integers(0, 50, 200_000)
    table, values, count = np.full(4, -1, np.int64), np.empty(2, np.int64), 0
    for piece in np.array_split(x, 7):
        table, values, count = K.distinct_add(table, values, count, piece)
    nodes = np.sort(values[:count])
    assert np.array_equal(nodes, np.unique(x))
    assert np.array_equal(K.lookup(K.index_table(nodes), nodes, x), np.searchsorted(nodes, x))
