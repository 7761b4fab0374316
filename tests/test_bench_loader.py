"""The loader benchmark's pyarrow-only baselines hand out what the loader hands out: the same batches, in
file order and in the loader's order (so the bench compares like with like)."""

from __future__ import annotations

import json

import pyarrow as pa

from curate.bench.loader import (
    _consume,
    pyarrow_batches,
    pyarrow_items,
    pyarrow_shuffled_batches,
    write_shards,
)
from curate.loader import PackedShards


def as_tuples(batches) -> list[tuple]:
    out = []
    for b in batches:
        for i in range(len(b["index"])):
            p, q = b["doc_offsets"][i], b["doc_offsets"][i + 1]
            out.append((int(b["index"][i]), b["input_ids"][i].tolist(), b["doc_ids"][p:q].tolist(),
                        b["doc_lengths"][p:q].tolist(), b["doc_starts"][p:q].tolist()))
    return out


def shards_to_read(root, shards: int, seqs: int):
    """Shards written for the test: (work directory, pack manifest, the baselines' stream opener)."""
    workdir = write_shards(root, shards=shards, seqs=seqs, seq_len=64)
    folder = workdir / "shards"

    def stream(name):
        with pa.memory_map(str(folder / name)) as source:
            yield from pa.ipc.open_stream(source)

    return workdir, json.loads((folder / "manifest.json").read_text()), stream


def test_baselines_deliver_the_loaders_batches(tmp_path):
    workdir, manifest, stream = shards_to_read(tmp_path / "w", shards=5, seqs=30)
    in_order = as_tuples(PackedShards(workdir, shuffle=False, verify=False).batches(7))
    assert as_tuples(pyarrow_batches(stream, manifest, 7)) == in_order
    shuffled = as_tuples(PackedShards(workdir, seed=0, verify=False).batches(7))
    assert as_tuples(pyarrow_shuffled_batches(stream, manifest, 7, seed=0, window=2)) == shuffled
    assert shuffled != in_order and sorted(shuffled) == sorted(in_order)
    assert _consume(pyarrow_batches(stream, manifest, 7)) == 150


def test_rank_baselines_deliver_the_loaders_rank_share(tmp_path):
    """pyarrow's rank 0 of 2 (and rank 1 of 3) hands out what the loader's rank does without shuffling: the
    comparison for a rank is with pyarrow doing the same share, not the whole data."""
    workdir, manifest, stream = shards_to_read(tmp_path / "w", shards=3, seqs=20)
    for rank, world_size in ((0, 2), (1, 2), (1, 3)):
        data = PackedShards(workdir, shuffle=False, verify=False, rank=rank, world_size=world_size)
        want = as_tuples(data.batches(7))
        assert as_tuples(pyarrow_batches(stream, manifest, 7, rank, world_size)) == want
        items = [(x["index"], x["input_ids"].tolist(), x["doc_ids"], x["doc_lengths"].tolist(), x["doc_starts"].tolist())
                 for x in pyarrow_items(stream, manifest, rank, world_size)]
        assert items == [(i, t, list(d), n, s) for i, t, d, n, s in want]


def test_shuffled_baseline_delivers_a_ranks_share_in_the_loaders_order(tmp_path):
    """pyarrow + numpy in the loader's order hands out exactly what the loader's rank does, shuffled, for any
    rank split: a shuffled rank is compared with the same batches made without the loader."""
    workdir, manifest, stream = shards_to_read(tmp_path / "w", shards=5, seqs=30)
    for rank, world_size in ((0, 2), (1, 2), (2, 3), (0, 4)):
        want = as_tuples(PackedShards(workdir, seed=3, verify=False, rank=rank, world_size=world_size).batches(7))
        got = as_tuples(pyarrow_shuffled_batches(stream, manifest, 7, seed=3, window=2, rank=rank,
                                                 world_size=world_size))
        assert got == want and len(got) == len(range(rank, 150, world_size))
