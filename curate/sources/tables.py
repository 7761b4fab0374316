"""Parquet and Arrow IPC readers, vectorised: columns are mapped with Arrow compute, not per row.

Parquet files are split into partitions by row groups; Arrow IPC files larger than a partition by runs of
record batches (stream-format and compressed files are read whole: they have no index of batches). Only
the columns the recipe names are read.
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


def open_parquet(file: InputFile) -> pq.ParquetFile:
    if compression_of(file.uri) or file.uri.startswith(("http://", "https://")):
        with open_binary(file.uri) as fh:  # not seekable: buffer it
            return pq.ParquetFile(io.BytesIO(fh.read()))
    if is_uri(file.uri):
        import pyarrow.fs as pafs

        fs, path = pafs.FileSystem.from_uri(file.uri)
        return pq.ParquetFile(fs.open_input_file(path))
    return pq.ParquetFile(file.uri)


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


def arrow_batch_ranges(file: InputFile, target: int) -> list[tuple[int, int] | None]:
    """Runs of record batches of an IPC file larger than `target`, about target bytes each by the file's
    mean batch size (its footer holds no sizes); [None] (the whole file) for a smaller or stream file."""
    if file.size <= target:
        return [None]
    reader = _open_arrow(file)
    batches = getattr(reader, "num_record_batches", 0)
    if batches < 2:
        return [None]
    n = min(batches, range_count(file.size, target))
    bounds = [round(i * batches / n) for i in range(n + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def read_parquet(file: InputFile, row_groups: tuple[int, int], source, prefix: str) -> Iterator[pa.Table]:
    pf = open_parquet(file)
    offset = sum(pf.metadata.row_group(i).num_rows for i in range(row_groups[0]))
    for batch in pf.iter_batches(row_groups=range(*row_groups), columns=_wanted(source), batch_size=8192):
        yield to_raw(pa.Table.from_batches([batch]), source, prefix, file.relname, offset)
        offset += batch.num_rows


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
        table = pa.Table.from_batches([batch]).select([c for c in _wanted(source) if c in batch.schema.names])
        yield to_raw(table, source, prefix, file.relname, offset)
        offset += batch.num_rows


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
