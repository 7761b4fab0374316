"""Input planning and reading: the recipe's sources become partitions, partitions become raw records.

A partition is the unit of work and of resume: a run of files (code trees), one file (compressed jsonl,
small or stream-format arrow), a run of row groups (parquet) or record batches (arrow IPC file larger
than `ingest.partition_bytes`) of one file, or a byte range of one uncompressed jsonl file larger
than `ingest.partition_bytes` (ranges are cut at line boundaries when read: a range owns the lines that
start in it), or a byte range of the decompressed stream of a compressed jsonl file that holds more than
`ingest.partition_bytes` (`split_compressed`; its ranges are read in order by one task), or a row slice
of a parquet row group or arrow record batch larger than `ingest.partition_bytes` (`row_slice`; the
slices of one row group are read in order by one task, from one `tables.RowStream`). A file
larger than `ingest.partition_bytes` becomes at least `files.MIN_RANGES` partitions. Its identity is derived from the inputs (source, file names, sizes, modification times,
row-group or byte range), never from the engine's scheduling.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from curate.errors import SourceError
from curate.sources import code_tree, jsonl, linguist, tables
from curate.sources.files import InputFile, compression_of, expand, open_binary, range_count

READ_FLUSH_BYTES = 32 * 1024 * 1024
# A compressed jsonl file this many times smaller than partition_bytes is taken to hold less than
# partition_bytes (text compresses 3-10x) and is not measured; a larger one is decompressed once to be split.
MAX_COMPRESSION_RATIO = 64


@dataclass(frozen=True)
class Partition:
    index: int
    source: str
    files: tuple[InputFile, ...]
    row_groups: tuple[int, int] | None = None  # parquet row groups, or arrow record batches, [start, end)
    byte_range: tuple[int, int] | None = None  # [start, end) of an uncompressed jsonl file
    # the number of lines before the range's first line (so ids keep the file's 1-based line numbers);
    # filled by `number_lines` (one parallel pass), else counted by the reader itself
    lines_before: int | None = None
    # (k, n): the k-th of n equal row slices of the single row group / record batch `row_groups`
    row_slice: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        return f"part-{self.index:05d}"

    @property
    def fingerprint(self) -> str:
        payload = [self.source, [(f.uri, f.relname, f.size, f.mtime_ns) for f in self.files], self.row_groups]
        if self.byte_range is not None:  # only then: a whole file's partition keeps its earlier identity
            payload.append(list(self.byte_range))
        if self.row_slice is not None:  # likewise: a whole row group's partition keeps its identity
            payload.append(["rows", *self.row_slice])
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


def plan_ingest(recipe) -> list[Partition]:
    """All partitions of all sources, in recipe order; raises SourceError (exit 2) for missing inputs."""
    plan: list[Partition] = []
    for i, source in enumerate(recipe.sources):
        files = resolve_files(source, i)
        check_fields(source, files, i)
        for files_chunk, row_groups, byte_range, row_slice in _chunks(source, files, recipe.settings("ingest", source.name).partition_bytes):
            plan.append(Partition(len(plan), source.name, tuple(files_chunk), row_groups, byte_range, row_slice=row_slice))
    return plan


def number_lines(plan: list[Partition], engine) -> list[Partition]:
    """The plan with `lines_before` of every byte-range partition: each range's newlines counted in one
    task per range, then summed in file order (no task reads the file before its range)."""
    ranged = [p for p in plan if p.byte_range is not None and compression_of(p.files[0].uri) is None]
    if not ranged:
        return plan
    counts = engine.map(jsonl.count_newlines, [(p.files[0].uri, *p.byte_range) for p in ranged],
                        desc="ingest: count lines")
    before, total = {}, {}
    for p, n in zip(ranged, counts):
        uri = p.files[0].uri
        before[p.index], total[uri] = total.get(uri, 0), total.get(uri, 0) + n
    return [dataclasses.replace(p, lines_before=before[p.index]) if p.index in before else p for p in plan]


def compressed_to_measure(plan: list[Partition], recipe) -> list[Partition]:
    """The compressed jsonl files that may decompress to more than their `ingest.partition_bytes`: measured
    (decompressed once) when a run starts, and split if they do."""
    return [p for p in plan if recipe.source(p.source).format == "jsonl" and p.byte_range is None
            and compression_of(p.files[0].uri) is not None
            and p.files[0].size * MAX_COMPRESSION_RATIO > recipe.settings("ingest", p.source).partition_bytes]


def split_compressed(plan: list[Partition], recipe, engine) -> list[Partition]:
    """The plan with each compressed jsonl file that decompresses to more than its `ingest.partition_bytes`
    as several partitions: byte ranges of its decompressed stream, numbered in place (the partitions after
    it move up). Their decompressed sizes are measured first, one task per file. So ingest writes parts of
    about partition_bytes however big a compressed file is; one task still reads the file (`run_group`)."""
    def target(p: Partition) -> int:
        return recipe.settings("ingest", p.source).partition_bytes

    todo = compressed_to_measure(plan, recipe)
    if not todo:
        return plan
    sizes = engine.map(jsonl.decompressed_size, [p.files[0].uri for p in todo], desc="ingest: measure compressed files")
    size_of = {p.index: n for p, n in zip(todo, sizes)}
    out: list[Partition] = []
    for p in plan:
        n = size_of.get(p.index, 0)
        for r in byte_ranges(n, target(p)) if n > target(p) else [p.byte_range]:
            out.append(dataclasses.replace(p, index=len(out), byte_range=r))
    return out


def same_stream(a: Partition, b: Partition) -> bool:
    """Whether b is the range after a of the same compressed file, or the row slice after a of the same row
    group / record batch (read from one stream, in order)."""
    if a.row_slice is not None and b.row_slice is not None:
        return a.files == b.files and a.row_groups == b.row_groups and b.row_slice[0] == a.row_slice[0] + 1
    return (a.byte_range is not None and b.byte_range is not None and a.files == b.files
            and compression_of(a.files[0].uri) is not None and a.byte_range[1] == b.byte_range[0])


@contextmanager
def open_stream(partitions: list[Partition], recipe):
    """The stream several partitions of one `stream_groups` run share (a `jsonl.LineStream` or a
    `tables.RowStream`), or None for a single partition, which opens its own."""
    if len(partitions) == 1:
        yield None
        return
    first = partitions[0]
    if first.row_slice is not None:
        source = recipe.source(first.source)
        with tables.RowStream(first.files[0], first.row_groups, source, f"{source.name}/", source.format) as stream:
            yield stream
        return
    with jsonl.LineStream(first.files[0].uri) as stream:
        yield stream


def skip_in(stream, partition: Partition) -> None:
    """Passes over a partition's records in the shared stream (one done by an earlier attempt)."""
    if stream is not None and partition.row_slice is not None:
        stream.skip(partition.row_slice)
    elif stream is not None:
        stream.skip(*partition.byte_range)


