"""Megatron-LM / megatron-core IndexedDataset output: `PREFIX.bin` and `PREFIX.idx`.

Layout, as megatron-core's `indexed_dataset` documents it (all little-endian):

    PREFIX.bin   every entry's token ids, back to back, in the dtype the index names
    PREFIX.idx   b"MMIDIDX\\x00\\x00"                 9-byte magic
                 u64 version = 1
                 u8  dtype code (4 = int32, 8 = uint16)
                 u64 sequence count S
                 u64 document count D (entries of the document index: documents + 1)
                 i32[S] sequence lengths (tokens)
                 i64[S] sequence pointers (byte offset of each sequence in PREFIX.bin)
                 i64[D] document index: sequence number where each document starts, then S

Each export entry (a packed sequence without its padding, or a whole document) is one sequence and one
document. uint16 when the shards hold uint16 ids (vocabulary <= 65536), else int32. The lengths of each
shard's entries wait in a small file of the work folder until the index is written at the end.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
from pathlib import Path

import numpy as np

from curate.export.output import AppendedFile
from curate.export.units import Entries

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
DTYPE_CODES = {np.dtype(np.uint16): 8, np.dtype(np.int32): 4}


def index_bytes(lengths: np.ndarray, dtype: np.dtype) -> bytes:
    lengths = np.asarray(lengths, dtype=np.int32)
    pointers = np.concatenate([[0], np.cumsum(lengths.astype(np.int64) * dtype.itemsize)[:-1]]).astype(np.int64)
    documents = np.arange(len(lengths) + 1, dtype=np.int64)
    head = MAGIC + struct.pack("<QBQQ", VERSION, DTYPE_CODES[dtype], len(lengths), len(documents))
    return head + lengths.tobytes() + pointers[: len(lengths)].tobytes() + documents.tobytes()


class MegatronWriter:
    def __init__(self, prefix: Path, shard_dtype: np.dtype):
        self.prefix = prefix
        self.dtype = np.dtype(np.uint16) if shard_dtype.itemsize <= 2 else np.dtype(np.int32)
        self.bin_path = prefix.parent / f"{prefix.name}.bin"
        self.idx_path = prefix.parent / f"{prefix.name}.idx"
        self.work = prefix.parent / f"{prefix.name}.export-work"
        self.bin: AppendedFile | None = None

    def describe(self) -> dict:
        return {"dtype": self.dtype.name, "files": [self.bin_path.name, self.idx_path.name]}

    def start(self, positions: dict | None) -> None:
        if positions is None:
            shutil.rmtree(self.work, ignore_errors=True)
            self.idx_path.unlink(missing_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        self.bin = AppendedFile(self.bin_path, positions["bin"] if positions else None)

    def write(self, k: int, entries: Entries) -> dict:
        self.bin.write(entries.tokens.astype(self.dtype, copy=False))
        np.save(self.work / f"lengths-{k:05d}.npy", entries.lengths().astype(np.int32))
        return {"bin": self.bin.sync()}

    def finish(self, n_shards: int, entries: int, tokens: int) -> list[dict]:
        lengths = np.concatenate([np.load(self.work / f"lengths-{k:05d}.npy") for k in range(n_shards)])
        record = self.bin.close()
        index = index_bytes(lengths, self.dtype)
        self.idx_path.write_bytes(index)
        shutil.rmtree(self.work, ignore_errors=True)
        return [record, {"file": self.idx_path.name, "bytes": len(index), "sha256": hashlib.sha256(index).hexdigest()}]
