"""curate.loader over synthesized multi-shard output (the pack stage's own sequence builder): rank split,
seeded order, exact and elastic resume, verification, the attention helpers, DataLoader worker split, S3."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate import packed_attention as A
from curate import window_rows
from curate.epoch_order import EpochOrder
from curate.loader import LoaderError, PackedShards
from curate.shard_reader import ShardError, ShardSet
from tests.packed import write_packed

SIZES = (7, 5, 9, 4, 6, 8)
N = sum(SIZES)


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    return write_packed(tmp_path_factory.mktemp("packed"), sizes=SIZES)


def indices(data) -> list[int]:
    return [item["index"] for item in data]


def load(packed, **kw) -> PackedShards:
    return PackedShards(packed.workdir, **kw)


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])  # 4: long sequences' doc_ids converted per rank (`_ids`)
@pytest.mark.parametrize("shuffle", [True, False])
def test_ranks_see_every_sequence_once(packed, world_size, shuffle, token_path):
    """The ranks' shares are disjoint, their union is every sequence of the epoch, their sizes differ by at
    most one, and each item is the shard's row (ids and boundaries) that its index names."""
    table = packed.sequences
    shares = []
    for rank in range(world_size):
        data = load(packed, rank=rank, world_size=world_size, seed=3, shuffle=shuffle, window=2)
        want = len(data)
        items = list(data)
        assert len(items) == want
        for item in items:
            i = item["index"]
            assert item["input_ids"].dtype == np.uint16
            assert item["input_ids"].tolist() == table["input_ids"][i].as_py()
            assert item["doc_ids"] == table["doc_ids"][i].as_py()
            assert item["doc_lengths"].tolist() == table["doc_lengths"][i].as_py()
            assert item["doc_starts"].tolist() == table["doc_starts"][i].as_py()
        shares.append([item["index"] for item in items])
    union = [i for share in shares for i in share]
    assert sorted(union) == list(range(N))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
    if not shuffle and world_size == 1:
        assert union == list(range(N))


def test_same_seed_same_order_other_epoch_or_seed_another(packed):
    first = load(packed, seed=5)
    e0, e1 = indices(first), indices(first)  # iterating again runs the next epoch
    assert first.epoch == 2
    assert e0 == indices(load(packed, seed=5)) and e1 == indices(load(packed, seed=5, epoch=1))
    assert e0 != e1 and sorted(e0) == sorted(e1) == list(range(N))
    assert e0 != indices(load(packed, seed=6))
    assert e0 != sorted(e0)


def test_order_is_pinned():
    """Known answer: the order is a function of (sizes, seed, epoch, window) through splitmix64 alone, so any
    change of it (which would silently change every resumed run) fails here."""
    order = EpochOrder((3, 2, 4), seed=7, epoch=1, shuffle=True, window=2)
    windows = [order.window_sequences(w).tolist() for w in range(len(order.windows()))]
    assert [w.tolist() for w in order.windows()] == [[1, 0], [2]]
    assert windows == [[2, 3, 1, 0, 4], [7, 5, 6, 8]]


PINNED = [  # (loader arguments, DataLoader worker split, resumed global position) -> indices, in order
    (dict(seed=3), None, None,
     [7, 17, 10, 9, 12, 18, 13, 15, 14, 8, 20, 16, 11, 19, 28, 38, 30, 32, 37, 25, 27, 31, 36, 33, 29, 26, 34, 35,
      4, 23, 2, 21, 6, 5, 0, 22, 3, 1, 24]),
    (dict(seed=3, window=3, rank=1, world_size=3), None, None, [35, 9, 18, 38, 14, 8, 11, 28, 0, 27, 1, 21, 6]),
    (dict(seed=7, epoch=1, window=1, rank=0, world_size=2), None, None,
     [9, 11, 10, 0, 5, 6, 13, 20, 14, 15, 12, 30, 25, 29, 38, 35, 32, 33, 21, 24]),
    (dict(shuffle=False, rank=1, world_size=2), None, None, list(range(1, N, 2))),
    (dict(seed=9, rank=1, world_size=2), (1, 2, 2), None, [7, 29, 22, 20, 13, 12, 4, 31, 6]),
    (dict(seed=5, rank=1, world_size=2, epoch=2), None, 11, [19, 11, 7, 9, 17, 15, 5, 38, 35, 6, 31, 36, 37, 33]),
]


@pytest.fixture(params=["gathered", "views"])
def token_path(request, monkeypatch):
    """Both ways a window's token rows are handed out: gathered into one array (short sequences, as these
    test shards have), or as views of the record batches read (long sequences), forced here."""
    if request.param == "views":
        monkeypatch.setattr(window_rows, "GATHER_BELOW", 0)
    return request.param


