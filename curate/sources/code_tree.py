"""Code-tree reader: a directory of source files, one document per file, in The Stack's terms.

Links are never followed out of the tree; files whose extension is not in the map are skipped unless
`include_unknown` (they are not documents of this source). NUL bytes mean binary; undecodable bytes
mean bad UTF-8; both are kept as raw records with a reason so ingest counts them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pyarrow as pa

from curate.sources.extensions import language_of
from curate.sources.files import InputFile, safe_name
from curate.sources.records import RecordBuffer


def list_tree(root: str, source) -> list[InputFile]:
    """Every regular file under `root` whose language is known, sorted; symlinks only if inside the tree."""
    real_root = os.path.realpath(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            real = os.path.realpath(full)
            if os.path.commonpath([real_root, real]) != real_root or not os.path.isfile(real):
                continue  # a link that leaves the tree, or a dangling one
            rel = safe_name(os.path.relpath(full, root).replace(os.sep, "/"))
            if language_of(rel, source.extensions) is None and not source.include_unknown:
                continue
            st = os.stat(real)
            found.append(InputFile(os.path.abspath(full), rel, st.st_size, st.st_mtime_ns))
    return found


def read_files(files: list[InputFile], source, prefix: str, max_bytes: int, flush_bytes: int,
               lenient: bool = False) -> Iterator[pa.Table]:
    buf = RecordBuffer(flush_bytes)
    for file in files:
        try:
            _read_one(buf, file, source, prefix, max_bytes)
        except OSError as exc:  # vanished or unreadable since planning
            if not lenient:
                raise
            buf.add(f"{prefix}{file.relname}", error="ingest.unreadable", detail=f"{file.relname}: {exc.strerror or exc}",
                    path=file.relname)
        if buf.full():
            yield buf.take()
    if len(buf):
        yield buf.take()


def _read_one(buf: RecordBuffer, file: InputFile, source, prefix: str, max_bytes: int) -> None:
    doc_id, lang = f"{prefix}{file.relname}", language_of(file.relname, source.extensions)
    common = dict(lang=lang, path=file.relname)
    size = os.path.getsize(file.uri)
    if size > max_bytes:  # do not load what will be dropped anyway
        buf.add(doc_id, error="ingest.too_large", detail=f"{file.relname}: {size} bytes > {max_bytes}", raw_bytes=size, **common)
        return
    with open(file.uri, "rb") as fh:
        data = fh.read()
    if b"\x00" in data:
        buf.add(doc_id, error="ingest.binary", detail=f"{file.relname}: NUL byte at {data.index(0)}", raw_bytes=len(data), **common)
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        buf.add(doc_id, error="ingest.bad_utf8", detail=f"{file.relname}: {exc.reason} at byte {exc.start}", raw_bytes=len(data), **common)
        return
    buf.add(doc_id, text=text, raw_bytes=len(data), **common)
