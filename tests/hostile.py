"""Hostile inputs, one small generated file per failure mode, with the outcome each must produce.

Each case writes its file(s) under a directory and returns the source entry for a recipe. The expected
outcome is either a map {reason code: count} of drops (plus kept documents), or an error (exit code and
a text the message must contain). Run `python -m tests.hostile OUT_DIR` to write them all for inspection.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


@dataclass
class Case:
    name: str
    kind: str  # what the test expects: "drops" or "error"
    kept: int = 0
    drops: dict | None = None
    exit_code: int = 0
    message: str = ""
    slow: bool = False


def _jsonl(d: Path, name: str, lines: list[bytes], fmt="jsonl", **extra) -> dict:
    (d / name).write_bytes(b"".join(line + b"\n" for line in lines))
    return {"name": "h", "kind": "text", "format": fmt, "paths": [str(d / name)], **extra}


def malformed_json(d):
    return _jsonl(d, "m.jsonl", [b'{"text": "ok"}', b'{"text": ', b"not json", b'{"text": "x",}'])


def wrong_types(d):
    return _jsonl(d, "t.jsonl", [b'{"text": 1}', b'{"text": ["a"]}', b'{"text": {"a": 1}}', b'{"text": true}',
                                 b'{"text": NaN}', b'{"text": null}', b'{"text": "ok", "id": {"x": 1}}'], id_field="id")


def invalid_utf8(d):
    return _jsonl(d, "u.jsonl", [b'{"text": "\xff\xfe bad"}', b'{"text": "\\ud800 lone surrogate"}', b'{"text": "ok"}'])


def nul_bytes(d):
    return _jsonl(d, "n.jsonl", [b'{"text": "raw \x00 nul"}', b'{"text": "escaped \\u0000 nul is text"}'])


def giant_line(d):
    path = d / "g.jsonl"
    with open(path, "wb") as fh:
        fh.write(b'{"text": "')
        chunk = b"a" * (1 << 20)
        for _ in range(100):
            fh.write(chunk)
        fh.write(b'"}\n{"text": "small"}\n')
    return {"name": "h", "kind": "text", "format": "jsonl", "paths": [str(path)]}


def deep_nesting(d):
    return _jsonl(d, "deep.jsonl", [b'{"text": "ok", "x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
                                    b'{"text": "ok2", "x": ' + b'{"a":' * 100 + b"1" + b"}" * 100 + b"}"])


def bom_and_crlf(d):
    (d / "bom.jsonl").write_bytes(b'\xef\xbb\xbf{"text": "first"}\r\n{"text": "second"}\r\n')
    return {"name": "h", "kind": "text", "format": "jsonl", "paths": [str(d / "bom.jsonl")]}


def zero_byte_gz(d):
    (d / "z.jsonl.gz").write_bytes(b"")
    (d / "z.jsonl.zst").write_bytes(b"")
    return {"name": "h", "kind": "text", "format": "jsonl", "paths": [str(d / "z.jsonl.*")]}


def _truncated(d, suffix):
    payload = b"".join(json.dumps({"text": f"doc {i} " * 30}).encode() + b"\n" for i in range(500))
    if suffix == "gz":
        data = gzip.compress(payload, mtime=0)
    else:
        import zstandard

        data = zstandard.ZstdCompressor().compress(payload)
    (d / f"t.jsonl.{suffix}").write_bytes(data[: len(data) // 2])
    return {"name": "h", "kind": "text", "format": "jsonl", "paths": [str(d / f"t.jsonl.{suffix}")]}


def truncated_gz(d):
    return _truncated(d, "gz")


def truncated_zst(d):
    return _truncated(d, "zst")


def parquet_wrong_schema(d):
    pq.write_table(pa.table({"content": ["a"]}), d / "w.parquet")
    return {"name": "h", "kind": "code", "format": "parquet", "paths": [str(d / "w.parquet")]}


def parquet_not_parquet(d):
    (d / "fake.parquet").write_bytes(b"PAR1 this is not really parquet")
    return {"name": "h", "kind": "code", "format": "parquet", "paths": [str(d / "fake.parquet")]}


def arrow_not_arrow(d):
    (d / "fake.arrow").write_bytes(b"\x00" * 64)
    return {"name": "h", "kind": "code", "format": "arrow", "paths": [str(d / "fake.arrow")]}


def tree_links_and_dotdot(d):
    root = d / "tree"
    (root / "pkg").mkdir(parents=True)
    (d / "secret.py").write_text("KEY = 'do not read'\n")
    (root / "pkg" / "ok.py").write_text("x = 1\n")
    (root / "escape.py").symlink_to(d / "secret.py")
    (root / "up").symlink_to(d)  # a directory link out of the tree: never followed
    (root / "pkg" / "loop").symlink_to(root)  # a cycle: never followed
    return {"name": "h", "kind": "code", "format": "code-tree", "paths": [str(root / "pkg" / ".." )]}


def odd_file_names(d):
    root = d / "names"
    root.mkdir()
    for raw in (b"caf\xe9.py", "日本語.py".encode(), b"sp ace.py", b"new\nline.py"):
        with open(os.path.join(os.fsencode(root), raw), "wb") as fh:
            fh.write(b"print('hi')\n")
    return {"name": "h", "kind": "code", "format": "code-tree", "paths": [str(root)]}


def binary_in_tree(d):
    root = d / "bin"
    root.mkdir()
    (root / "a.py").write_bytes(b"\x7fELF\x00\x00binary")
    (root / "b.py").write_bytes(b"\xff\xd8\xff jpeg-ish")
    (root / "c.py").write_bytes(b"")
    return {"name": "h", "kind": "code", "format": "code-tree", "paths": [str(root)]}


CASES: dict = {
    malformed_json: Case("malformed JSON lines", "drops", kept=1, drops={"ingest.malformed_json": 3}),
    wrong_types: Case("wrong types in the text field", "drops", kept=1,
                      drops={"ingest.wrong_type": 5, "ingest.missing_text": 1}),
    invalid_utf8: Case("invalid UTF-8, lone surrogates", "drops", kept=1, drops={"ingest.bad_utf8": 2}),
    nul_bytes: Case("NUL bytes in JSON", "drops", kept=1, drops={"ingest.malformed_json": 1}),
    giant_line: Case("100 MB single line", "drops", kept=1, drops={"ingest.too_large": 1}, slow=True),
    deep_nesting: Case("deeply nested JSON", "drops", kept=1, drops={"ingest.malformed_json": 1}),
    bom_and_crlf: Case("byte-order mark and CRLF", "drops", kept=2, drops={}),
    zero_byte_gz: Case("zero-byte .gz and .zst", "drops", kept=0, drops={}),
    truncated_gz: Case("truncated .gz", "error", exit_code=1, message="t.jsonl.gz"),
    truncated_zst: Case("truncated .zst", "error", exit_code=1, message="t.jsonl.zst"),
    parquet_wrong_schema: Case("parquet without the text column", "error", exit_code=2,
                               message="sources[0].text_field"),
    parquet_not_parquet: Case("a file that is not parquet", "error", exit_code=2, message="not a readable parquet file"),
    arrow_not_arrow: Case("a file that is not Arrow", "error", exit_code=2, message="not a readable arrow file"),
    tree_links_and_dotdot: Case("links out of the tree, `..`, cycles", "drops", kept=1, drops={}),
    odd_file_names: Case("file names not in UTF-8, newlines", "drops", kept=4, drops={}),
    binary_in_tree: Case("binary and empty files in a tree", "drops", kept=0,
                         drops={"ingest.binary": 1, "ingest.bad_utf8": 1, "ingest.empty": 1}),
}


if __name__ == "__main__":
    out = Path(sys.argv[1])
    for make in CASES:
        d = out / make.__name__
        d.mkdir(parents=True, exist_ok=True)
        make(d)
    print(f"wrote {len(CASES)} hostile cases to {out}")
