"""JSON-lines reader (plain, .gz, .zst): one record per non-blank line, streamed in bounded batches.

A byte range [start, end) of an uncompressed file owns the lines that start in it: a line that straddles
`start` belongs to the range before, one that straddles `end` to this one. Its first line's number is
the count of newlines before it (`lines_before` counts those before `start`), so ids (`<file>#<line>`)
are those of reading the whole file at once.

A compressed file cannot be entered in the middle: its ranges (of the decompressed bytes, same rule) are
read in order from one decompressed stream (`LineStream`), by the one task that reads the file.
A range read alone skips the lines before it (correct, but it decompresses everything before it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack

import pyarrow as pa

from curate.sources.files import InputFile, compression_of, open_binary
from curate.sources.records import RecordBuffer


def read_jsonl(file: InputFile, source, prefix: str, flush_bytes: int, byte_range: tuple[int, int] | None = None,
               lines_before: int | None = None, stream: LineStream | None = None) -> Iterator[pa.Table]:
    buf = RecordBuffer(flush_bytes)
    try:
        with ExitStack() as stack:
            if byte_range is not None and compression_of(file.uri) is not None:
                stream = stream or stack.enter_context(LineStream(file.uri))
                lines = stream.lines(*byte_range)
            else:
                lines = _lines(stack.enter_context(open_binary(file.uri)), file.uri, byte_range, lines_before)
            for lineno, line in lines:
                if lineno == 1 and line.startswith(b"\xef\xbb\xbf"):
                    line = line[3:]  # a UTF-8 byte-order mark, as Windows tools write
                if not line.strip():
                    continue  # blank lines separate nothing and hold no record
                _parse_line(buf, line, lineno, file, source, prefix)
                if buf.full():
                    yield buf.take()
    except Exception:
        if len(buf):  # the records read before a failure are handed over first: the caller decides
            yield buf.take()
        raise
    if len(buf):
        yield buf.take()


class LineStream:
    """The lines of one file's decompressed stream with their numbers, handed to its byte ranges in order:
    `lines(start, end)` gives the lines that start in [start, end) and keeps the first line beyond for the
    next range. After a read error the stream gives nothing more (the error went to the range that met it)."""

    def __init__(self, uri: str):
        self.uri, self.fh = uri, None
        self.pos, self.lineno, self.pending, self.failed = 0, 0, None, False

    def __enter__(self) -> LineStream:
        self.fh = open_binary(self.uri)
        return self

    def __exit__(self, *exc) -> None:
        self.fh.close()

    def lines(self, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        while not self.failed:
            if self.pending is None:
                try:
                    line = self.fh.readline()
                except Exception:
                    self.failed = True
                    raise
                if not line:
                    return
                self.lineno += 1
                self.pending, self.pos = (self.pos, self.lineno, line), self.pos + len(line)
            at, lineno, line = self.pending
            if at >= end:
                return
            self.pending = None
            if at >= start:
                yield lineno, line

    def skip(self, start: int, end: int) -> None:
        """Passes over a range's lines (a range done by an earlier attempt)."""
        for _ in self.lines(start, end):
            pass


def decompressed_size(uri: str, block: int = 8 << 20) -> int:
    """The number of bytes of a compressed file once decompressed (the pre-pass that splits it)."""
    n = 0
    with open_binary(uri) as fh:
        while data := fh.read(block):
            n += len(data)
    return n


def _lines(fh, uri: str, byte_range: tuple[int, int] | None, lines_before: int | None) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line) of the whole file, or of the lines that start in `byte_range`."""
    if byte_range is None:
        yield from enumerate(fh, start=1)
        return
    start, end = byte_range
    lineno = count_newlines(uri, 0, start) if lines_before is None else lines_before
    pos = start
    if start > 0:
        fh.seek(start - 1)
        if fh.read(1) != b"\n":  # mid-line: its rest belongs to the range where it started
            pos += len(fh.readline())
            lineno += 1
    while pos < end:
        line = fh.readline()
        if not line:
            return
        lineno += 1
        pos += len(line)
        yield lineno, line


def count_newlines(uri: str, start: int, end: int, block: int = 8 << 20) -> int:
    """The number of b"\n" bytes in [start, end) of an uncompressed file (the line pre-pass of a range)."""
    n = 0
    with open_binary(uri) as fh:
        fh.seek(start)
        left = end - start
        while left > 0:
            data = fh.read(min(block, left))
            if not data:
                break
            n += data.count(b"\n")
            left -= len(data)
    return n


def _parse_line(buf: RecordBuffer, line: bytes, lineno: int, file: InputFile, source, prefix: str) -> None:
    where = f"{file.relname}:{lineno}"
    default_id = f"{prefix}{file.relname}#{lineno}"
    size = len(line.rstrip(b"\r\n"))
    try:
        record = json.loads(line)
    except UnicodeDecodeError as exc:
        buf.add(default_id, error="ingest.bad_utf8", detail=f"{where}: {exc.reason} at byte {exc.start}", raw_bytes=size)
        return
    except (ValueError, RecursionError) as exc:
        buf.add(default_id, error="ingest.malformed_json", detail=f"{where}: {_short(exc)}", raw_bytes=size)
        return
    if not isinstance(record, dict):
        buf.add(default_id, error="ingest.malformed_json", detail=f"{where}: not a JSON object", raw_bytes=size)
        return
    add_record(buf, record, default_id, where, file.relname, source, prefix, size)


def add_record(buf, record: dict, default_id, where, relname, source, prefix, size) -> None:
    """Shared by the JSON and table readers: map a source record's fields to the raw schema."""
    raw_id = record.get(source.id_field) if source.id_field else None
    doc_id = f"{prefix}{raw_id}" if raw_id not in (None, "") else default_id
    text = record.get(source.text_field)
    path = record.get(source.path_field) if source.path_field else None
    lang = record.get(source.lang_field) if source.lang_field else None
    meta = None
    if source.meta_fields:
        meta = json.dumps({k: record.get(k) for k in source.meta_fields}, sort_keys=True, default=str)
    common = dict(lang=_as_str(lang) or source.lang, path=_as_str(path) or relname, meta=meta)
    if text is None:
        buf.add(doc_id, error="ingest.missing_text", detail=f"{where}: no {source.text_field!r}", raw_bytes=size, **common)
    elif not isinstance(text, str):
        detail = f"{where}: {source.text_field!r} is {type(text).__name__}, not a string"
        buf.add(doc_id, error="ingest.wrong_type", detail=detail, raw_bytes=size, **common)
    else:
        try:
            nbytes = len(text.encode("utf-8"))
        except UnicodeEncodeError:  # lone surrogates from \ud800 escapes cannot be stored as UTF-8
            buf.add(doc_id, error="ingest.bad_utf8", detail=f"{where}: lone surrogate in text", raw_bytes=size, **common)
            return
        buf.add(doc_id, text=text, raw_bytes=nbytes, **common)


def _as_str(value) -> str | None:
    return None if value is None else str(value)


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
