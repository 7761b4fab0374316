"""pack's worker side: scan token counts, scatter planned pieces by shard, write shards.

Phases (the plan between scan and scatter is computed by the driver from per-document numbers only):
    scan_part    per tokenized part: kind, source, lang, n_tokens (no token ids are read)
    scatter_part per tokenized part: the token ids of every planned piece, grouped by output shard, and the
                 part's ledger (documents the plan did not select are `pack.not_selected`)
    write_shard  per shard: its pieces from every scatter file, in stream order, cut into sequences and
                 written as one Arrow IPC stream, atomically
Each task's output is complete once its `.json` record exists, so a killed run resumes per part and shard.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate import parts
from curate.ledger import Ledger
from curate.schema import DROP_DETAIL, DROP_REASON, DROPPED_SCHEMA, ID, KIND, LANG, SOURCE, TEXT
from curate.stages import pack as P
from curate.stages.tokenize import IDS, N_TOKENS
from curate.tasks import split
from curate.workpath import Digest, WorkPath

PIECE_SCHEMA = pa.schema([("part", pa.int32()), ("row", pa.int64()), ("offset", pa.int64()), ("length", pa.int64()),
                          ("shard", pa.int32()), ("pos", pa.int64())])
SELECTED_SCHEMA = pa.schema([("part", pa.int32()), ("row", pa.int64()), ("copies", pa.int64())])


def scan_part(path: str) -> pa.Table:
    return pq.read_table(WorkPath(path).open_input(), columns=[KIND, SOURCE, LANG, N_TOKENS])


def scatter_part(path: str, index: int, work: str, out_dir: str) -> dict:
    """Writes `work/scatter/part-N.parquet` (pieces grouped by shard) and the part's dropped file and record."""
    name = WorkPath(path).stem
    record_file = WorkPath(out_dir) / "_parts" / f"{name}.json"
    if record_file.is_file():
        return parts.read_json(record_file)
    pieces = parts.read_groups(WorkPath(work) / "pieces.parquet", [index])
    selected = parts.read_groups(WorkPath(work) / "selected.parquet", [index])
    table = pq.read_table(WorkPath(path).open_input(), columns=[ID, TEXT, KIND, SOURCE, IDS])
    scatter_file = WorkPath(work) / "scatter" / f"{name}.parquet"
    written = Digest()
    parts.write_grouped(scatter_file, gather_pieces(table, pieces), "shard", parts.SCRATCH_PARQUET, written)
    decided = _decided(table, pieces, selected)
    ledger = Ledger("pack")
    ledger.count(decided)
    dropped_writer = parts.ParquetPartWriter(WorkPath(out_dir) / "dropped" / f"{name}.parquet", DROPPED_SCHEMA)
    dropped_writer.write(split(decided, "pack")[1])
    record = {"name": name, "identity": name, "ledger": ledger.to_json(), "extra": {},
              "outputs": {"kept": {"file": scatter_file.name, "rows": pieces.num_rows,
                                   "sha256": written.sha256},
                          "dropped": dropped_writer.close()}}
    parts.write_json(record_file, record)
    return record


def gather_pieces(table: pa.Table, pieces: pa.Table) -> pa.Table:
    """The token ids of every piece (a slice of a document's ids), with its shard, stream position, id,
    side and whether it begins its document. Vectorised: one gather over the flattened ids."""
    ids = table[IDS].combine_chunks()
    values = pc.list_flatten(ids).to_numpy()
    offsets = ids.offsets.to_numpy()
    offsets = offsets - offsets[0]
    row, offset, length = (pieces[c].to_numpy() for c in ("row", "offset", "length"))
    starts = offsets[row] + offset
    piece_offsets = np.concatenate([[0], np.cumsum(length)]).astype(np.int64)
    index = np.repeat(starts - piece_offsets[:-1], length) + np.arange(piece_offsets[-1])
    tokens = pa.LargeListArray.from_arrays(pa.array(piece_offsets), pa.array(values[index]))
    return pa.table({
        "shard": pieces["shard"], "pos": pieces["pos"], "id": table[ID].take(pa.array(row)),
        "side": pa.array((table[KIND].to_numpy(zero_copy_only=False)[row] == "text").astype(np.int8)),
        "begins": pa.array(offset == 0), "tokens": tokens,
    })


def _decided(table: pa.Table, pieces: pa.Table, selected: pa.Table) -> pa.Table:
    """id, text, source and the decision of every row (the ledger counts every row's bytes from its text)."""
    n = table.num_rows
    in_output = np.bincount(pieces["row"].to_numpy(), minlength=n) > 0 if pieces.num_rows else np.zeros(n, bool)
    planned = np.zeros(n, dtype=bool)
    planned[selected["row"].to_numpy()] = True
    reason = np.where(in_output, None, np.where(planned, "pack.tail_dropped", "pack.not_selected"))
    return table.select([ID, TEXT, SOURCE]).append_column(DROP_REASON, pa.array(reason, pa.string())) \
        .append_column(DROP_DETAIL, pa.nulls(n, pa.string()))


def write_shard(index: int, scatter_files: list[str], out: str, record: str, seq_len: int, pad_id: int,
                dtype: str) -> dict:
    """One shard: its pieces from every scatter file, sorted by stream position, as sequences."""
    if WorkPath(record).is_file() and WorkPath(out).is_file():
        return parts.read_json(record)
    got = pa.concat_tables([parts.read_groups(f, [index]) for f in scatter_files]).sort_by("pos")
    tokens = pc.list_flatten(got["tokens"]).to_numpy().astype(dtype) if got.num_rows else np.zeros(0, dtype)
    table = P.build_sequences(tokens, pc.list_value_length(got["tokens"]).to_numpy(), got["id"].combine_chunks(),
                              got["begins"].to_numpy(zero_copy_only=False), got["side"].to_numpy(), seq_len, pad_id)
    written = Digest()
    with WorkPath(out).writer(written) as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=1024):
            writer.write_batch(batch)
    info = {"file": WorkPath(out).name, "sha256": written.sha256, "bytes": written.size,
            "sequences": table.num_rows, "code_tokens": int(pc.sum(table["n_code_tokens"]).as_py() or 0),
            "text_tokens": int(pc.sum(table["n_text_tokens"]).as_py() or 0),
            "pad_tokens": int(pc.sum(table["n_pad_tokens"]).as_py() or 0)}
    parts.write_json(record, info)
    return info
