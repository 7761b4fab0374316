"""Read-only access to a finished (or partial) run's artifacts, local or in object storage.

Every read goes through a pyarrow filesystem, so `WORKDIR` may be a path, `file://`, `s3://bucket/prefix`
(with `endpoint_url` for MinIO / R2 / a local S3-protocol server; credentials from the standard AWS
chain, never the URI) or any URI `pyarrow.fs.FileSystem.from_uri` opens. Nothing here writes to the run.

    WORKDIR/<stage>/_manifest.json            ledger, extra, recipe, versions, timing
    WORKDIR/<stage>/part-*.parquet            kept documents
    WORKDIR/<stage>/dropped/part-*.parquet    dropped documents (id, source, stage, drop_reason, ...)
    WORKDIR/shards/manifest.json, shard-*.arrow   packed output (Arrow IPC streams)
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from curate.schema import STAGES

BATCH_ROWS = 8192  # rows per record batch: bounds memory to a few MB of text per batch


def open_filesystem(uri: str, endpoint_url: str | None = None) -> tuple[pafs.FileSystem, str]:
    """(filesystem, root path inside it) for a work-directory path or URI: the pipeline's own work-directory
    layer (`curate.workpath`), so the report reads with the same clients, options and checks as the run."""
    from curate import workpath

    if endpoint_url and endpoint_url != workpath.options().endpoint_url:
        workpath.configure(workpath.StoreOptions(endpoint_url, workpath.options().profile))
    return workpath.WorkPath(uri).arrow_location()


@dataclass
class Workdir:
    fs: pafs.FileSystem
    root: str

    @classmethod
    def open(cls, uri: str, endpoint_url: str | None = None) -> Workdir:
        fs, root = open_filesystem(str(uri), endpoint_url)
        return cls(fs, root)

    def path(self, *rel: str) -> str:
        return "/".join([self.root, *rel])

    def exists(self, *rel: str) -> bool:
        return self.fs.get_file_info(self.path(*rel)).type == pafs.FileType.File

    def read_json(self, *rel: str):
        with self.fs.open_input_stream(self.path(*rel)) as fh:
            return json.loads(fh.read().decode("utf-8"))

    def list(self, *rel: str, pattern: str) -> list[str]:
        """Files directly in `rel` whose name matches `pattern`, as full paths sorted by name."""
        info = self.fs.get_file_info(pafs.FileSelector(self.path(*rel), allow_not_found=True))
        names = [i.base_name for i in info if i.type == pafs.FileType.File and fnmatch.fnmatch(i.base_name, pattern)]
        return [self.path(*rel, n) for n in sorted(names)]

    # ------------------------------------------------------------------ stages
    def manifest(self, stage: str) -> dict | None:
        return self.read_json(stage, "_manifest.json") if self.exists(stage, "_manifest.json") else None

    def manifests(self) -> dict[str, dict]:
        """Every complete stage's manifest, in pipeline order."""
        found = {s: self.manifest(s) for s in STAGES}
        return {s: m for s, m in found.items() if m is not None}

    def kept_parts(self, stage: str) -> list[str]:
        return self.list(stage, pattern="part-*.parquet")

    def dropped_parts(self, stage: str) -> list[str]:
        return self.list(stage, "dropped", pattern="part-*.parquet")

    def schema(self, path: str) -> pa.Schema:
        with self.fs.open_input_file(path) as fh:
            return pq.ParquetFile(fh).schema_arrow

    def iter_batches(self, paths: list[str], columns: list[str]) -> Iterator[pa.RecordBatch]:
        """Record batches of the named columns only, one part at a time (never a whole part in memory)."""
        for path in paths:
            with self.fs.open_input_file(path) as fh:
                pf = pq.ParquetFile(fh)
                present = [c for c in columns if c in pf.schema_arrow.names]
                yield from pf.iter_batches(batch_size=BATCH_ROWS, columns=present)

    # ------------------------------------------------------------------ output
    def shards_manifest(self) -> dict | None:
        return self.read_json("shards", "manifest.json") if self.exists("shards", "manifest.json") else None

    def shard_files(self) -> list[str]:
        return self.list("shards", pattern="shard-*.arrow")

    def iter_shard(self, path: str, columns: list[str]) -> Iterator[pa.RecordBatch]:
        """Batches of a shard's named columns; the stream is read in order, the other columns dropped at once."""
        with self.fs.open_input_stream(path) as fh:
            reader = ipc.open_stream(fh)
            names = reader.schema.names
            for batch in reader:
                yield pa.RecordBatch.from_arrays([batch.column(names.index(c)) for c in columns if c in names],
                                                 names=[c for c in columns if c in names])

    def shard_seq_len(self, path: str) -> int | None:
        """`input_ids`' fixed list size, from the stream's schema message (no record batch is read)."""
        with self.fs.open_input_stream(path) as fh:
            schema = ipc.open_stream(fh).schema
        if "input_ids" not in schema.names:
            return None
        t = schema.field("input_ids").type
        return t.list_size if pa.types.is_fixed_size_list(t) else None
