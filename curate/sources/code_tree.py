"""Code-tree reader: a directory of source files, one document per file, in The Stack's terms.

Languages are GitHub Linguist's, assigned by go-enry (`curate.sources.linguist`), as The Stack v2 did;
`sources[].extensions` is the user's override and wins. Listing decides which files are documents without
reading every file twice: a file is one when the source's `extensions` or Linguist names its language by
file name or extension (`Makefile`, `.tcl`, `.h`), or, for any other file, when its first 1 KiB holds a
shebang or a modeline (`#!/usr/bin/env tclsh`, `# vim: ft=awk`); only those unknown-by-name files are
opened at listing. Files that none of these classify (and Linguist's `Text`: `.txt`) are skipped unless
`include_unknown`, as before; a Vim modeline only in a file's last lines is not seen at listing.
At read time the language is enry's full strategy on the whole content (modeline, file name, shebang,
extension, then content: `.h` C / C++ / Objective-C, `.pl` Perl / Prolog, ...); a file that even this
cannot classify is read with `lang` null.

Links are never followed out of the tree. NUL bytes mean binary; undecodable bytes mean bad UTF-8; both are
kept as raw records with a reason so ingest counts them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import lru_cache

import pyarrow as pa

from curate.sources import linguist
from curate.sources.files import InputFile, safe_name
from curate.sources.records import RecordBuffer


def list_tree(root: str, source) -> list[InputFile]:
    """Every regular file under `root` that is a document of the source (see the module docstring),
    sorted; symlinks only if they stay inside the tree."""
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
            st = os.stat(real)
            if not source.include_unknown and not is_classified(rel, real, st, source.extensions):
                continue
            found.append(InputFile(os.path.abspath(full), rel, st.st_size, st.st_mtime_ns))
    return found


def is_classified(relname: str, real_path: str, st: os.stat_result, overrides: dict[str, str] | None) -> bool:
    """Whether the file has a language by the user's extensions, by Linguist's names, or by its head."""
    if override_language(relname, overrides) or linguist.by_name(relname):
        return True
    return _head_names_language(real_path, st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=1 << 17)
def _head_names_language(real_path: str, size: int, mtime_ns: int) -> bool:
    """Cached by the file's identity: a run plans its inputs twice (validation, then the run)."""
    try:
        with open(real_path, "rb") as fh:
            return linguist.by_head(fh.read(linguist.HEAD_BYTES)) is not None
    except OSError:
        return True  # unreadable now: listed, so that reading it counts it (ingest.unreadable) or fails


def override_language(relname: str, overrides: dict[str, str] | None) -> str | None:
    """The language `sources[].extensions` gives the file's extension (case-insensitive), or None."""
    if not overrides:
        return None
    ext = os.path.splitext(os.path.basename(relname).lower())[1]
    return next((lang for key, lang in overrides.items() if key.lower() == ext), None)


def file_language(relname: str, data: bytes | None, overrides: dict[str, str] | None) -> str | None:
    """The document's language: the user's extension override, else enry on name and content (by name
    alone when the content is not read: too large, binary or not UTF-8, dropped at ingest anyway)."""
    found = override_language(relname, overrides)
    if found is not None:
        return found
    return linguist.by_name(relname) if data is None else linguist.detect(relname, data)


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
    doc_id, rel = f"{prefix}{file.relname}", file.relname
    size = os.path.getsize(file.uri)
    if size > max_bytes:  # do not load what will be dropped anyway
        buf.add(doc_id, error="ingest.too_large", detail=f"{rel}: {size} bytes > {max_bytes}", raw_bytes=size,
                lang=file_language(rel, None, source.extensions), path=rel)
        return
    with open(file.uri, "rb") as fh:
        data = fh.read()
    if b"\x00" in data:
        buf.add(doc_id, error="ingest.binary", detail=f"{rel}: NUL byte at {data.index(0)}", raw_bytes=len(data),
                lang=file_language(rel, None, source.extensions), path=rel)
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        buf.add(doc_id, error="ingest.bad_utf8", detail=f"{rel}: {exc.reason} at byte {exc.start}", raw_bytes=len(data),
                lang=file_language(rel, None, source.extensions), path=rel)
        return
    buf.add(doc_id, text=text, raw_bytes=len(data), lang=file_language(rel, data, source.extensions), path=rel)
