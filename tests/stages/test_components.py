"""Connected components: star rounds and the local fast path equal a reference union-find, on random
and adversarial graphs (long chains in random order, stars around the largest node, many small parts)."""

from __future__ import annotations

import numpy as np
import pytest

from curate.stages import components as C


def graphs():
    rng = np.random.default_rng(0)
    p = rng.permutation(3000)
    yield "chain", np.arange(2999), np.arange(1, 3000)
    yield "shuffled chain", p[:-1], p[1:]
    yield "star at max", np.arange(2000), np.full(2000, 5000)
    yield "star at min", np.zeros(2000, np.int64), np.arange(1, 2001)
    yield "many pairs", np.arange(0, 4000, 2), np.arange(1, 4001, 2)
    for i in range(30):
        n, m = rng.integers(2, 400), rng.integers(1, 500)
        u, v = rng.integers(0, n, m), rng.integers(0, n, m)
        yield f"random {i}", u[u != v], v[u != v]
    big = (np.int64(7) << np.int64(32)) + rng.integers(0, 50, 80)  # order keys with the part in the high bits
    yield "large ids", big[:40], big[40:]


@pytest.mark.parametrize("method", [C.components_local, C.star_rounds])
def test_components_equal_union_find(method):
    for name, u, v in graphs():
        u, v = np.asarray(u, np.int64), np.asarray(v, np.int64)
        nodes, labels = method(u, v)
        assert dict(zip(nodes.tolist(), labels.tolist())) == C.union_find_reference(u, v), name


def test_star_rounds_shard_like_the_distributed_path():
    """A round computed per bucket range and concatenated equals the round over the whole table."""
    rng = np.random.default_rng(1)
    u, v = rng.integers(0, 500, 700), rng.integers(0, 500, 700)
    u, v = u[u != v], v[u != v]
    key, other = C.large_star_rows(u, v)
    whole = set(zip(*[a.tolist() for a in C.large_star(key, other)]))
    b = C.node_bucket(key)
    sharded = set()
    for lo, hi in [(0, 100), (100, 180), (180, 256)]:
        sel = (b >= lo) & (b < hi)
        sharded |= set(zip(*[a.tolist() for a in C.large_star(key[sel], other[sel])]))
    assert whole == sharded


def test_edge_digest_is_order_and_direction_free():
    assert C.edge_set_digest(np.array([1, 5]), np.array([2, 3])) == C.edge_set_digest(np.array([3, 2]), np.array([5, 1]))
    assert C.edge_set_digest(np.array([1]), np.array([2])) != C.edge_set_digest(np.array([1]), np.array([3]))
