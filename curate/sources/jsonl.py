"""JSON-lines reader (plain, .gz, .zst): one record per non-blank line, streamed in bounded batches."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pyarrow as pa

from curate.sources.files import InputFile, open_binary
from curate.sources.records import RecordBuffer


def read_jsonl(file: InputFile, source, prefix: str, flush_bytes: int) -> Iterator[pa.Table]:
    buf = RecordBuffer(flush_bytes)
    try:
        with open_binary(file.uri) as fh:
            for lineno, line in enumerate(fh, start=1):
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
