"""Reading packed shards for training and export: find them, read chosen rows, check their sha256.

A location is a work directory after pack, its `shards/` folder, or a destination `curate publish` wrote
(s3://, gs://, file:// or a path): the same stores as publish (`curate.stores`). The pack manifest
(`shards/manifest.json`) names every shard with its sequence count, bytes and sha256.

Local shards are memory-mapped: the rows read are copied out of the page cache, nothing else is. Remote
shards are streamed once from the start (Arrow IPC streams have no index), keeping only the rows asked
for. With `verify`, the shard's sha256 is computed on the bytes as they are read (remote) or over the
mapping before parsing (local), and compared with the manifest before any row is returned.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from curate.errors import CurateError
from curate.stores import CHUNK, LocalStore, Store, open_store, safe_uri

PACK_MANIFEST = "manifest.json"


class ShardError(CurateError):
    """A shard cannot be found, read or verified; the message names it."""


@dataclass
class Rows:
    """Some rows of one shard as numpy arrays; the list columns are flat with `offsets` (n + 1)."""

    input_ids: np.ndarray  # (n, seq_len), the shard's dtype
    offsets: np.ndarray  # int64, into the three flat arrays below
    doc_ids: np.ndarray | None  # object (str); None when read with `ids=False`: see `id_strings`
    doc_lengths: np.ndarray  # int32
    doc_starts: np.ndarray  # bool
    n_pad: np.ndarray  # int32, per row
    rows: np.ndarray  # int64: the shard rows these are, ascending
    id_strings: pa.Array | None = None  # with `ids=False`: the flat doc_ids column as read, not converted

    def __len__(self) -> int:
        return len(self.input_ids)


class _HashingReader:
    """A read-only file object that hashes what passes through it."""

    def __init__(self, fh):
        self.fh, self.hash, self.closed = fh, hashlib.sha256(), False

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.hash.update(data)
        return data

    def drain(self) -> None:
        while chunk := self.fh.read(CHUNK):
            self.hash.update(chunk)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


class ShardSet:
    """The shards of a location and how to read them."""

    def __init__(self, location: str | Path, endpoint_url: str | None = None):
        self.location = str(location)
        self.store: Store = open_store(self.location, endpoint_url)
        self.prefix, self.manifest = self._find_manifest()
        entries = self.manifest.get("shards") or []
        if not entries or not all({"file", "sequences", "sha256"} <= set(e) for e in entries):
            raise ShardError(f"{self._where(PACK_MANIFEST)}: lists no shards with file, sequences and sha256")
        self.files = [e["file"] for e in entries]
        self.sizes = tuple(int(e["sequences"]) for e in entries)
        self.sha256 = [e["sha256"] for e in entries]
        self.seq_len = int(self.manifest["seq_len"])
        self.dtype = np.dtype(self.manifest.get("tokenizer", {}).get("dtype", "uint16"))
        # identifies the dataset in a saved loader state: the shards' checksums in order
        self.fingerprint = hashlib.sha256("\n".join(self.sha256).encode()).hexdigest()[:16]

    def _where(self, key: str) -> str:
        return f"{safe_uri(self.store.uri).rstrip('/')}/{self.prefix}{key}"

    def _find_manifest(self) -> tuple[str, dict]:
        for prefix in ("shards/", ""):
            data = self.store.read_bytes(prefix + PACK_MANIFEST)
            if data is not None:
                try:
                    return prefix, json.loads(data)
                except json.JSONDecodeError as exc:
                    raise ShardError(f"{safe_uri(self.store.uri)}/{prefix}{PACK_MANIFEST}: not valid JSON ({exc})") from exc
        raise ShardError(f"{safe_uri(self.location)}: no shards/{PACK_MANIFEST} (expected a work directory after "
                         "pack, its shards/ folder, or a destination written by curate publish)")

    def read_rows(self, shard: int, rows: np.ndarray, verify: bool) -> Rows:
        """The given rows (sorted, distinct) of a shard, in that order and no others, as one block."""
        got = concat_rows(self.read_chunks(shard, rows, verify), self.seq_len, self.dtype)
        if len(got) == len(rows):
            return got
        keep = np.searchsorted(got.rows, rows)
        return concat_rows([take(got, keep)], self.seq_len, self.dtype)

    def read_chunks(self, shard: int, rows: np.ndarray, verify: bool, ids: bool = True) -> list[Rows]:
        """The given rows (sorted, distinct) of a shard, one `Rows` per record batch they fall in. Local
        shards are memory-mapped and their batches kept whole, without a copy (`Rows.rows` says which rows a
        chunk holds); from a stream, a batch partly asked for is reduced to those rows (memory: only them).
        `ids=False`: local batches kept whole leave their doc_ids as Arrow strings (`Rows.id_strings`), for a
        reader that converts only the pieces of the rows it takes (a rank's share: a str object per piece
        is the costliest conversion of a batch)."""
        key = self.prefix + self.files[shard]
        try:
            if isinstance(self.store, LocalStore):
                return self._read_local(shard, self.store.root / key, rows, verify, ids)
            return self._read_stream(shard, key, rows, verify)
        except FileNotFoundError:
            raise ShardError(f"{self._where(self.files[shard])}: missing") from None

    def _check(self, shard: int, digest: str) -> None:
        if digest != self.sha256[shard]:
            raise ShardError(f"{self._where(self.files[shard])}: sha256 {digest} differs from the pack manifest's "
                             f"{self.sha256[shard]}: the shard is corrupted or was replaced")

    def _read_local(self, shard: int, path: Path, rows: np.ndarray, verify: bool, ids: bool = True) -> list[Rows]:
        buf = map_file(path)
        if verify:
            self._check(shard, hashlib.sha256(memoryview(buf)).hexdigest())
        return self._parse(shard, buf, lambda reader: self._whole_batches(reader, rows, ids))  # hashed already

    def _read_stream(self, shard: int, key: str, rows: np.ndarray, verify: bool) -> list[Rows]:
        with self.store.open_read(key) as fh:
            reader = _HashingReader(fh)
            try:
                got = self._parse(shard, pa.PythonFile(reader, mode="r"), lambda ipc_reader: self._take_rows(
                    ipc_reader, rows, read_all=verify))
            except ShardError:
                if verify:  # corruption shows up as a parse error first; name the checksum if it differs
                    reader.drain()
                    self._check(shard, reader.hash.hexdigest())
                raise
            if verify:
                reader.drain()  # the end-of-stream marker, and anything after it
                self._check(shard, reader.hash.hexdigest())
            return got

    def _parse(self, shard: int, source, read) -> list[Rows]:
        """`read` applied to the shard's IPC stream reader; a malformed stream is a ShardError naming the shard."""
        try:
            return read(ipc.open_stream(source))
        except (pa.ArrowException, ValueError, KeyError) as exc:
            raise ShardError(f"{self._where(self.files[shard])}: not a readable shard ({exc})") from exc

    def _take_rows(self, reader, rows: np.ndarray, read_all: bool) -> list[Rows]:
        """A stream's rows asked for, one `Rows` per record batch they fall in: a batch wholly asked for as it
        is, a batch partly asked for reduced to those rows (memory: only them). `read_all`: read to the end of
        the stream even after the last row asked for (a checksum needs every byte)."""
        chunks, start = [], 0
        for batch in reader:
            if not read_all and len(rows) and start > rows[-1]:
                break  # nothing more is asked for, and no checksum needs the rest of the stream
            stop = start + batch.num_rows
            lo, hi = np.searchsorted(rows, [start, stop])
            if hi > lo and hi - lo == batch.num_rows:  # the batch as it is: no copy
                chunks.append(batch_rows(batch, self.seq_len, np.arange(start, stop, dtype=np.int64)))
            elif hi > lo:
                chunks.append(batch_rows(batch.take(pa.array(rows[lo:hi] - start)), self.seq_len, rows[lo:hi]))
            start = stop
        if len(rows) and rows[-1] >= start:
            raise ValueError(f"row {int(rows[-1])} asked for, the shard has {start}")
        return chunks

    def _whole_batches(self, reader, rows: np.ndarray, ids: bool) -> list[Rows]:
        """A memory-mapped shard's record batches that hold any of `rows`, each kept whole. The stream is read
        in one call (parsing a mapped stream reads no values) and the batches are picked by one vectorised
        search, not a Python step per record batch (a shard of short sequences has hundreds)."""
        table = reader.read_all()
        batches = table.to_batches()
        sizes = [b.num_rows for b in batches]
        ends = np.cumsum(sizes, dtype=np.int64)
        if len(rows) and (not len(ends) or rows[-1] >= ends[-1]):
            raise ValueError(f"row {int(rows[-1])} asked for, the shard has {int(ends[-1]) if len(ends) else 0}")
        starts = ends - sizes
        held = np.flatnonzero(np.searchsorted(rows, ends) > np.searchsorted(rows, starts))
        if len(held) == 1:  # one record batch: its own columns, without a table's chunked ones
            k = int(held[0])
            return [batch_rows(batches[k], self.seq_len, np.arange(starts[k], ends[k], dtype=np.int64), ids)]
        if len(held) < len(sizes):
            table = pa.Table.from_batches([batches[k] for k in held.tolist()], table.schema)
        return _table_rows(table, starts[held], self.seq_len, ids)


