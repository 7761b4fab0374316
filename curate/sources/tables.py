"""Parquet and Arrow IPC readers, vectorised: columns are mapped with Arrow compute, not per row.

Parquet files are split into partitions by row groups; Arrow IPC files larger than a partition by runs of
record batches (stream-format and compressed files are read whole: they have no index of batches). A row
group or record batch larger than a partition is itself cut: its partitions are equal row slices of it
(`row_slice` (k, n): rows [k*R//n, (k+1)*R//n) of its R rows), read in order by one task from one
`RowStream`, as the ranges of a compressed jsonl file are read from one `jsonl.LineStream`. Batches are
read at most `BATCH_BYTES` at a time (by the row group's mean row size), so memory follows that, not the
row group. Only the columns the recipe names are read.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from curate.sources.files import InputFile, compression_of, is_uri, open_binary, range_count
from curate.sources.records import RAW_SCHEMA

# Rows per read batch are chosen so that a batch holds about this many (uncompressed) bytes, at most 8192
# rows; a parquet file is read through a buffer of READ_BUFFER bytes, not a whole column chunk at a time.
BATCH_BYTES = 8 << 20
READ_BUFFER = 8 << 20


def open_parquet(file: InputFile) -> pq.ParquetFile:
    if compression_of(file.uri) or file.uri.startswith(("http://", "https://")):
        with open_binary(file.uri) as fh:  # not seekable: buffer it
            return pq.ParquetFile(io.BytesIO(fh.read()), buffer_size=READ_BUFFER, pre_buffer=False)
    if is_uri(file.uri):
        import pyarrow.fs as pafs

        fs, path = pafs.FileSystem.from_uri(file.uri)
        return pq.ParquetFile(fs.open_input_file(path), buffer_size=READ_BUFFER, pre_buffer=False)
    return pq.ParquetFile(file.uri, buffer_size=READ_BUFFER, pre_buffer=False)


def table_columns(file: InputFile, fmt: str) -> list[str]:
    """Column names of a parquet or arrow file, read from its metadata only."""
    if fmt == "parquet":
        return open_parquet(file).schema_arrow.names
    return _open_arrow(file).schema.names


def _open_arrow(file: InputFile):
    """A reader of the file: random access (memory-mapped, or a filesystem file) for an uncompressed IPC
    file, so a run of batches reads only those; the whole file in memory otherwise."""
    if not compression_of(file.uri) and not file.uri.startswith(("http://", "https://")):
        try:
            if is_uri(file.uri):
                import pyarrow.fs as pafs

                fs, path = pafs.FileSystem.from_uri(file.uri)
                return ipc.open_file(fs.open_input_file(path))
            return ipc.open_file(pa.memory_map(file.uri.removeprefix("file://")))
        except pa.ArrowInvalid:
            pass  # the stream format: read whole below
    with open_binary(file.uri) as fh:
        data = fh.read()
    try:
        return ipc.open_file(pa.BufferReader(data))
    except pa.ArrowInvalid:
        return ipc.open_stream(pa.BufferReader(data))


def arrow_batch_ranges(file: InputFile, target: int) -> list[tuple[tuple[int, int] | None, tuple[int, int] | None]]:
    """(batch run, row slice) partitions of an IPC file larger than `target`: runs of about target bytes by
    the file's mean batch size (its footer holds no sizes); when that mean is above `target`, each batch
    cut into equal row slices so the file still gives `range_count` partitions. [(None, None)] (the whole
    file) for a smaller or stream-format file."""
    if file.size <= target:
        return [(None, None)]
    reader = _open_arrow(file)
    batches = getattr(reader, "num_record_batches", 0)
    if batches == 0:
        return [(None, None)]
    n = range_count(file.size, target)
    if file.size / batches > target:  # batches bigger than a partition: each one cut in row slices
        per = -(-n // batches)
        return [((b, b + 1), (k, per)) for b in range(batches) for k in range(per)]
    n = min(batches, n)
    bounds = [round(i * batches / n) for i in range(n + 1)]
    return [(r, None) for r in zip(bounds[:-1], bounds[1:])]


def read_parquet(file: InputFile, row_groups: tuple[int, int], source, prefix: str) -> Iterator[pa.Table]:
    pf = open_parquet(file)
    offset = sum(pf.metadata.row_group(i).num_rows for i in range(row_groups[0]))
    for batch in pf.iter_batches(row_groups=range(*row_groups), columns=_wanted(source),
                                 batch_size=batch_rows(pf.metadata, row_groups)):
        yield to_raw(pa.Table.from_batches([batch]), source, prefix, file.relname, offset)
        offset += batch.num_rows


def batch_rows(meta, row_groups: tuple[int, int]) -> int:
    """Rows per read batch: about BATCH_BYTES by the row groups' mean row size, at most 8192."""
    rows = sum(meta.row_group(i).num_rows for i in range(*row_groups))
    nbytes = sum(meta.row_group(i).total_byte_size for i in range(*row_groups))
    return max(1, min(8192, BATCH_BYTES * rows // nbytes)) if nbytes else 8192


def read_arrow(file: InputFile, source, prefix: str, batch_range: tuple[int, int] | None = None) -> Iterator[pa.Table]:
    """The file's records, or those of the record batches [start, end) (row numbers, hence default ids, as
    when the file is read whole)."""
    reader = _open_arrow(file)
    if hasattr(reader, "num_record_batches"):
        start, end = batch_range or (0, reader.num_record_batches)
        offset = sum(reader.get_batch(i).num_rows for i in range(start))  # zero-copy: no batch body is read locally
        batches = (reader.get_batch(i) for i in range(start, end))
    else:
        offset, batches = 0, reader
    for batch in batches:
        yield _arrow_raw(batch, source, prefix, file.relname, offset)
        offset += batch.num_rows


def _arrow_raw(batch: pa.RecordBatch, source, prefix: str, relname: str, offset: int) -> pa.Table:
    table = pa.Table.from_batches([batch]).select([c for c in _wanted(source) if c in batch.schema.names])
    return to_raw(table, source, prefix, relname, offset)


def slice_bounds(row_slice: tuple[int, int], rows: int) -> tuple[int, int]:
    """Rows [start, end) of slice k of n of a unit of `rows` rows."""
    k, n = row_slice
    return k * rows // n, (k + 1) * rows // n


class RowStream:
    """The rows of one unit (a parquet row group or an arrow record batch, `row_groups`) read once, in
    batches of at most about BATCH_BYTES, and handed to its row slices in order: `tables((k, n))` gives the
    raw tables of slice k and keeps the rest of the last batch for the next slice. Default ids are the
    file's row numbers, as when the file is read whole. After a read error the stream gives nothing more
    (the error went to the slice that met it)."""

    def __init__(self, file: InputFile, row_groups: tuple[int, int], source, prefix: str, fmt: str):
        self.file, self.row_groups, self.source, self.prefix, self.fmt = file, row_groups, source, prefix, fmt
        self.pos, self.pending, self.failed, self.batches = 0, None, False, None

    def __enter__(self) -> RowStream:
        start, end = self.row_groups
        if self.fmt == "parquet":
            pf = open_parquet(self.file)
            self.offset = sum(pf.metadata.row_group(i).num_rows for i in range(start))
            self.rows = sum(pf.metadata.row_group(i).num_rows for i in range(start, end))
            self.batches = pf.iter_batches(row_groups=range(start, end), columns=_wanted(self.source),
                                           batch_size=batch_rows(pf.metadata, self.row_groups))
        else:
            reader = _open_arrow(self.file)
            self.offset = sum(reader.get_batch(i).num_rows for i in range(start))
            units = [reader.get_batch(i) for i in range(start, end)]  # zero-copy from a memory-mapped file
            self.rows = sum(b.num_rows for b in units)
            self.batches = (piece for b in units for piece in _pieces(b))
        return self

    def __exit__(self, *exc) -> None:
        self.batches = None

    def tables(self, row_slice: tuple[int, int]) -> Iterator[pa.Table]:
        for batch, row in self._rows(*slice_bounds(row_slice, self.rows)):
            yield _arrow_raw(batch, self.source, self.prefix, self.file.relname, self.offset + row)

    def skip(self, row_slice: tuple[int, int]) -> None:
        """Passes over a slice's rows (a slice done by an earlier attempt): read, not converted."""
        for _ in self._rows(*slice_bounds(row_slice, self.rows)):
            pass

    def _rows(self, start: int, end: int) -> Iterator[tuple[pa.RecordBatch, int]]:
        """(batch, its first row's number in the unit) of rows [start, end) of the unit."""
        while not self.failed and self.pos < end:
            if self.pending is None:
                try:
                    self.pending = next(self.batches, None)
                except Exception:
                    self.failed = True
                    raise
                if self.pending is None:
                    return
            batch, at = self.pending, self.pos
            take = min(batch.num_rows, end - at)
            self.pending = batch.slice(take) if take < batch.num_rows else None
            self.pos += take
            if at + take > start:
                skip = max(0, start - at)
                yield batch.slice(skip, take - skip), at + skip


def _pieces(batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
    """A record batch in zero-copy slices of about BATCH_BYTES (by its mean row size), at most 8192 rows."""
    rows = max(1, min(8192, BATCH_BYTES * batch.num_rows // max(1, batch.nbytes)))
    for at in range(0, batch.num_rows, rows):
        yield batch.slice(at, rows)


def _wanted(source) -> list[str]:
    cols = [source.text_field, source.id_field, source.lang_field, source.path_field, *source.meta_fields]
    return list(dict.fromkeys(c for c in cols if c))


def _str_or_null(table: pa.Table, name: str | None, n: int) -> pa.Array:
    if not name or name not in table.column_names:
        return pa.nulls(n, pa.string())
    col = table[name].combine_chunks()
    return col if pa.types.is_string(col.type) else pc.cast(col, pa.string(), safe=False)


def to_raw(table: pa.Table, source, prefix: str, relname: str, offset: int) -> pa.Table:
    """Map one batch of a source table to the raw-record schema."""
    n = table.num_rows
    rows = pc.cast(pa.array(range(offset, offset + n), pa.int64()), pa.string())
    default_ids = pc.binary_join_element_wise(f"{prefix}{relname}#", rows, "")
    ids = _str_or_null(table, source.id_field, n)
    ids = pc.if_else(pc.is_valid(ids), pc.binary_join_element_wise(prefix, ids, ""), default_ids)
    text, error, detail = _text_column(table[source.text_field].combine_chunks(), source.text_field, relname, rows)
    lang = pc.fill_null(_str_or_null(table, source.lang_field, n), source.lang) if source.lang else _str_or_null(table, source.lang_field, n)
    path = pc.fill_null(_str_or_null(table, source.path_field, n), relname)
    meta = _meta(table, source.meta_fields, n)
    raw_bytes = pc.fill_null(pc.cast(pc.binary_length(text), pa.int64()), 0)
    arrays = [ids, text, lang, path, meta, error, detail, raw_bytes]
    return pa.Table.from_arrays([a.cast(f.type) for a, f in zip(arrays, RAW_SCHEMA)], schema=RAW_SCHEMA)


def _text_column(col: pa.Array, name: str, relname: str, rows: pa.Array):
    """(text, read_error, read_detail): strings pass; binary is decoded; other types are wrong_type."""
    n = len(col)
    where = pc.binary_join_element_wise(f"{relname}#", rows, "")
    if pa.types.is_large_string(col.type):
        col = col.cast(pa.string())
    if pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type):
        values = [None if v is None else _decode(v) for v in col.to_pylist()]
        text = pa.array([v if isinstance(v, str) else None for v in values], pa.string())
        bad = pa.array([isinstance(v, Exception) for v in values])
        error = pc.if_else(bad, "ingest.bad_utf8", pc.if_else(pc.is_null(col), "ingest.missing_text", pa.nulls(n, pa.string())))
    elif pa.types.is_string(col.type):
        text = col
        error = pc.if_else(pc.is_null(col), "ingest.missing_text", pa.nulls(n, pa.string()))
    else:
        text = pa.nulls(n, pa.string())
        error = pc.if_else(pc.is_null(col), "ingest.missing_text", "ingest.wrong_type")
        where = pc.binary_join_element_wise(where, f": {name!r} is {col.type}, not a string", "")
    detail = pc.if_else(pc.is_valid(error), where, pa.nulls(n, pa.string()))
    return text, error, detail


def _decode(value: bytes):
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc


def _meta(table: pa.Table, fields: list[str], n: int) -> pa.Array:
    if not fields:
        return pa.nulls(n, pa.string())
    cols = {f: (table[f].to_pylist() if f in table.column_names else [None] * n) for f in fields}
    return pa.array(
        [json.dumps({f: cols[f][i] for f in fields}, sort_keys=True, default=str) for i in range(n)], pa.string()
    )
