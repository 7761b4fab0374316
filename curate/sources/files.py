"""Finding and opening input files, local or remote, through smart_open and pyarrow filesystems.

Globs: `*`, `?`, `[...]` and `**` (any depth). Local paths use the operating system; `s3://`, `gs://` and
other pyarrow-supported URIs are listed through `pyarrow.fs`; `http(s)://` URIs must name single files.
Each file gets a `relname`: its path relative to the glob's fixed prefix (the basename for a plain file),
which is what document ids use, so ids do not depend on where the data or the workdir lives.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from dataclasses import dataclass

from curate.errors import SourceError

GLOB_CHARS = re.compile(r"[*?\[]")
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd", ".bz2": "bz2", ".xz": "xz"}


@dataclass(frozen=True)
class InputFile:
    uri: str
    relname: str
    size: int
    mtime_ns: int  # 0 when the store does not say


def is_uri(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


# A file larger than ingest.partition_bytes becomes at least this many partitions (each still at most
# about partition_bytes): every later stage runs a file's parts as tasks, and two or three parts on two
# CPUs leave one idle (3 parts take two waves, 1.5x an even split); 8 or more keep the last wave short.
MIN_RANGES = 8


def range_count(size: int, target: int) -> int:
    """How many partitions a file of `size` bytes is cut into for a `target` (ingest.partition_bytes)."""
    return max(-(-size // target), MIN_RANGES) if size > target else 1


def compression_of(name: str) -> str | None:
    return COMPRESSIONS.get(os.path.splitext(name)[1].lower())


def strip_compression(name: str) -> str:
    root, ext = os.path.splitext(name)
    return root if ext.lower() in COMPRESSIONS else name


def _fixed_prefix(pattern: str) -> str:
    """The directory part of a glob before its first wildcard (with trailing slash): where relnames start."""
    match = GLOB_CHARS.search(pattern)
    if match is None:  # a plain file: relative to its own directory, i.e. its basename
        return os.path.dirname(pattern) + "/" if "/" in pattern else ""
    head = pattern[: match.start()]
    return head[: head.rfind("/") + 1]


def expand(pattern: str) -> list[InputFile]:
    """All files matching one path, glob or URI, sorted by name. Empty list when nothing matches."""
    if pattern.startswith("file://"):
        pattern = pattern[len("file://") :]
    if is_uri(pattern):
        return _expand_remote(pattern)
    base = _fixed_prefix(pattern)
    names = sorted(glob.glob(pattern, recursive=True)) if GLOB_CHARS.search(pattern) else [pattern]
    out = []
    for name in names:
        try:
            st = os.stat(name)
        except OSError:
            continue
        if not os.path.isfile(name):
            continue
        rel = os.path.relpath(name, base) if base else name
        out.append(InputFile(os.path.abspath(name), safe_name(rel.replace(os.sep, "/")), st.st_size, st.st_mtime_ns))
    return out


def _expand_remote(pattern: str) -> list[InputFile]:
    if pattern.startswith(("http://", "https://")):
        if GLOB_CHARS.search(pattern.split("://", 1)[1]):
            raise SourceError(f"{pattern}: globs are not supported over http(s); list the files")
        return [InputFile(pattern, pattern.rsplit("/", 1)[-1], -1, 0)]
    import pyarrow.fs as pafs

    scheme, rest = pattern.split("://", 1)
    base = _fixed_prefix(rest)
    try:
        fs, _ = pafs.FileSystem.from_uri(f"{scheme}://{base or rest}")
        if GLOB_CHARS.search(rest):
            infos = fs.get_file_info(pafs.FileSelector(base.rstrip("/"), recursive=True))
            regex = glob_to_regex(rest)
            infos = [i for i in infos if i.type == pafs.FileType.File and regex.fullmatch(i.path)]
        else:
            infos = [i for i in fs.get_file_info([rest]) if i.type == pafs.FileType.File]
    except OSError as exc:
        raise SourceError(f"{pattern}: cannot list: {exc}") from None
    return [
        InputFile(f"{scheme}://{i.path}", os.path.relpath(i.path, base) if base else i.path, i.size or 0,
                  int(i.mtime_ns or 0))
        for i in sorted(infos, key=lambda i: i.path)
    ]


def glob_to_regex(pattern: str) -> re.Pattern:
    """Glob with `**` spanning directories and `*` staying within one path segment."""
    parts = re.split(r"(\*\*/?)", pattern)
    out = "".join(".*" if p.startswith("**") else fnmatch.translate(p)[4:-3].replace(".*", "[^/]*") for p in parts)
    return re.compile(out)


def safe_name(name: str) -> str:
    """A file name as text: bytes that are not UTF-8 (surrogate-escaped by the OS layer) become `\\xNN`."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def relname_of_error(files) -> str:
    """Names the file of a failed single-file partition (or the partition's first file)."""
    return files[0].relname if len(files) == 1 else f"{files[0].relname}..."


def open_binary(uri: str, transport_params: dict | None = None):
    """A binary stream of the file's (decompressed) bytes."""
    import smart_open

    return smart_open.open(uri, "rb", compression="infer_from_extension", transport_params=transport_params)