def map_file(path: Path) -> pa.Buffer:
    """A read-only memory map of a whole file as an Arrow buffer (unmapped, and the descriptor the map holds
    closed, when the last view of it goes).
    Unlike `pa.memory_map`, whose reads ask the kernel to read the range ahead (madvise WILLNEED walks the
    file's pages in the page cache: ~0.1 ms per 8 MB even when every page is there), the kernel is asked
    only when the file is not in the page cache (pages spread over it are probed without waiting, see
    `_cached`); then it reads the whole file ahead asynchronously, which a shuffled read of the rows needs."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return pa.py_buffer(b"")
        mapped = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
        if not _cached(fd, size):
            with contextlib.suppress(OSError, AttributeError):
                os.posix_fadvise(fd, 0, size, os.POSIX_FADV_WILLNEED)
    finally:
        os.close(fd)
    return pa.py_buffer(mapped)


PROBE_EVERY = 8 << 20  # bytes of a file per page probed by `_cached` (3 probes at least, 64 at most)


def _cached(fd: int, size: int) -> bool:
    """Whether the file is in the page cache, judged by pages evenly spaced over it (first and last included,
    one per PROBE_EVERY bytes, 3 to 64: ~3 µs each, where advising the kernel walks every page), each read
    with a flag that makes the read fail instead of waiting for the disk. A file evicted in part is then
    seen as not cached unless the evicted run falls between probes. False where the system cannot tell."""
    page = bytearray(1)
    probes = min(64, max(3, size // PROBE_EVERY))
    try:
        return all(os.preadv(fd, [page], int(offset), os.RWF_NOWAIT) == 1
                   for offset in np.linspace(0, size - 1, probes).astype(np.int64).tolist())
    except (OSError, AttributeError):
        return False


def _doc_ids(flat: pa.Array, starts: int) -> np.ndarray:
    """A flat string column as an object array. Where documents span several pieces each (short sequences:
    a document's id is repeated in every sequence it fills), each distinct id is made a Python str once and
    the column is an index into those (the same values, far fewer objects to make and to hold); otherwise
    every entry is converted. `starts`: how many pieces begin a document, about as many as distinct ids."""
    if 4 * starts < len(flat):
        encoded = flat.dictionary_encode()
        return encoded.dictionary.to_numpy(zero_copy_only=False)[encoded.indices.to_numpy()]
    return flat.to_numpy(zero_copy_only=False)


def _table_rows(table: pa.Table, firsts: np.ndarray, seq_len: int, ids: bool = True) -> list[Rows]:
    """One `Rows` per record batch of `table` (all rows, the first of each at shard row `firsts`), values not
    copied. Each column is converted for all the batches at once (a shard's record batches may be small:
    converting each alone costs more than its rows), each batch's `Rows` holding slices; the token rows stay
    views of each batch's buffer."""
    if table.num_rows == 0:
        return []
    counts = pc.list_value_length(table.column("doc_ids")).to_numpy()
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    doc_starts = pc.list_flatten(table.column("doc_starts")).to_numpy()
    flat_ids = pc.list_flatten(table.column("doc_ids")).combine_chunks()
    doc_ids = _doc_ids(flat_ids, np.count_nonzero(doc_starts)) if ids else None
    doc_lengths = pc.list_flatten(table.column("doc_lengths")).to_numpy()
    n_pad = table.column("n_pad_tokens").to_numpy()
    tokens = [c for c in pc.list_flatten(table.column("input_ids")).chunks if len(c)]
    out, row = [], 0
    for values, first in zip(tokens, firsts.tolist()):
        n = len(values) // seq_len
        a, b = int(offsets[row]), int(offsets[row + n])
        out.append(Rows(values.to_numpy().reshape(n, seq_len), offsets[row:row + n + 1] - a,
                        None if doc_ids is None else doc_ids[a:b], doc_lengths[a:b], doc_starts[a:b],
                        n_pad[row:row + n], np.arange(first, first + n, dtype=np.int64),
                        None if ids else flat_ids.slice(a, b - a)))
        row += n
    if row != table.num_rows:
        raise ValueError(f"input_ids holds {row} sequences of {seq_len} tokens, the shard {table.num_rows} rows")
    return out


def batch_rows(batch: pa.RecordBatch, seq_len: int, rows: np.ndarray, ids: bool = True) -> Rows:
    """A batch's columns as numpy, values not copied. The three piece columns share one list layout (one
    entry per piece, as pack writes them), so doc_ids' offsets serve all three. `ids=False`: doc_ids stays
    Arrow strings (`Rows.id_strings`)."""
    doc_ids = batch.column("doc_ids")
    offsets = doc_ids.offsets.to_numpy()
    starts = pc.list_flatten(batch.column("doc_starts")).to_numpy(zero_copy_only=False)
    flat_ids = pc.list_flatten(doc_ids)
    return Rows(pc.list_flatten(batch.column("input_ids")).to_numpy().reshape(-1, seq_len), offsets - offsets[0],
                _doc_ids(flat_ids, np.count_nonzero(starts)) if ids else None,
                pc.list_flatten(batch.column("doc_lengths")).to_numpy(), starts,
                batch.column("n_pad_tokens").to_numpy(), rows, None if ids else flat_ids)


def take(rows: Rows, keep: np.ndarray) -> Rows:
    """Some of the rows (positions `keep`, ascending), as a new block."""
    lengths = np.diff(rows.offsets)[keep]
    pieces = np.concatenate([np.arange(rows.offsets[k], rows.offsets[k + 1]) for k in keep.tolist()] or [np.zeros(0, np.int64)])
    return Rows(rows.input_ids[keep], np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), rows.doc_ids[pieces],
                rows.doc_lengths[pieces], rows.doc_starts[pieces], rows.n_pad[keep], rows.rows[keep])


def concat_rows(chunks: list[Rows], seq_len: int, dtype: np.dtype) -> Rows:
    if not chunks:
        empty = np.zeros(0, np.int64)
        return Rows(np.zeros((0, seq_len), dtype), np.zeros(1, np.int64), empty.astype(object),
                    empty.astype(np.int32), empty.astype(bool), empty.astype(np.int32), empty)
    if len(chunks) == 1:
        return chunks[0]
    bases = np.cumsum([0] + [c.offsets[-1] for c in chunks[:-1]])
    offsets = np.concatenate([[0]] + [c.offsets[1:] + b for c, b in zip(chunks, bases)]).astype(np.int64)
    return Rows(np.concatenate([c.input_ids for c in chunks]), offsets, np.concatenate([c.doc_ids for c in chunks]),
                np.concatenate([c.doc_lengths for c in chunks]), np.concatenate([c.doc_starts for c in chunks]),
                np.concatenate([c.n_pad for c in chunks]), np.concatenate([c.rows for c in chunks]))
