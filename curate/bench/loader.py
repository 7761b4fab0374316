"""Loader and export throughput on synthesized shards (written by the pack stage's own sequence builder).

Two workloads, each against the same Arrow IPC files read with pyarrow alone (plus numpy):

- one dict per sequence (`PackedShards` iterated): the baseline reads shard after shard in manifest order
  and makes the same dict (`input_ids` row, `doc_ids`, `doc_lengths`, `doc_starts`, `index`); no token
  byte is touched on either side (local rows are views of the memory-mapped files), so this measures the
  per-sequence overhead.
- batches of BATCH (`PackedShards.batches`): both sides hand out the same dict of arrays per batch
  (`input_ids` (b, seq_len) contiguous, `doc_offsets`, flat `doc_ids` / `doc_lengths` / `doc_starts`,
  `index`), and the consumer copies every batch's tokens once into a staging buffer (what a host-to-device
  copy does), so every token byte is read on both sides. pyarrow in file order cuts each record batch's
  columns into views; pyarrow + numpy in the loader's order reads each of the loader's windows of shards
  with pyarrow, puts the window's sequences (or a rank's share of them) in the loader's order with one numpy
  index for the piece columns, and copies each batch's token rows into one array (`np.concatenate` of row
  views): the least work that hands out the loader's batches (pyarrow has no seeded shard-aware shuffle, so
  it is handed the loader's permutation, computed by `curate.epoch_order`).

The loader also does the rank split and (with verify, first epoch) the sha256 of every shard. Local disk:
memory-mapped files (page cache warm after the first round). Loopback S3: moto's server in this process
(so the server's work competes for the same GIL), against pyarrow's S3FileSystem. Modes are timed in
interleaved rounds, best of REPEATS. Export: MB/s of shards read per format and unit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from curate.bench._harness import best_in_rounds

SHARDS, SEQS, SEQ_LEN = 8, 1024, 4096  # 8 shards of 8 MB (uint16): 64 MB, 8192 sequences
REPEATS = 5
BATCH = 16  # sequences per batch in the batch modes (a per-rank micro-batch of 4,096-token sequences)
LOCAL_PASSES = 10
# per loader mode in batches, the pyarrow mode that hands out the same batches (`_table`'s second ratio)
SAME_ORDER = {"loader": "pyarrow + numpy, loader's order", "loader, no shuffle": "pyarrow, file order",
              **{f"loader, {w} ranks (rank 0)": f"pyarrow + numpy, {w} ranks (rank 0), loader's order" for w in (2, 4)}}
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


def write_shards(root: Path, shards: int = SHARDS, seqs: int = SEQS, seq_len: int = SEQ_LEN) -> Path:
    """A work directory with `shards` shards of `seqs` sequences; documents of 100–6000 tokens."""
    from curate.stages.pack import build_sequences

    rng = np.random.default_rng(0)
    out = root / "shards"
    out.mkdir(parents=True)
    records, doc = [], 0
    for k in range(shards):
        n = seqs * seq_len
        lengths = rng.integers(100, 6000, size=n // 100)
        lengths = lengths[: np.searchsorted(np.cumsum(lengths), n)]
        lengths = np.append(lengths, n - lengths.sum())
        ids = pa.array([f"bench/doc-{doc + i}" for i in range(len(lengths))])
        doc += len(lengths)
        tokens = rng.integers(1, 32000, size=n).astype(np.uint16)
        table = build_sequences(tokens, lengths, ids, np.ones(len(lengths), bool), np.zeros(len(lengths), np.int8),
                                seq_len, 0)
        path = out / f"shard-{k:05d}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            for batch in table.to_batches(max_chunksize=1024):
                writer.write_batch(batch)
        data = path.read_bytes()
        records.append({"file": path.name, "sequences": table.num_rows, "bytes": len(data),
                        "sha256": hashlib.sha256(data).hexdigest()})
    (out / "manifest.json").write_text(json.dumps({"seq_len": seq_len, "shards": records,
                                                   "tokenizer": {"dtype": "uint16", "vocab_size": 32000}}))
    return root


def pyarrow_items(open_stream, manifest: dict, rank: int = 0, world_size: int = 1):
    """The baseline reader: every sequence as the loader's dict, in file order, with pyarrow and numpy only.
    With `world_size` > 1, only rank `rank`'s share: global indices rank, rank + world_size, ... (what the
    loader's rank hands out without shuffling), so that a rank is compared with pyarrow doing the same work."""
    import pyarrow.compute as pc

    index, seq_len = 0, manifest["seq_len"]
    for entry in manifest["shards"]:
        for batch in open_stream(entry["file"]):
            ids = pc.list_flatten(batch.column("input_ids")).to_numpy().reshape(-1, seq_len)
            lengths = batch.column("doc_lengths")
            offsets = lengths.offsets.to_numpy().tolist()
            doc_ids = pc.list_flatten(batch.column("doc_ids")).to_numpy(zero_copy_only=False)
            flat_lengths = pc.list_flatten(lengths).to_numpy()
            starts = pc.list_flatten(batch.column("doc_starts")).to_numpy(zero_copy_only=False)
            for i in range((rank - index) % world_size, batch.num_rows, world_size):
                a, b = offsets[i], offsets[i + 1]
                yield {"input_ids": ids[i], "doc_ids": doc_ids[a:b].tolist(), "doc_lengths": flat_lengths[a:b],
                       "doc_starts": starts[a:b], "index": index + i}
            index += batch.num_rows