def resolve_files(source, index: int) -> list[InputFile]:
    found: dict[str, InputFile] = {}
    for j, pattern in enumerate(source.paths):
        if source.format == "code-tree":
            matches = _tree_files(pattern, source, f"sources[{index}].paths[{j}]")
        else:
            matches = expand(pattern)
        if not matches:
            raise SourceError(f"sources[{index}].paths[{j}]: no file matches {pattern!r}")
        for f in matches:
            found.setdefault(f.uri, f)
    return sorted(found.values(), key=lambda f: (f.relname, f.uri))


def _tree_files(pattern: str, source, where: str) -> list[InputFile]:
    import os

    if "://" in pattern:
        raise SourceError(f"{where}: code-tree sources must be local directories, got {pattern!r}")
    if not os.path.isdir(pattern):
        raise SourceError(f"{where}: {pattern!r} is not a directory")
    return code_tree.list_tree(pattern, source)


def check_fields(source, files: list[InputFile], index: int) -> None:
    """The named text field must exist: in every table file's schema, in the first JSON record."""
    if source.format in ("parquet", "arrow"):
        for f in files:
            try:
                names = tables.table_columns(f, source.format)
            except (OSError, pa.ArrowException) as exc:
                raise SourceError(f"sources[{index}]: {f.uri}: not a readable {source.format} file: {exc}") from None
            missing = [c for c in (source.text_field, source.id_field) if c and c not in names]
            if missing:
                raise SourceError(
                    f"sources[{index}].text_field: {f.uri} has no column {missing[0]!r} (columns: {', '.join(names)})"
                )
    elif source.format == "jsonl" and files:
        first = _first_json_record(files[0])
        if first is not None and source.text_field not in first:
            raise SourceError(
                f"sources[{index}].text_field: first record of {files[0].uri} has no field "
                f"{source.text_field!r} (fields: {', '.join(sorted(first))})"
            )


def _first_json_record(file: InputFile) -> dict | None:
    try:
        with open_binary(file.uri) as fh:
            for line in fh:
                if line.strip():
                    record = json.loads(line)
                    return record if isinstance(record, dict) else None
    except (ValueError, OSError, EOFError, RecursionError):
        return None  # bad records are counted when read, not refused here
    return None