@pytest.mark.parametrize("kw,split,position,want", PINNED)
def test_item_order_is_pinned(packed, kw, split, position, want, token_path):
    """Known answers recorded from the loader before its reading was vectorised: what a rank (or a
    DataLoader worker of it, or a resumed rank) yields, in order, must never change for the same arguments."""
    data = load(packed, **kw)
    if position is not None:
        data.load_state_dict({**data.state_dict(0), "position": position})
    assert indices(data if split is None else data.worker_split(*split)) == want


def test_window_bounds_what_is_read_together(packed, monkeypatch):
    """A window's sequences come from at most `window` shards; every shard is read once per epoch and rank,
    and verified on its first read only."""
    calls = []
    original = ShardSet.read_chunks

    def spy(self, shard, rows, verify, **kw):
        calls.append((shard, len(rows), verify))
        return original(self, shard, rows, verify, **kw)

    monkeypatch.setattr(ShardSet, "read_chunks", spy)
    data = load(packed, seed=1, window=2, rank=1, world_size=2, prefetch=False)
    order = data.order()
    seen = indices(data)
    shard_of = np.searchsorted(order.offsets, seen, side="right") - 1
    starts = order.window_starts()
    for w, shards in enumerate(order.windows()):
        in_window = [s for s, p in zip(shard_of, range(1, N, 2)) if starts[w] <= p < starts[w + 1]]
        assert set(in_window) <= set(shards.tolist())
    assert sorted(s for s, _, _ in calls) == list(range(len(SIZES))) and all(v for _, _, v in calls)
    assert sum(n for _, n, _ in calls) == len(seen)
    calls.clear()
    indices(data)  # epoch 2: read again, not verified again
    assert sorted(s for s, _, _ in calls) == list(range(len(SIZES))) and not any(v for _, _, v in calls)


def uninterrupted(packed, world_size, **kw) -> list[list[int]]:
    return [indices(load(packed, rank=r, world_size=world_size, **kw)) for r in range(world_size)]


