"""near_dedup end to end on a generated corpus with planted near-duplicate families (edit rates 1%, 5%,
15%, 40%) and unrelated documents. Ground truth: brute-force exact Jaccard on the same shingles, clusters =
connected components of the pairs at or above the threshold. Scores are pairwise (co-clustered pairs)."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.explain import explain
from curate.stages import near_dedup as N
from curate.stages.components import union_find_reference
from curate.workers import near_dedup_verify as V
from tests.helpers import file_bytes, read_parts, recipe, run, write_jsonl

VOCAB = [f"{w}{i}" for w in ("var", "fn", "get", "set", "node", "item", "_x") for i in range(60)] + [
    "def", "return", "self", "for", "in", "if", "else", "import", "class", "while"]


def mutate(tokens: list[str], rate: float, rng: random.Random) -> list[str]:
    out = []
    for t in tokens:
        r = rng.random()
        if r < rate / 3:
            continue  # deletion
        out.append(rng.choice(VOCAB) if r < 2 * rate / 3 else t)  # substitution
        if rate / 3 * 2 <= r < rate:
            out.append(rng.choice(VOCAB))  # insertion
    return out


def corpus(seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    docs = []
    for _ in range(24):
        base = [rng.choice(VOCAB) for _ in range(rng.randint(150, 400))]
        docs.append(" ".join(base))
        for rate in (0.01, 0.05, 0.15, 0.40):
            docs.append(" ".join(mutate(base, rate, rng)))
    docs += [" ".join(rng.choice(VOCAB) for _ in range(rng.randint(100, 300))) for _ in range(120)]
    rng.shuffle(docs)
    return docs


def truth(docs: list[str], threshold: float) -> dict[int, int]:
    sets = [N.shingles(d, 5) for d in docs]
    pairs = [(i, j) for i, j in itertools.combinations(range(len(docs)), 2)
             if len(sets[i] & sets[j]) / len(sets[i] | sets[j]) >= threshold]
    return union_find_reference([p[0] for p in pairs], [p[1] for p in pairs])


def co_clustered(labels: dict) -> set:
    groups: dict = {}
    for node, label in labels.items():
        groups.setdefault(label, []).append(node)
    return {tuple(sorted(p)) for g in groups.values() for p in itertools.combinations(g, 2)}


def run_corpus(tmp_path, docs, engine, name="w", **near):
    write_jsonl(tmp_path / "in/a.jsonl", [{"text": d, "id": f"d{i:04d}"} for i, d in enumerate(docs[: len(docs) // 2])])
    write_jsonl(tmp_path / "in/b.jsonl", [{"text": d, "id": f"d{i:04d}"} for i, d in enumerate(docs) if i >= len(docs) // 2])
    src = [{"name": "a", "kind": "code", "format": "jsonl", "paths": [str(tmp_path / "in/a.jsonl")], "id_field": "id"},
           {"name": "b", "kind": "code", "format": "jsonl", "paths": [str(tmp_path / "in/b.jsonl")], "id_field": "id"}]
    r = recipe(src, near_dedup=near, ingest={"partition_bytes": 40_000})
    work = tmp_path / name
    results = run(r, work, engine, ["ingest", "near_dedup"])
    return work, results[-1].manifest


def predicted(work) -> tuple[dict, set]:
    """doc index -> cluster (the survivor's id), and the dropped doc indices."""
    kept = read_parts(work / "near_dedup")
    dropped = read_parts(work / "near_dedup" / "dropped")
    labels = {}
    for row in kept.select(["id", "minhash_cluster"]).to_pylist():
        if row["minhash_cluster"] is not None:
            labels[int(row["id"].split("/")[-1][1:])] = row["minhash_cluster"]
    for row in dropped.select(["id", "drop_detail"]).to_pylist():
        labels[int(row["id"].split("/")[-1][1:])] = row["drop_detail"]
    return labels, {int(i.split("/")[-1][1:]) for i in dropped["id"].to_pylist()}


def scores(pred: set, true: set) -> tuple[float, float, float]:
    tp = len(pred & true)
    p, r = tp / max(len(pred), 1), tp / max(len(true), 1)
    return p, r, 2 * p * r / max(p + r, 1e-12)


@pytest.mark.parametrize("threshold", [0.7, 0.85])
def test_planted_families_default_settings(tmp_path, local_engine, threshold):
    docs = corpus()
    true_labels = truth(docs, threshold)
    work, manifest = run_corpus(tmp_path, docs, local_engine, threshold=threshold)
    labels, dropped = predicted(work)
    p, r, f1 = scores(co_clustered(labels), co_clustered(true_labels))
    assert f1 >= 0.99 and p == 1.0, (p, r, f1)  # exact verification: no edge below the threshold
    assert dropped <= set(true_labels)  # nobody removed without a true duplicate
    n_clusters = len(set(true_labels.values()))
    assert len(dropped) == len(true_labels) - n_clusters  # exactly one survivor per true cluster
    assert manifest["extra"]["audit"]["edges_below_threshold"] in (0.0, None)
    assert manifest["totals"]["docs_dropped"]["near_dedup.duplicate"] == len(dropped)


def test_verify_modes_precision_recall(tmp_path, local_engine, capsys):
    """Exact verification is perfect here; the others are reported (README) and must not beat it."""
    docs = corpus(1)
    true = co_clustered(truth(docs, 0.7))
    out = {}
    for mode in ("exact", "signature", "none"):
        work, _ = run_corpus(tmp_path / mode, docs, local_engine, verify=mode)
        out[mode] = scores(co_clustered(predicted(work)[0]), true)
    with capsys.disabled():
        print("\nnear_dedup verify modes (precision, recall, F1):", {k: tuple(round(x, 4) for x in v) for k, v in out.items()})
    assert out["exact"][0] == 1.0 and out["exact"][2] >= 0.99
    assert out["none"][0] < 1.0  # plain LSH merges unrelated documents through chance collisions
    assert out["exact"][2] >= max(out["signature"][2], out["none"][2])


def test_distributed_components_equal_the_local_path(tmp_path, local_engine):
    docs = corpus(2)
    local, m1 = run_corpus(tmp_path, docs, local_engine, name="local")
    dist, m2 = run_corpus(tmp_path, docs, local_engine, name="dist", local_components_max_edges=0)
    assert m1["extra"]["star_rounds"] == 0 and m2["extra"]["star_rounds"] >= 1
    for sub in ("near_dedup", "near_dedup/dropped"):
        a, b = read_parts(local / sub), read_parts(dist / sub)
        assert a.equals(b)


def test_cross_source_duplicate_explained(tmp_path, local_engine):
    docs = corpus(3)
    work, _ = run_corpus(tmp_path, docs, local_engine)
    dropped = read_parts(work / "near_dedup" / "dropped")
    sources = {i: s for i, s in zip(dropped["id"].to_pylist(), dropped["source"].to_pylist())}
    kept = pq.read_table(work / "near_dedup" / "part-00000.parquet") if (work / "near_dedup" / "part-00000.parquet").exists() else None
    assert kept is not None
    crossed = [i for i, d in zip(dropped["id"].to_pylist(), dropped["drop_detail"].to_pylist())
               if d.split("/")[0] != sources[i]]
    assert crossed  # some survivors are in the other source
    lines = explain(work, crossed[0])
    assert any("near_dedup: DROPPED near_dedup.duplicate" in line for line in lines)


@pytest.mark.ray
def test_ray_equals_local_and_reruns_agree(tmp_path, local_engine, ray_engine):
    docs = corpus(4)
    local, _ = run_corpus(tmp_path, docs, local_engine, name="local")
    ray1, _ = run_corpus(tmp_path, docs, ray_engine, name="ray1", local_components_max_edges=0)
    ray2, _ = run_corpus(tmp_path, docs, ray_engine, name="ray2")
    for sub in ("near_dedup", "near_dedup/dropped"):
        assert read_parts(local / sub).equals(read_parts(ray1 / sub))
        assert read_parts(local / sub).equals(read_parts(ray2 / sub))


def _run_source(tmp_path, name: str, docs: dict[int, str], engine, **near):
    """One source `name` holding docs {index: text} (ids dNNNN), through ingest and near_dedup."""
    path = write_jsonl(tmp_path / f"in/{name}.jsonl", [{"text": t, "id": f"d{i:04d}"} for i, t in sorted(docs.items())])
    src = [{"name": name, "kind": "code", "format": "jsonl", "paths": [str(path)], "id_field": "id"}]
    work = tmp_path / name
    results = run(recipe(src, near_dedup=near, ingest={"partition_bytes": 30_000}), work, engine, ["ingest", "near_dedup"])
    return work, results[-1].manifest


def test_against_an_earlier_run_drops_only_new_documents(tmp_path, local_engine):
    """Known answer: on the graph of (documents the old run kept) + (new documents) with every pair at or
    above the threshold except old-old pairs, a new document is an indexed duplicate iff its component
    holds an old kept document, and otherwise a plain duplicate iff it is not its component's survivor."""
    docs = corpus(5)
    rng = random.Random(5)
    old_ids = set(rng.sample(range(len(docs)), len(docs) // 2))
    old_work, old_manifest = _run_source(tmp_path, "old", {i: docs[i] for i in old_ids}, local_engine)
    before = file_bytes(old_work)
    old_kept = {int(i.split("/d")[1]) for i in read_parts(old_work / "near_dedup")["id"].to_pylist()}
    assert old_manifest["totals"]["docs_dropped"].get("near_dedup.duplicate")  # the old run deduplicated too

    new_ids = set(range(len(docs))) - old_ids
    new_work, manifest = _run_source(tmp_path, "new", {i: docs[i] for i in new_ids}, local_engine, against=str(old_work))
    assert file_bytes(old_work) == before  # the earlier run is never touched

    sets = {i: N.shingles(docs[i], 5) for i in old_kept | new_ids}
    pairs = [(i, j) for i, j in itertools.combinations(sorted(sets), 2)
             if not (i in old_kept and j in old_kept) and len(sets[i] & sets[j]) / len(sets[i] | sets[j]) >= 0.7]
    labels = union_find_reference([p[0] for p in pairs], [p[1] for p in pairs])
    comps: dict = {}
    for node, label in labels.items():
        comps.setdefault(label, set()).add(node)
    want_indexed = {n for c in comps.values() if c & old_kept for n in c & new_ids}
    want_plain = sum(len(c) - 1 for c in comps.values() if not c & old_kept)
    assert want_indexed and want_plain  # the corpus exercises both cases

    dropped = read_parts(new_work / "near_dedup" / "dropped").to_pylist()
    got_indexed = {int(r["id"].split("/d")[1]) for r in dropped if r["drop_reason"] == "near_dedup.indexed_duplicate"}
    assert got_indexed == want_indexed
    assert sum(r["drop_reason"] == "near_dedup.duplicate" for r in dropped) == want_plain
    for r in dropped:  # every indexed duplicate points at a document the old run kept
        if r["drop_reason"] == "near_dedup.indexed_duplicate":
            assert r["drop_detail"].startswith("old/") and int(r["drop_detail"].split("/d")[1]) in old_kept
    assert manifest["extra"]["against"]["indexed_duplicates"] == len(want_indexed)
    lines = explain(new_work, next(iter(r["id"] for r in dropped if r["drop_reason"] == "near_dedup.indexed_duplicate")))
    assert any("near_dedup.indexed_duplicate" in line for line in lines)


def _indexed_truth(docs: list[str], old_kept: set[int], new_ids: set[int]) -> tuple[set[int], int]:
    """(new documents that are indexed duplicates, number of plain duplicates) by union-find over (kept
    old documents) + (new ones), every pair at or above 0.7 except pairs of two old documents."""
    sets = {i: N.shingles(docs[i], 5) for i in old_kept | new_ids}
    pairs = [(i, j) for i, j in itertools.combinations(sorted(sets), 2)
             if not (i in old_kept and j in old_kept) and len(sets[i] & sets[j]) / len(sets[i] | sets[j]) >= 0.7]
    comps: dict = {}
    for node, label in union_find_reference([p[0] for p in pairs], [p[1] for p in pairs]).items():
        comps.setdefault(label, set()).add(node)
    return ({n for c in comps.values() if c & old_kept for n in c & new_ids},
            sum(len(c) - 1 for c in comps.values() if not c & old_kept))


def _kept(work) -> set[int]:
    return {int(i.split("/d")[1]) for i in read_parts(work / "near_dedup")["id"].to_pylist()}


def test_against_follows_the_chain_of_earlier_runs(tmp_path, local_engine):
    """Three runs over thirds of a corpus: A; B against A; C against B, which follows B's own `against` to
    A. C's indexed duplicates are exactly those of the union-find over (A kept + B kept + C), and listing
    both runs (`against: [B, A]`, each directory once) gives byte-identical parts."""
    docs = corpus(6)
    order = random.Random(6).sample(range(len(docs)), len(docs))
    thirds = [set(order[k::3]) for k in range(3)]
    a_work, _ = _run_source(tmp_path, "a", {i: docs[i] for i in thirds[0]}, local_engine)
    b_work, _ = _run_source(tmp_path, "b", {i: docs[i] for i in thirds[1]}, local_engine, against=str(a_work))
    c_work, manifest = _run_source(tmp_path, "c", {i: docs[i] for i in thirds[2]}, local_engine, against=str(b_work))
    assert manifest["extra"]["against"]["workdirs"] == [str(b_work), str(a_work)]
    old_kept = _kept(a_work) | _kept(b_work)
    want_indexed, want_plain = _indexed_truth(docs, old_kept, thirds[2])
    first_kept = _indexed_truth(docs, _kept(b_work), thirds[2])[0]
    assert want_indexed - first_kept  # some are duplicates of A's documents only: one level would miss them
    dropped = read_parts(c_work / "near_dedup" / "dropped").to_pylist()
    got = {int(r["id"].split("/d")[1]) for r in dropped if r["drop_reason"] == "near_dedup.indexed_duplicate"}
    assert got == want_indexed
    assert sum(r["drop_reason"] == "near_dedup.duplicate" for r in dropped) == want_plain
    listed, _ = _run_source(tmp_path / "listed", "c", {i: docs[i] for i in thirds[2]}, local_engine,
                            against=[str(b_work), str(a_work), str(b_work)])
    assert read_parts(listed / "near_dedup").equals(read_parts(c_work / "near_dedup"))
    assert read_parts(listed / "near_dedup" / "dropped").equals(read_parts(c_work / "near_dedup" / "dropped"))


def test_against_refuses_a_chain_with_a_missing_link(tmp_path, local_engine):
    import shutil

    from curate.errors import RecipeError
    from curate.recipe import NearDedupConfig
    from curate.workers.near_dedup import load_index

    docs = corpus(7)[:40]
    a_work, _ = _run_source(tmp_path, "a", dict(enumerate(docs[:20])), local_engine)
    b_work, _ = _run_source(tmp_path, "b", {i + 20: d for i, d in enumerate(docs[20:])}, local_engine, against=str(a_work))
    shutil.rmtree(a_work)
    with pytest.raises(RecipeError, match=rf"near_dedup.against: {b_work} -> {a_work} \(its own near_dedup.against\): "
                                          "no finished near_dedup"):
        load_index(NearDedupConfig(against=str(b_work)), tmp_path / "c")
    with pytest.raises(ValueError, match="an empty list"):
        NearDedupConfig(against=[])


def test_against_refuses_an_incomparable_or_missing_index(tmp_path, local_engine):
    from curate.errors import RecipeError
    from curate.recipe import NearDedupConfig
    from curate.workers.near_dedup import load_index

    old_work, _ = _run_source(tmp_path, "old", dict(enumerate(corpus(6)[:40])), local_engine)
    cfg = NearDedupConfig
    assert load_index(cfg(against=str(old_work)), tmp_path / "new").fingerprint
    for bad, says in ((dict(num_perm=128), "num_perm 256 there, 128 here"), (dict(threshold=0.9), "bands"),
                      (dict(verify="signature"), "verify: signature")):
        with pytest.raises(RecipeError, match="near_dedup.against") as err:
            load_index(cfg(against=str(old_work), **bad), tmp_path / "new")
        assert says in str(err.value)
    with pytest.raises(RecipeError, match="no finished near_dedup"):
        load_index(cfg(against=str(tmp_path / "nowhere")), tmp_path / "new")
    with pytest.raises(RecipeError, match="own work directory"):
        load_index(cfg(against=str(old_work)), old_work)


def test_index_rows_never_cut_pairs_among_new_documents(tmp_path):
    """A band key shared by new documents 1, 2, 3 and three indexed documents, max_bucket_docs = 3: the new
    documents still pair with each other as without an index (the bucket bound counts new documents only),
    and each pairs with the first max_bucket_docs - 1 indexed documents of the key that the indexed run
    kept."""
    from curate.workers import near_dedup as W

    def bands(path, docs):
        table = pa.table({"key": pa.array([7 << 56] * len(docs), pa.uint64()), "doc": pa.array(docs, pa.int64())})
        W._write(str(path), table, key=(table["key"].to_numpy() >> np.uint64(56)).astype(np.int32))

    bands(tmp_path / "new.parquet", [1, 2, 3])
    bands(tmp_path / "old.parquet", [10, 11, 12])
    index = W.Index((str(tmp_path),), bands=((str(tmp_path / "old.parquet"), 0),), payload=(), docs=(), survivors=(),
                    fingerprint="")
    buckets = list(range(256))
    W.candidates_range([str(tmp_path / "new.parquet")], buckets, str(tmp_path / "plain.parquet"), 3)
    flag = int(N.INDEX_FLAG)
    none_dropped, ten_dropped = str(tmp_path / "none.npy"), str(tmp_path / "ten.npy")
    np.save(none_dropped, np.zeros(0, np.int64))
    np.save(ten_dropped, np.array([10 | flag], np.int64))
    W.candidates_range([str(tmp_path / "new.parquet")], buckets, str(tmp_path / "with.parquet"), 3, index, none_dropped)
    W.candidates_range([str(tmp_path / "new.parquet")], buckets, str(tmp_path / "live.parquet"), 3, index, ten_dropped)
    pairs = lambda name: sorted(zip(*(W._read([str(tmp_path / name)], buckets)[c].to_pylist() for c in "uv")))  # noqa: E731
    new_pairs = [(1, 2), (1, 3), (2, 3)]
    assert pairs("plain.parquet") == new_pairs
    assert pairs("with.parquet") == sorted(new_pairs + [(d, o | flag) for d in (1, 2, 3) for o in (10, 11)])
    # a document the indexed run dropped is never matched, and takes no place among the first of its key
    assert pairs("live.parquet") == sorted(new_pairs + [(d, o | flag) for d in (1, 2, 3) for o in (11, 12)])


def test_against_refuses_an_index_of_another_layout_or_without_survivors(tmp_path, local_engine):
    import json
    import shutil

    from curate.errors import RecipeError
    from curate.recipe import NearDedupConfig
    from curate.workers.near_dedup import load_index

    old_work, _ = _run_source(tmp_path, "old", dict(enumerate(corpus(7)[:40])), local_engine)
    manifest = old_work / "near_dedup" / "_manifest.json"
    m = json.loads(manifest.read_text())
    del m["extra"]["index_format"]  # as written before the index layout was recorded
    manifest.write_text(json.dumps(m))
    with pytest.raises(RecipeError, match="written by another version of curate"):
        load_index(NearDedupConfig(against=str(old_work)), tmp_path / "new")
    m["extra"]["index_format"] = 2
    manifest.write_text(json.dumps(m))
    shutil.rmtree(old_work / "near_dedup" / "_work" / "survivors")
    with pytest.raises(RecipeError, match="survivors .* are missing"):
        load_index(NearDedupConfig(against=str(old_work)), tmp_path / "new")


@pytest.mark.parametrize("chunk_bytes", [V.CHUNK_BYTES, 20_000])
def test_against_routed_equals_the_bucket_range_split(tmp_path, local_engine, monkeypatch, chunk_bytes):
    """A run against a chain of two earlier runs is routed by component like any other (the earlier runs'
    shingle sets routed from their index, ids flagged), and its kept and dropped documents are those of
    the split by bucket range of u (forced here: ROUTE_MAX_DOCS 0), with one verification task and with
    many (20 kB bounds: components cut, v's sets shipped across tasks)."""
    monkeypatch.setattr(V, "CHUNK_BYTES", chunk_bytes)
    docs = corpus(7)
    order = random.Random(7).sample(range(len(docs)), len(docs))
    thirds = [set(order[k::3]) for k in range(3)]
    a_work, _ = _run_source(tmp_path, "a", {i: docs[i] for i in thirds[0]}, local_engine)
    b_work, _ = _run_source(tmp_path, "b", {i: docs[i] for i in thirds[1]}, local_engine, against=str(a_work))
    routed, manifest = _run_source(tmp_path / "routed", "c", {i: docs[i] for i in thirds[2]}, local_engine,
                                   against=str(b_work))
    monkeypatch.setattr(V, "ROUTE_MAX_DOCS", 0)
    ranges, by_range = _run_source(tmp_path / "ranges", "c", {i: docs[i] for i in thirds[2]}, local_engine,
                                   against=str(b_work))
    assert manifest["extra"]["verify_routed"] and not by_range["extra"]["verify_routed"]
    assert (manifest["extra"]["verify_tasks"] > 1) == (chunk_bytes == 20_000)
    assert manifest["extra"]["against"]["indexed_duplicates"] == by_range["extra"]["against"]["indexed_duplicates"] > 0
    assert read_parts(routed / "near_dedup").equals(read_parts(ranges / "near_dedup"))
    assert read_parts(routed / "near_dedup" / "dropped").equals(read_parts(ranges / "near_dedup" / "dropped"))
    want_indexed, want_plain = _indexed_truth(docs, _kept(a_work) | _kept(b_work), thirds[2])
    dropped = read_parts(routed / "near_dedup" / "dropped").to_pylist()
    assert {int(r["id"].split("/d")[1]) for r in dropped if r["drop_reason"] == "near_dedup.indexed_duplicate"} == want_indexed