def _chunks(source, files: list[InputFile], target: int):
    if source.format == "code-tree":
        chunk, size = [], 0
        for f in files:
            if chunk and size + f.size > target:
                yield chunk, None, None, None
                chunk, size = [], 0
            chunk.append(f)
            size += f.size
        if chunk:
            yield chunk, None, None, None
    elif source.format == "parquet":
        for f in files:
            yield from (([f], rg, None, rs) for rg, rs in _row_group_ranges(f, target))
    elif source.format == "arrow":
        for f in files:
            yield from (([f], rb, None, rs) for rb, rs in tables.arrow_batch_ranges(f, target))
    else:
        for f in files:
            if f.size > target and compression_of(f.uri) is None:
                yield from (([f], None, r, None) for r in byte_ranges(f.size, target))
            else:
                yield [f], None, None, None


def byte_ranges(size: int, target: int) -> list[tuple[int, int]]:
    """[start, end) ranges of at most about `target` bytes covering a file of `size` bytes (at least
    MIN_RANGES of them for a file larger than `target`)."""
    n = range_count(size, target)
    bounds = [round(i * size / n) for i in range(n + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _row_group_ranges(file: InputFile, target: int):
    """(row-group run, row slice) partitions: runs of row groups of about a partition's share of the file;
    a row group larger than `target` (ingest.partition_bytes) alone, cut into equal row slices of about
    that share. Sizes are the row groups' uncompressed sizes from the footer."""
    meta = tables.open_parquet(file).metadata
    total = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    share = -(-total // range_count(total, target)) if total else target
    start, size = 0, 0
    for i in range(meta.num_row_groups):
        rg_size = meta.row_group(i).total_byte_size
        if rg_size > target and meta.row_group(i).num_rows > 1:
            if i > start:
                yield (start, i), None
            n = min(-(-rg_size // share), meta.row_group(i).num_rows)
            yield from (((i, i + 1), (k, n)) for k in range(n))
            start, size = i + 1, 0
            continue
        if i > start and size + rg_size > share:
            yield (start, i), None
            start, size = i, 0
        size += rg_size
    if start < meta.num_row_groups or meta.num_row_groups == 0:
        yield (start, meta.num_row_groups), None


def read_partition(partition: Partition, recipe, lenient: bool = False, stream=None) -> Iterator[pa.Table]:
    """Raw-record tables of one partition, streamed in bounded batches. `stream`: the open `jsonl.LineStream`
    of a compressed file whose earlier ranges were read from it (else the range opens its own)."""
    source = recipe.source(partition.source)
    prefix = f"{source.name}/"
    if source.format == "code-tree":
        yield from code_tree.read_files(list(partition.files), source, prefix, recipe.settings("ingest", source.name).max_bytes,
                                        READ_FLUSH_BYTES, lenient)
        return
    (file,) = partition.files
    if file.size == 0:
        return  # an empty file holds no records, whatever its compression suffix says
    if source.format == "jsonl":
        raws = jsonl.read_jsonl(file, source, prefix, READ_FLUSH_BYTES, partition.byte_range, partition.lines_before,
                               stream)
    elif partition.row_slice is not None:
        raws = _slice_tables(partition, source, prefix, stream)
    elif source.format == "parquet":
        raws = tables.read_parquet(file, partition.row_groups, source, prefix)
    else:
        raws = tables.read_arrow(file, source, prefix, partition.row_groups)
    yield from (_detect_languages(raw, source, file.relname) for raw in raws) if source.kind == "code" else raws


def _slice_tables(partition: Partition, source, prefix: str, stream) -> Iterator[pa.Table]:
    """A row slice's records from the shared stream, or from its own (`RowStream.tables` reads past the rows
    before the slice without converting them)."""
    if stream is not None:
        yield from stream.tables(partition.row_slice)
        return
    with tables.RowStream(partition.files[0], partition.row_groups, source, prefix, source.format) as own:
        yield from own.tables(partition.row_slice)


def _detect_languages(raw: pa.Table, source, relname: str) -> pa.Table:
    """Code records without a language (no `lang_field` value, no `lang`) get go-enry's, from the record's
    path (`path_field`) and text. Without a `path_field` only the content speaks (shebang, modeline): the
    file name is the container's (`data.jsonl`), not the record's."""
    if raw.num_rows == 0 or raw["lang"].null_count == 0:
        return raw
    paths = raw["path_or_url"].combine_chunks()
    if source.path_field is None:
        paths = pa.nulls(raw.num_rows, pa.string())
    else:  # a record without the field got the container's name: not its own path
        paths = pc.if_else(pc.equal(paths, relname), pa.nulls(raw.num_rows, pa.string()), paths)
    langs = linguist.fill_missing(raw["lang"], paths, raw["text"])
    return raw.set_column(raw.schema.get_field_index("lang"), "lang", langs)