def consume(data: PackedShards, k: int) -> list[int]:
    got = []
    if k == 0:
        return got
    for item in data:
        got.append(item["index"])
        if len(got) == k:
            break
    return got


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(world_size=st.integers(1, 4), k=st.integers(0, N // 4 + 1), seed=st.integers(0, 3), window=st.integers(1, 3),
       epoch=st.integers(0, 2))
def test_resume_anywhere_equals_an_uninterrupted_pass(packed, world_size, k, seed, window, epoch):
    """Every rank consumes k sequences, the state is saved, fresh loaders restore it: each rank's sequences
    before and after, concatenated, are exactly its share of an uninterrupted epoch."""
    kw = dict(seed=seed, window=window, epoch=epoch)
    whole = uninterrupted(packed, world_size, **kw)
    before, states = [], []
    for r in range(world_size):
        data = load(packed, rank=r, world_size=world_size, **kw)
        before.append(consume(data, k))
        states.append(data.state_dict(consumed=len(before[-1])) if len(before[-1]) < k else data.state_dict())
    ranks_done = [len(b) for b in before]
    if min(ranks_done) == k:  # a step boundary every rank reached: the states agree
        assert all(s == states[0] for s in states)
    for r in range(world_size):
        resumed = load(packed, rank=r, world_size=world_size, **kw)
        resumed.load_state_dict(states[0] if min(ranks_done) == k else states[r])
        after = indices(resumed) if resumed.epoch == epoch else []
        assert before[r] + after == whole[r]


@pytest.mark.parametrize("old,new,k", [(4, 2, 3), (8, 4, 2), (2, 3, 5), (3, 1, 0)])
def test_elastic_resume(packed, old, new, k):
    """A state saved after every one of `old` ranks consumed k sequences, restored at `new` ranks: nothing
    repeated, nothing skipped, and the rest follows the same global order."""
    kw = dict(seed=11, window=2)
    saved, before = None, []
    for r in range(old):
        data = load(packed, rank=r, world_size=old, **kw)
        before += consume(data, k)
        state = data.state_dict()
        assert saved is None or state == saved
        saved = state
    assert saved["position"] == old * k
    after = []
    for r in range(new):
        data = load(packed, rank=r, world_size=new, **kw)
        data.load_state_dict(saved)
        after += [(item["index"], p) for item, p in zip(data, range(saved["position"] + r, N, new))]
    assert sorted(before + [i for i, _ in after]) == list(range(N))
    full = indices(load(packed, **kw))  # one rank: the global order itself
    assert [i for i, _ in sorted(after, key=lambda x: x[1])] == full[old * k:]


def test_a_new_iteration_continues_an_interrupted_one(packed):
    data = load(packed, seed=8, rank=2, world_size=3)
    share = indices(load(packed, seed=8, rank=2, world_size=3))
    first = consume(data, 4)
    assert len(data) == len(share) - 4
    assert first + indices(data) == share and data.epoch == 1 and len(data) == len(share)


def test_state_at_the_end_of_an_epoch_and_mismatches(packed):
    data = load(packed, seed=2, rank=1, world_size=2)
    indices(data)
    state = data.state_dict()
    assert (state["epoch"], state["position"]) == (1, 0)
    other = load(packed, seed=3)
    with pytest.raises(LoaderError, match="seed=2"):
        other.load_state_dict(state)
    with pytest.raises(LoaderError, match="window"):
        load(packed, seed=2, window=3).load_state_dict(state)
    with pytest.raises(LoaderError, match="rank 2"):
        load(packed, rank=2, world_size=2)


def corrupt(path, offset_from_end=200):
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0xFF  # a token byte in the last record batch: the stream still parses
    path.write_bytes(bytes(data))


def test_verify_names_the_corrupted_shard(tmp_path):
    packed = write_packed(tmp_path / "w", sizes=(4, 5, 6))
    corrupt(tmp_path / "w" / "shards" / "shard-00001.arrow")
    with pytest.raises(ShardError, match=r"shard-00001\.arrow: sha256 [0-9a-f]{64} differs from the pack manifest"):
        indices(load(packed, seed=0, window=1))
    assert len(indices(load(packed, seed=0, window=1, verify=False))) == 15  # unchecked, the bytes are read as they are
    (tmp_path / "w" / "shards" / "shard-00002.arrow").write_bytes(b"not arrow")
    with pytest.raises(ShardError, match="shard-00002.arrow"):
        indices(load(packed, verify=False))


def test_location_forms(packed, tmp_path):
    by_workdir = indices(load(packed, seed=4))
    assert indices(PackedShards(packed.workdir / "shards", seed=4)) == by_workdir
    assert indices(PackedShards(f"file://{packed.workdir}", seed=4)) == by_workdir
    with pytest.raises(ShardError, match="no shards/manifest.json"):
        PackedShards(tmp_path)


def test_worker_split_keeps_the_rank_order(packed):
    """DataLoader workers (simulated: in-order round robin over batches of B) hand back the rank's share in
    order, and a state from the main process's count resumes exactly."""
    data = load(packed, seed=9, rank=1, world_size=2)
    share = indices(load(packed, seed=9, rank=1, world_size=2))
    for parts, block in [(2, 2), (3, 1), (2, 4)]:
        streams = [indices(data.worker_split(w, parts, block)) for w in range(parts)]
        batches = [[s[i:i + block] for i in range(0, len(s), block)] for s in streams]
        merged = [i for round_ in zip(*[b + [[]] * (max(map(len, batches)) - len(b)) for b in batches])
                  for batch in round_ for i in batch]
        assert merged == share
    state = data.state_dict(consumed=5)
    resumed = load(packed, seed=9, rank=1, world_size=2)
    resumed.load_state_dict(state)
    assert indices(resumed) == share[5:]


def test_attention_helpers_known_answers():
    lengths, n = [3, 2], 7  # two pieces and two padding tokens
    assert A.segment_ids(lengths, n).tolist() == [0, 0, 0, 1, 1, -1, -1]
    assert A.position_ids(lengths, n).tolist() == [0, 1, 2, 0, 1, 0, 1]
    assert A.cu_seqlens(lengths, n).tolist() == [0, 3, 5, 7]
    mask = A.attention_mask(lengths, n)
    assert mask.sum(axis=1).tolist() == [1, 2, 3, 1, 2, 1, 2]
    assert mask[4].tolist() == [False, False, False, True, True, False, False]
    assert A.attention_mask([4], 4, causal=False).all()
    with pytest.raises(ValueError, match="more than seq_len"):
        A.position_ids([5, 5], 8)


def test_torch_dataloader(packed):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    from curate.torch_data import TorchPackedShards

    data = load(packed, seed=9, rank=0, world_size=2)
    share = indices(load(packed, seed=9, rank=0, world_size=2))
    batches = list(DataLoader(TorchPackedShards(data, batch_size=3), batch_size=3, num_workers=2))
    assert [int(i) for b in batches for i in b["index"]] == share
    assert batches[0]["input_ids"].dtype == torch.int64 and batches[0]["input_ids"].shape == (3, packed.seq_len)
    first = batches[0]["index"][0].item()
    lengths = packed.sequences["doc_lengths"][first].as_py()
    assert batches[0]["position_ids"][0].tolist() == A.position_ids(lengths, packed.seq_len).tolist()
    # the main process's count of consumed sequences is the resume state, with workers too
    state = data.state_dict(consumed=6)
    resumed = load(packed, seed=9, rank=0, world_size=2)
    resumed.load_state_dict(state)
    rest = list(DataLoader(TorchPackedShards(resumed, batch_size=3), batch_size=3, num_workers=2))
    assert [int(i) for b in rest for i in b["index"]] == share[6:]
    data.set_epoch(1)  # the next epoch: workers get the new epoch with their fresh copy
    again = list(DataLoader(TorchPackedShards(data, batch_size=3), batch_size=3, num_workers=2))
    assert [int(i) for b in again for i in b["index"]] == indices(load(packed, seed=9, rank=0, world_size=2, epoch=1))


def test_s3_destination(packed, s3):
    """Published to the loopback S3 server: the same order as from disk; a corrupted object is named."""
    from curate.publish import publish

    client, bucket, endpoint = s3
    dest = f"s3://{bucket}/ds"
    assert publish(packed.workdir, dest, endpoint_url=endpoint).committed
    for world_size in (1, 2):
        remote = [indices(PackedShards(dest, rank=r, world_size=world_size, seed=4, endpoint_url=endpoint))
                  for r in range(world_size)]
        assert remote == uninterrupted(packed, world_size, seed=4)
    by_batch = PackedShards(dest, rank=1, world_size=2, seed=4, endpoint_url=endpoint).batches(4)
    assert [int(i) for b in by_batch for i in b["index"]] == uninterrupted(packed, 2, seed=4)[1]
    key = "ds/shards/shard-00003.arrow"
    body = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    body[-200] ^= 0xFF
    client.put_object(Bucket=bucket, Key=key, Body=bytes(body))
    with pytest.raises(ShardError, match=r"s3://.*/ds/shards/shard-00003\.arrow: sha256"):
        indices(PackedShards(dest, endpoint_url=endpoint, seed=4))


def test_loader_needs_no_ray_engine_or_torch():
    """Importing the loader and the export (and reading) pulls in neither Ray, the engine, nor torch."""
    import subprocess
    import sys

    code = ("import sys, curate.loader, curate.export, curate.packed_attention; "
            "bad = [m for m in ('ray', 'curate.engine', 'curate.pipeline', 'torch') if m in sys.modules]; "
            "sys.exit(str(bad) if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("kw", [dict(seed=3), dict(seed=3, window=3, rank=1, world_size=3), dict(shuffle=False),
                                dict(seed=7, epoch=1, window=1, rank=0, world_size=2),
                                dict(seed=2, rank=3, world_size=4, prefetch=True)])
