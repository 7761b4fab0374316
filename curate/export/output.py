"""Resumable export output: files appended shard by shard, and the export manifest that records progress.

`PREFIX.manifest.json` is rewritten (atomically) after every shard with the byte length each output file
had at that point; a rerun truncates the files back to those lengths and goes on with the next shard.
A file's sha256 is computed as it is written (on a resume, its kept prefix is hashed first), so the
finished manifest's checksums cost no extra pass over a single-file output.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from curate import parts
from curate.errors import CurateError

EXPORT_FORMAT = "curate-export/1"


class ExportError(CurateError):
    """The export cannot go on (a bad tokenizer, an output that changed under a resume)."""


class ExportUsageError(ExportError):
    exit_code = 2


def manifest_path(prefix: Path) -> Path:
    return prefix.parent / f"{prefix.name}.manifest.json"


def file_record(path: Path) -> dict:
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": parts.sha256_file(path)}


class AppendedFile:
    """A file written front to back across shards; `length` after `sync()` is a resume point."""

    def __init__(self, path: Path, resume_at: int | None):
        self.path = path
        self.hash = hashlib.sha256()
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume_at is None or not path.exists():
            if resume_at:
                raise ExportError(f"{path}: missing, though {manifest_path(path.with_suffix(''))} says "
                                  f"{resume_at} bytes were written; remove the manifest to start over")
            self.fh = open(path, "wb")
        else:
            if path.stat().st_size < resume_at:
                raise ExportError(f"{path}: shorter ({path.stat().st_size} bytes) than the {resume_at} bytes recorded")
            self.fh = open(path, "r+b")
            self.fh.truncate(resume_at)  # drop what a killed run wrote after its last finished shard
            while chunk := self.fh.read(1 << 20):
                self.hash.update(chunk)
        self.length = self.fh.seek(0, os.SEEK_END)

    def write(self, data) -> None:
        view = memoryview(data).cast("B")
        self.hash.update(view)
        self.fh.write(view)
        self.length += len(view)

    def sync(self) -> int:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        return self.length

    def close(self) -> dict:
        self.sync()
        self.fh.close()
        return {"file": self.path.name, "bytes": self.length, "sha256": self.hash.hexdigest()}


class Progress:
    """The export manifest while the export runs and once it is done."""

    def __init__(self, prefix: Path, identity: dict):
        self.path = manifest_path(prefix)
        self.identity = identity
        self.state = {"format": EXPORT_FORMAT, "identity": identity, "complete": False, "shards_done": 0,
                      "entries": 0, "tokens": 0, "positions": None}
        self.resumed = False
        if self.path.exists():
            old = parts.read_json(self.path)
            if old.get("format") == EXPORT_FORMAT and old.get("identity") == identity:
                self.state, self.resumed = old, True

    @property
    def complete(self) -> bool:
        return bool(self.state["complete"])

    def shard_done(self, k: int, entries: int, tokens: int, positions: dict) -> None:
        self.state.update(shards_done=k + 1, entries=self.state["entries"] + entries,
                          tokens=self.state["tokens"] + tokens, positions=positions)
        parts.write_json(self.path, self.state)

    def finish(self, outputs: list[dict], extra: dict) -> dict:
        self.state.update(complete=True, positions=None, outputs=outputs, **extra)
        parts.write_json(self.path, self.state)
        return self.state