def _arrow_block(table, seq_len: int, first: int) -> dict:
    """A table (or record batch) of sequences as numpy: token rows (a view), flat piece columns with offsets."""
    import pyarrow.compute as pc

    lengths = table.column("doc_lengths")
    offsets = (lengths.offsets if isinstance(lengths, pa.Array) else lengths.combine_chunks().offsets).to_numpy()
    flat = {k: pc.list_flatten(table.column(k)) for k in ("input_ids", "doc_ids", "doc_lengths", "doc_starts")}
    flat = {k: (v.combine_chunks() if isinstance(v, pa.ChunkedArray) else v).to_numpy(zero_copy_only=False)
            for k, v in flat.items()}
    return {"input_ids": flat["input_ids"].reshape(-1, seq_len), "doc_offsets": offsets - offsets[0],
            "doc_ids": flat["doc_ids"], "doc_lengths": flat["doc_lengths"], "doc_starts": flat["doc_starts"],
            "index": np.arange(first, first + table.num_rows, dtype=np.int64)}


def _cut(block: dict, a: int, b: int) -> dict:
    p, q = block["doc_offsets"][a], block["doc_offsets"][b]
    return {"input_ids": block["input_ids"][a:b], "doc_offsets": block["doc_offsets"][a:b + 1] - p,
            **{k: block[k][p:q] for k in ("doc_ids", "doc_lengths", "doc_starts")}, "index": block["index"][a:b]}


def _join(x: dict, y: dict) -> dict:
    return {"input_ids": np.concatenate([x["input_ids"], y["input_ids"]]),
            "doc_offsets": np.concatenate([x["doc_offsets"], y["doc_offsets"][1:] + x["doc_offsets"][-1]]),
            **{k: np.concatenate([x[k], y[k]]) for k in ("doc_ids", "doc_lengths", "doc_starts", "index")}}


def _in_batches(blocks, size: int):
    """Consecutive blocks' sequences `size` at a time; a batch that spans two blocks is joined (a copy)."""
    held = None
    for block in blocks:
        n, start = len(block["index"]), 0
        if held is not None:
            start = min(size - len(held["index"]), n)
            held = _join(held, _cut(block, 0, start))
            if len(held["index"]) < size:
                continue
            yield held
            held = None
        full = start + (n - start) // size * size
        for a in range(start, full, size):
            yield _cut(block, a, a + size)
        held = _cut(block, full, n) if full < n else None
    if held is not None:
        yield held


def pyarrow_batches(open_stream, manifest: dict, size: int, rank: int = 0, world_size: int = 1):
    """The baseline in batches, file order: every record batch's columns as numpy (token rows are a view
    of the file), cut into batches of `size` (views; a batch spanning two record batches is a copy). With
    `world_size` > 1, rank `rank`'s share as in `pyarrow_items`: its token rows a strided view of each
    record batch (no copy before the consumer's), its pieces gathered."""
    def blocks():
        first = 0
        for entry in manifest["shards"]:
            for batch in open_stream(entry["file"]):
                block = _arrow_block(batch, manifest["seq_len"], first)
                yield block if world_size == 1 else _every(block, (rank - first) % world_size, world_size)
                first += batch.num_rows
    return _in_batches(blocks(), size)