@pytest.mark.parametrize("size", [1, 4, 7, 64])
def test_batches_are_the_items_in_order(packed, kw, size, token_path):
    """`batches(b)` yields exactly the items of an iteration, in order, b at a time (the last one shorter):
    the same token rows, document pieces and indices; the batch's input_ids are one contiguous array."""
    items = list(load(packed, **kw))
    got = list(load(packed, **kw).batches(size))
    assert [len(b["index"]) for b in got] == [min(size, len(items) - i) for i in range(0, len(items), size)]
    flat = []
    for b in got:
        assert b["input_ids"].flags["C_CONTIGUOUS"] and b["input_ids"].shape == (len(b["index"]), packed.seq_len)
        assert b["input_ids"].dtype == np.uint16 and b["doc_offsets"][0] == 0
        for i in range(len(b["index"])):
            p, q = b["doc_offsets"][i], b["doc_offsets"][i + 1]
            flat.append((int(b["index"][i]), b["input_ids"][i].tolist(), b["doc_ids"][p:q].tolist(),
                         b["doc_lengths"][p:q].tolist(), b["doc_starts"][p:q].tolist()))
    assert flat == [(x["index"], x["input_ids"].tolist(), x["doc_ids"], x["doc_lengths"].tolist(),
                     x["doc_starts"].tolist()) for x in items]


def test_batches_resume_and_continue(packed):
    """The state after some batches resumes with the next sequence, by batches or by items, at another world
    size too; after the epoch the next one begins."""
    data = load(packed, seed=4, rank=1, world_size=2)
    share = indices(load(packed, seed=4, rank=1, world_size=2))
    it = data.batches(3)
    first = [int(i) for _ in range(2) for i in next(it)["index"]]
    state = data.state_dict()
    assert first == share[:6] and state["position"] == 12
    resumed = load(packed, seed=4, rank=1, world_size=2)
    resumed.load_state_dict(state)
    assert [int(i) for b in resumed.batches(5) for i in b["index"]] == share[6:] and resumed.epoch == 1
    whole = indices(load(packed, seed=4))
    one = load(packed, seed=4)
    one.load_state_dict(state)
    assert indices(one) == whole[12:]
    with pytest.raises(LoaderError, match="batch_size"):
        next(load(packed).batches(0))
