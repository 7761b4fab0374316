"""How `curate.shard_reader` reads local shards: the memory map (and whether the kernel is asked to read
ahead), the record batches picked for some rows, and the loader's rows grouped by shard."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate import shard_reader
from curate.loader import rows_by_shard
from curate.shard_reader import ShardError, ShardSet, map_file
from tests.packed import write_packed


def test_map_file_is_the_files_bytes_and_lets_go_of_the_file(tmp_path):
    path = tmp_path / "f.bin"
    data = os.urandom(3 * 4096 + 17)
    path.write_bytes(data)
    before = len(os.listdir("/proc/self/fd"))
    buf = map_file(path)
    view = np.frombuffer(buf, np.uint8)
    assert buf.to_pybytes() == data and view[-17:].tobytes() == data[-17:]
    del buf, view
    assert len(os.listdir("/proc/self/fd")) == before  # unmapped, and its descriptor closed, with the last view
    (tmp_path / "empty").write_bytes(b"")
    assert map_file(tmp_path / "empty").size == 0


def evict(fd: int, offset: int = 0, length: int = 0) -> None:
    """Drop a range of the file's clean pages (all by default) from the page cache (any reader may)."""
    os.fsync(fd)
    os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


@pytest.mark.skipif(not hasattr(os, "RWF_NOWAIT"), reason="the page-cache probe needs preadv(RWF_NOWAIT)")
def test_the_kernel_is_asked_to_read_ahead_only_a_file_not_in_the_page_cache(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(1 << 20))
    advised = []
    real = os.posix_fadvise
    path.read_bytes()
    monkeypatch.setattr(os, "posix_fadvise", lambda *a: advised.append(a[1:]) or real(*a))
    map_file(path)
    assert advised == []  # warm: no walk over the file's pages
    monkeypatch.setattr(os, "posix_fadvise", real)
    fd = os.open(path, os.O_RDONLY)
    try:
        evict(fd)
        monkeypatch.setattr(os, "posix_fadvise", lambda *a: advised.append(a[1:]) or real(*a))
        cold = not shard_reader._cached(fd, 1 << 20)
    finally:
        os.close(fd)
    if not cold:
        pytest.skip("this file system keeps the file cached after POSIX_FADV_DONTNEED")
    assert map_file(path).to_pybytes() == path.read_bytes()
    assert advised == [(0, 1 << 20, os.POSIX_FADV_WILLNEED)]


def test_map_file_where_the_probe_is_not_supported(tmp_path, monkeypatch):
    """Without preadv (or where a file system refuses RWF_NOWAIT) the file counts as not cached: the kernel
    is asked to read it ahead, as pyarrow's memory map always does, and the bytes are the same."""
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 10_000)

    def refuse(*a):
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(os, "preadv", refuse)
    assert map_file(path).to_pybytes() == b"x" * 10_000


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=6), st.integers(0, 2**32), st.integers(1, 4))
def test_rows_by_shard_groups_and_sorts_like_a_sort(sizes, seed, keep_every):
    """A window's (shard, row) pairs, in any order and any subset (a rank's share), grouped by shard with the
    rows ascending: the same as sorting the pairs."""
    rng = np.random.default_rng(seed)
    pairs = np.array([(s, r) for s, n in enumerate(sizes) for r in range(n)], np.int64)
    pairs = pairs[rng.permutation(len(pairs))][::keep_every]
    got = [(s, rows.tolist()) for s, rows in rows_by_shard(pairs[:, 0], pairs[:, 1], tuple(sizes))]
    want = {}
    for s, r in sorted(map(tuple, pairs.tolist())):
        want.setdefault(s, []).append(r)
    assert got == list(want.items())


def test_some_rows_of_a_local_shard_come_in_the_record_batches_that_hold_them(tmp_path):
    """Record batches of 3 rows: asking for rows 4 and 9 of 14 reads the batches [3, 6) and [9, 12) whole
    (memory-mapped, no copy) and no other; a row past the end is a clear error naming the shard."""
    packed = write_packed(tmp_path / "w", sizes=(14,), batch_rows=3, pad=0)
    shards = ShardSet(packed.workdir)
    chunks = shards.read_chunks(0, np.array([4, 9]), verify=True)
    assert [c.rows.tolist() for c in chunks] == [[3, 4, 5], [9, 10, 11]]
    whole = shards.read_rows(0, np.arange(14), verify=False)
    for c in chunks:
        assert (c.input_ids == whole.input_ids[c.rows]).all()
        for k, row in enumerate(c.rows.tolist()):
            a, b = whole.offsets[row], whole.offsets[row + 1]
            assert c.doc_ids[c.offsets[k]:c.offsets[k + 1]].tolist() == whole.doc_ids[a:b].tolist()
            assert (c.doc_lengths[c.offsets[k]:c.offsets[k + 1]] == whole.doc_lengths[a:b]).all()
    one = shards.read_chunks(0, np.array([13]), verify=False)  # the last batch holds one row
    assert [c.rows.tolist() for c in one] == [[12, 13]]
    with pytest.raises(ShardError, match=r"shard-00000\.arrow: not a readable shard \(row 14 asked for, the shard has 14\)"):
        shards.read_chunks(0, np.array([2, 14]), verify=False)


def test_a_shard_read_as_one_batch_or_many_gives_the_same_rows(tmp_path):
    one = write_packed(tmp_path / "one", sizes=(12,), batch_rows=12)
    many = write_packed(tmp_path / "many", sizes=(12,), batch_rows=5)
    a = ShardSet(one.workdir).read_rows(0, np.arange(12), verify=True)
    b = ShardSet(many.workdir).read_rows(0, np.arange(12), verify=True)
    for field in ("input_ids", "offsets", "doc_lengths", "doc_starts", "n_pad", "rows"):
        assert (getattr(a, field) == getattr(b, field)).all(), field
    assert a.doc_ids.tolist() == b.doc_ids.tolist()


@pytest.mark.skipif(not hasattr(os, "RWF_NOWAIT"), reason="the page-cache probe needs preadv(RWF_NOWAIT)")
def test_a_file_evicted_in_part_is_not_taken_for_cached(tmp_path):
    """A 64 MB file is probed at 8 pages: 10 MB evicted from its middle is seen, so the file is not taken for
    cached (and `map_file` would have the kernel read it ahead)."""
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(64 << 20))
    path.read_bytes()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        assert shard_reader._cached(fd, 64 << 20)
        evict(fd, 20 << 20, 10 << 20)
        try:  # checked at 21 MB, away from the probe at 27.4 MB (a missed read may start reading around it)
            os.preadv(fd, [bytearray(1)], 21 << 20, os.RWF_NOWAIT)
            pytest.skip("this file system keeps the range cached after POSIX_FADV_DONTNEED")
        except BlockingIOError:
            pass
        assert not shard_reader._cached(fd, 64 << 20)
    finally:
        os.close(fd)