def _pieces(begin: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows' pieces gathered in the rows' order: the new offsets, and the index of every piece to take."""
    out = np.zeros(len(count) + 1, np.int64)
    np.cumsum(count, out=out[1:])
    return out, np.repeat(begin - out[:-1], count) + np.arange(out[-1])


def _every(block: dict, start: int, step: int) -> dict:
    """Rows start, start + step, ... of a block: token rows and index as strided views, pieces gathered."""
    offsets = block["doc_offsets"]
    begin, end = offsets[start:-1:step], offsets[start + 1::step]
    out, pieces = _pieces(begin, end - begin)
    return {"input_ids": block["input_ids"][start::step], "doc_offsets": out,
            **{k: block[k][pieces] for k in ("doc_ids", "doc_lengths", "doc_starts")}, "index": block["index"][start::step]}


class _GatheredRows:
    """Token rows in a given order, as views of the arrays read; a slice [a:b] copies those rows into one
    contiguous (b - a, seq_len) array (`np.concatenate` of the views: numpy's cheapest gather of rows)."""

    def __init__(self, views: list[np.ndarray], seq_len: int):
        self.views, self.seq_len = views, seq_len

    def __getitem__(self, cut: slice) -> np.ndarray:
        rows = self.views[cut]
        return np.concatenate(rows).reshape(len(rows), self.seq_len)


def pyarrow_shuffled_batches(open_stream, manifest: dict, size: int, seed: int, window: int, rank: int = 0,
                             world_size: int = 1):
    """The baseline in batches, in the loader's order: per window of shards (the loader's windows), the
    shards' record batches read with pyarrow and their columns taken as numpy (token rows views of the
    files), the window's sequences put in the loader's order (rank `rank`'s share: positions rank, rank +
    world_size, ... of the epoch) with one numpy index for the piece columns, and each batch's token rows
    copied into one contiguous array; then cut into batches of `size` as in file order. pyarrow has no
    seeded shard-aware shuffle of its own, so it is handed the loader's permutation (`EpochOrder`, pure numpy)."""
    from curate.epoch_order import EpochOrder, rank_positions

    order = EpochOrder(tuple(e["sequences"] for e in manifest["shards"]), seed, 0, True, window)
    offsets, starts, seq_len = order.offsets, order.window_starts(), manifest["seq_len"]

    def blocks():
        for w, shards in enumerate(order.windows()):
            read = [_arrow_block(batch, seq_len, 0) for s in shards.tolist()
                    for batch in open_stream(manifest["shards"][s]["file"])]
            views = [row for block in read for row in block["input_ids"]]
            ends = np.cumsum([0] + [int(b["doc_offsets"][-1]) for b in read])
            bounds = np.concatenate([b["doc_offsets"][:-1] + e for b, e in zip(read, ends[:-1])] + [ends[-1:]])
            local = np.concatenate([np.arange(offsets[s], offsets[s + 1]) for s in shards.tolist()])
            slot_of = np.empty(int(local.max()) + 1, np.int64)
            slot_of[local] = np.arange(len(local))
            positions = rank_positions(int(starts[w]), int(starts[w + 1]), 0, rank, world_size)
            seqs = order.window_sequences(w)[positions - starts[w]]
            slots = slot_of[seqs]
            out, pieces = _pieces(bounds[slots], bounds[slots + 1] - bounds[slots])
            block = {"input_ids": _GatheredRows([views[k] for k in slots.tolist()], seq_len), "doc_offsets": out,
                     **{k: np.concatenate([b[k] for b in read])[pieces] for k in ("doc_ids", "doc_lengths", "doc_starts")},
                     "index": seqs}
            yield block
    return _in_batches(blocks(), size)


def _consume(batches) -> int:
    """What a trainer does with a batch at the least: its tokens copied once (to a staging buffer, as for
    a host-to-device copy), so every token byte is read on both sides."""
    n, staging = 0, None
    for batch in batches:
        ids = batch["input_ids"]
        if staging is None or staging.shape[0] < ids.shape[0]:
            staging = np.empty_like(ids)
        np.copyto(staging[: ids.shape[0]], ids)
        n += ids.shape[0]
    return n


def _drain(items) -> int:
    n = 0
    for item in items:
        n += item["input_ids"].shape[0] > 0
    return n


def _passes(make, passes: int):
    """`passes` epochs of what `make()` returns: a fresh reader per epoch (so `verify` hashes every time)."""
    return lambda: sum(_drain(make()) for _ in range(passes))


def bench_local(workdir: Path, passes: int = LOCAL_PASSES, batch: int = BATCH, repeats: int = REPEATS
                ) -> tuple[dict[str, float], dict[str, float]]:
    """Each timing is `passes` epochs (LOCAL_PASSES by default: one epoch of the default data takes ~10 ms,
    too short to time on a shared machine). Per-item and batch modes are timed in the same interleaved rounds."""
    from curate.loader import PackedShards

    shards = workdir / "shards"
    manifest = json.loads((shards / "manifest.json").read_text())

    def stream(name):
        with pa.memory_map(str(shards / name)) as source:
            yield from pa.ipc.open_stream(source)

    def batched(make):
        return lambda: sum(_consume(make()) for _ in range(passes))

    items = {
        "pyarrow": _passes(lambda: pyarrow_items(stream, manifest), passes),
        "loader": _passes(lambda: PackedShards(workdir, seed=0, verify=False), passes),
        "loader, no shuffle": _passes(lambda: PackedShards(workdir, shuffle=False, verify=False), passes),
        "loader, verify": _passes(lambda: PackedShards(workdir, seed=0, verify=True), passes),
        "pyarrow, 2 ranks (rank 0)": _passes(lambda: pyarrow_items(stream, manifest, 0, 2), passes),
        "loader, 2 ranks (rank 0)": _passes(lambda: PackedShards(workdir, seed=0, verify=False, world_size=2),
                                            passes),
        "pyarrow, 4 ranks (rank 0)": _passes(lambda: pyarrow_items(stream, manifest, 0, 4), passes),
        "loader, 4 ranks (rank 0)": _passes(lambda: PackedShards(workdir, seed=0, verify=False, world_size=4),
                                            passes),
    }
    batches = {
        "pyarrow, file order": batched(lambda: pyarrow_batches(stream, manifest, batch)),
        "pyarrow + numpy, loader's order": batched(lambda: pyarrow_shuffled_batches(stream, manifest, batch, 0, 2)),
        "loader": batched(lambda: PackedShards(workdir, seed=0, verify=False).batches(batch)),
        "loader, no shuffle": batched(lambda: PackedShards(workdir, shuffle=False, verify=False).batches(batch)),
        "pyarrow, 2 ranks (rank 0), file order": batched(lambda: pyarrow_batches(stream, manifest, batch, 0, 2)),
        "pyarrow + numpy, 2 ranks (rank 0), loader's order": batched(
            lambda: pyarrow_shuffled_batches(stream, manifest, batch, 0, 2, 0, 2)),
        "loader, 2 ranks (rank 0)": batched(
            lambda: PackedShards(workdir, seed=0, verify=False, world_size=2).batches(batch)),
        "pyarrow, 4 ranks (rank 0), file order": batched(lambda: pyarrow_batches(stream, manifest, batch, 0, 4)),
        "pyarrow + numpy, 4 ranks (rank 0), loader's order": batched(
            lambda: pyarrow_shuffled_batches(stream, manifest, batch, 0, 2, 0, 4)),
        "loader, 4 ranks (rank 0)": batched(
            lambda: PackedShards(workdir, seed=0, verify=False, world_size=4).batches(batch)),
    }
    times = best_in_rounds({**{f"items: {k}": f for k, f in items.items()},
                            **{f"batches: {k}": f for k, f in batches.items()}}, repeats)
    per_epoch = {name: t / passes for name, t in times.items()}
    return ({k: per_epoch[f"items: {k}"] for k in items}, {k: per_epoch[f"batches: {k}"] for k in batches})


def bench_s3(workdir: Path) -> dict[str, float]:
    import pyarrow.fs as pafs
    from moto.server import ThreadedMotoServer

    from curate.loader import PackedShards
    from curate.publish import publish

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        import boto3

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
        dest = "s3://bench/ds"
        publish(workdir, dest, endpoint_url=endpoint, jobs=2)
        fs = pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http")
        manifest = json.loads((workdir / "shards" / "manifest.json").read_text())

        def stream(name):
            with fs.open_input_stream(f"bench/ds/shards/{name}") as fh:
                yield from pa.ipc.open_stream(fh)

        times = best_in_rounds({
            "items: pyarrow S3FileSystem": lambda: _drain(pyarrow_items(stream, manifest)),
            "items: loader": lambda: _drain(PackedShards(dest, seed=0, endpoint_url=endpoint, verify=False)),
            "items: loader, verify": lambda: _drain(PackedShards(dest, seed=0, endpoint_url=endpoint, verify=True)),
            "batches: pyarrow S3FileSystem, file order": lambda: _consume(pyarrow_batches(stream, manifest, BATCH)),
            "batches: pyarrow S3FileSystem, loader's order":
                lambda: _consume(pyarrow_shuffled_batches(stream, manifest, BATCH, 0, 2)),
            "batches: loader": lambda: _consume(PackedShards(dest, seed=0, endpoint_url=endpoint,
                                                             verify=False).batches(BATCH)),
            "batches: loader, verify": lambda: _consume(PackedShards(dest, seed=0, endpoint_url=endpoint,
                                                                     verify=True).batches(BATCH)),
        }, REPEATS)
        return ({k[7:]: t for k, t in times.items() if k.startswith("items: ")},
                {k[9:]: t for k, t in times.items() if k.startswith("batches: ")})
    finally:
        server.stop()


def bench_export(workdir: Path, out: Path) -> dict[str, float]:
    from curate.export import export

    runs = {}
    for fmt in ("megatron", "jsonl", "hf"):
        for unit in ("sequence", "document"):
            def run(fmt=fmt, unit=unit):
                prefix = out / f"{fmt}-{unit}"
                (out / f"{prefix.name}.manifest.json").unlink(missing_ok=True)
                export(workdir, fmt, prefix, unit=unit)
            runs[f"{fmt}, {unit}"] = run
    return best_in_rounds(runs, 1)


def check_megatron_core(workdir: Path, out: Path) -> str:
    """The Megatron export read back by megatron-core's own IndexedDataset (when it and torch are installed;
    neither is a curate dependency): every entry must equal the shards' sequences / documents."""
    try:
        import megatron.core
        from megatron.core.datasets.indexed_dataset import IndexedDataset
    except ImportError:
        return "megatron-core check: skipped (megatron-core and torch are not installed)"
    from curate.export import export
    from curate.loader import PackedShards

    by_index = sorted(PackedShards(workdir, verify=False), key=lambda x: x["index"])
    want = {"sequence": [x["input_ids"][: sum(x["doc_lengths"])].tolist() for x in by_index]}
    stream = [t for seq in want["sequence"] for t in seq]
    lines = []
    for unit in ("sequence", "document"):
        export(workdir, "megatron", out / f"mcore-{unit}", unit=unit)
        ds = IndexedDataset(str(out / f"mcore-{unit}"))
        got = [ds[i].tolist() for i in range(len(ds))]
        ok = got == want["sequence"] if unit == "sequence" else [t for g in got for t in g] == stream
        lines.append(f"{unit}: {len(ds)} entries, {'equal' if ok else 'DIFFERENT'}")
        if not ok:
            raise AssertionError(f"megatron-core reads the {unit} export differently from the shards")
    return f"megatron-core {megatron.core.__version__} IndexedDataset reads the export: " + "; ".join(lines)


def _table(title: str, times: dict[str, float], mb: float, n: int, base: str | None,
           same_order: dict[str, str] | None = None) -> None:
    """seq/s and MB/s count what a mode delivers: rank 0 of N gets 1/N of the sequences. The first ratio is
    against `base`, except for rank 0 of N: against the pyarrow mode of the same rank split (pyarrow reading
    rank 0's share, in file order), so both sides deliver the same number of sequences. `same_order` names,
    per mode, the pyarrow mode that delivers the same sequences in the same order, for a second ratio."""
    print(title)
    head = f"{'mode':<52}{'seconds':>9}{'seq/s':>10}{'MB/s':>9}"
    head += f"{'vs ' + base:>24}" if base else ""
    head += f"{'vs same order':>15}" if same_order else ""
    print(head)
    for name, t in times.items():
        ranks = next((w for w in (2, 4) if f"{w} ranks" in name), 1)
        share = 1 / ranks
        ranked = next((k for k in times if k.startswith(f"pyarrow, {ranks} ranks")), None)  # its file-order share
        line = f"{name:<52}{t:>9.3f}{n * share / t:>10.0f}{mb * share / t:>9.1f}"
        if base:
            line += f"{times[ranked] / t:>23.2f}x" if share < 1 and ranked else f"{times[base] / t * share:>23.2f}x"
        if same_order:
            other = same_order.get(name)
            line += f"{times[other] / t:>14.2f}x" if other else f"{'':>15}"  # both deliver the same sequences
        print(line)


def bench_short(tmp: Path) -> None:
    """`python -m curate.bench.loader short`: many short sequences (8 shards of 131,072 sequences of 64 tokens, 1,048,576 in all),
    where per-sequence and per-window work weigh most; one epoch per timing, batches of 256, best of 3."""
    started = time.perf_counter()
    workdir = write_shards(tmp / "short", shards=8, seqs=131072, seq_len=64)
    manifest = json.loads((workdir / "shards" / "manifest.json").read_text())
    mb, n = sum(s["bytes"] for s in manifest["shards"]) / 1e6, sum(s["sequences"] for s in manifest["shards"])
    print(f"loader short: 8 shards, {n} sequences of 64 (uint16), {mb:.0f} MB "
          f"(written in {time.perf_counter() - started:.1f}s); best of 3, interleaved rounds")
    items, batches = bench_local(workdir, passes=1, batch=256, repeats=3)
    _table("local disk, one dict per sequence", items, mb, n, "pyarrow")
    _table("local disk, batches of 256 (tokens copied once by the consumer)", batches, mb, n, "pyarrow, file order",
           SAME_ORDER)


def main() -> None:
    logging.getLogger("curate.export").setLevel(logging.WARNING)
    saved = {k: os.environ.get(k) for k in FAKE_CREDENTIALS}
    os.environ.update(FAKE_CREDENTIALS)  # never send real credentials anywhere, not even to loopback
    try:
        with tempfile.TemporaryDirectory(prefix="curate-bench-loader-") as tmp:
            only = [a for a in sys.argv[1:] if a in ("short", "no-s3")]  # python -m curate.bench.loader short
            if "short" in only:
                return bench_short(Path(tmp))
            started = time.perf_counter()
            workdir = write_shards(Path(tmp) / "work")
            manifest = json.loads((workdir / "shards" / "manifest.json").read_text())
            mb = sum(s["bytes"] for s in manifest["shards"]) / 1e6
            n = sum(s["sequences"] for s in manifest["shards"])
            print(f"loader: {SHARDS} shards, {n} sequences of {SEQ_LEN} (uint16), {mb:.0f} MB "
                  f"(written in {time.perf_counter() - started:.1f}s); best of {REPEATS}, interleaved rounds")
            items, batches = bench_local(workdir)
            _table("local disk (memory-mapped, page cache warm), one dict per sequence", items, mb, n, "pyarrow")
            _table(f"local disk, batches of {BATCH} (tokens copied once by the consumer)", batches, mb, n,
                   "pyarrow, file order", SAME_ORDER)
            if "no-s3" not in only:
                items, batches = bench_s3(workdir)
                _table("loopback S3 (moto in this process), one dict per sequence", items, mb, n,
                       "pyarrow S3FileSystem")
                _table(f"loopback S3, batches of {BATCH}", batches, mb, n, "pyarrow S3FileSystem, file order",
                       {"loader": "pyarrow S3FileSystem, loader's order",
                        "loader, verify": "pyarrow S3FileSystem, loader's order"})
            (Path(tmp) / "out").mkdir()
            _table("export (local disk; MB/s of shards read)", bench_export(workdir, Path(tmp) / "out"), mb, n, None)
            print(check_megatron_core(workdir, Path(tmp) / "out"))
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


if __name__ == "__main__":
    main()
