"""The ledger: per stage and source, documents and bytes in, kept and dropped by reason.

Every stage builds one from the decided tables it wrote (the same rows, with `drop_reason` null for kept
documents), merges the per-partition ledgers, and checks conservation before it writes its manifest:
in = kept + sum(dropped), for documents and for bytes, for every source; a stage that rewrites text
(redact) also counts the bytes its rewrites removed or added (`bytes_rewritten`, in - kept).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from curate.errors import StageError
from curate.schema import DROP_REASON, SOURCE, TEXT


@dataclass
class SourceCounts:
    docs_in: int = 0
    docs_kept: int = 0
    bytes_in: int = 0
    bytes_kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    dropped_bytes: dict[str, int] = field(default_factory=dict)
    bytes_rewritten: int = 0  # bytes in - bytes kept of the kept documents a stage rewrote (redact)

    def add(self, other: SourceCounts) -> None:
        self.bytes_rewritten += other.bytes_rewritten
        self.docs_in += other.docs_in
        self.docs_kept += other.docs_kept
        self.bytes_in += other.bytes_in
        self.bytes_kept += other.bytes_kept
        for reason, n in other.dropped.items():
            self.dropped[reason] = self.dropped.get(reason, 0) + n
        for reason, n in other.dropped_bytes.items():
            self.dropped_bytes[reason] = self.dropped_bytes.get(reason, 0) + n

    @property
    def docs_dropped(self) -> int:
        return sum(self.dropped.values())

    def to_json(self) -> dict:
        out = {
            "docs_in": self.docs_in,
            "docs_kept": self.docs_kept,
            "docs_dropped": dict(sorted(self.dropped.items())),
            "bytes_in": self.bytes_in,
            "bytes_kept": self.bytes_kept,
            "bytes_dropped": dict(sorted(self.dropped_bytes.items())),
        }
        if self.bytes_rewritten:  # only stages that rewrite text have it: the others' ledgers are unchanged
            out["bytes_rewritten"] = self.bytes_rewritten
        return out

    @classmethod
    def from_json(cls, obj: dict) -> SourceCounts:
        return cls(obj["docs_in"], obj["docs_kept"], obj["bytes_in"], obj["bytes_kept"],
                   dict(obj["docs_dropped"]), dict(obj["bytes_dropped"]), obj.get("bytes_rewritten", 0))


@dataclass
class Ledger:
    stage: str
    sources: dict[str, SourceCounts] = field(default_factory=dict)

    def count(self, decided: pa.Table, nbytes: pa.Array | None = None, nbytes_in: pa.Array | None = None) -> None:
        """Adds a decided table: every row is in; rows with a null drop_reason are kept. `nbytes_in`, from a
        stage that rewrites text (redact), is each row's bytes before the rewrite: a kept row then counts
        those in, its text's bytes kept, and the difference as rewritten."""
        if decided.num_rows == 0:
            return
        if nbytes is None:
            nbytes = pc.fill_null(pc.cast(pc.binary_length(decided[TEXT]), pa.int64()), 0)
        before = nbytes if nbytes_in is None else nbytes_in
        groups = (
            pa.table({"s": decided[SOURCE], "r": pc.fill_null(decided[DROP_REASON], ""), "b": before, "k": nbytes})
            .group_by(["s", "r"])
            .aggregate([("b", "sum"), ("b", "count"), ("k", "sum")])
        )
        for s, r, b, n, k in zip(*(groups[c].to_pylist() for c in ("s", "r", "b_sum", "b_count", "k_sum"))):
            counts = self.sources.setdefault(s, SourceCounts())
            counts.docs_in += n
            counts.bytes_in += b
            if r == "":
                counts.docs_kept += n
                counts.bytes_kept += k
                counts.bytes_rewritten += b - k
            else:
                counts.dropped[r] = counts.dropped.get(r, 0) + n
                counts.dropped_bytes[r] = counts.dropped_bytes.get(r, 0) + b

    def merge(self, other: Ledger) -> None:
        for s, counts in other.sources.items():
            self.sources.setdefault(s, SourceCounts()).add(counts)

    def total(self) -> SourceCounts:
        out = SourceCounts()
        for counts in self.sources.values():
            out.add(counts)
        return out

    def check_conservation(self, expected_in: dict[str, tuple[int, int]] | None = None) -> None:
        """in = kept + dropped per source (docs and bytes); and, given upstream (docs, bytes) kept per
        source, nothing vanished and no byte went uncounted between the stages."""
        for s, c in self.sources.items():
            if c.docs_in != c.docs_kept + c.docs_dropped:
                raise StageError(f"{self.stage}: source {s}: {c.docs_in} docs in != {c.docs_kept} kept + {c.docs_dropped} dropped")
            if c.bytes_in != c.bytes_kept + sum(c.dropped_bytes.values()) + c.bytes_rewritten:
                raise StageError(f"{self.stage}: source {s}: bytes in != bytes kept + bytes dropped + bytes rewritten")
        for s, (n, nbytes) in (expected_in or {}).items():
            got = self.sources.get(s, SourceCounts())
            if got.docs_in != n:
                raise StageError(f"{self.stage}: source {s}: read {got.docs_in} docs but the previous stage kept {n}")
            if got.bytes_in != nbytes:
                raise StageError(f"{self.stage}: source {s}: read {got.bytes_in} bytes but the previous stage kept {nbytes}")

    def to_json(self) -> dict:
        return {s: c.to_json() for s, c in sorted(self.sources.items())}

    @classmethod
    def from_json(cls, stage: str, obj: dict) -> Ledger:
        return cls(stage, {s: SourceCounts.from_json(c) for s, c in obj.items()})

    def kept_per_source(self) -> dict[str, tuple[int, int]]:
        """(documents, bytes) kept per source: what the next stage must read."""
        return {s: (c.docs_kept, c.bytes_kept) for s, c in self.sources.items()}
