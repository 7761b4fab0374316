"""near_dedup end to end on a generated corpus with planted near-duplicate families (edit rates 1%, 5%,
15%, 40%) and unrelated documents. Ground truth: brute-force exact Jaccard on the same shingles, clusters =
connected components of the pairs at or above the threshold. Scores are pairwise (co-clustered pairs)."""

from __future__ import annotations

import itertools
import random

import pyarrow.parquet as pq
import pytest

from curate.explain import explain
from curate.stages import near_dedup as N
from curate.stages.components import union_find_reference
from tests.helpers import read_parts, recipe, run, write_jsonl

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
