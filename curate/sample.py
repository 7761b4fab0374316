"""`curate sample OUT_DIR`: a deterministic demo corpus built from the running Python installation.

Nothing is downloaded. Four sources in four formats, so the demo exercises every reader:
    code/python/        code-tree: the standard library's .py files (tests and site-packages excluded)
    code/headers.parquet  parquet in The Stack's layout (content, lang, max_stars_repo_path, hexsha, ...):
                        the C headers of the include directory
    text/topics.jsonl.gz  the documentation topics of `pydoc_data`, one document per topic
    text/docs.jsonl.zst   module docstrings of the standard library and the prose files that ship with it
The corpus naturally holds exact duplicates (identical stdlib files) and near-duplicates (the generated
codec modules in `encodings/`); `sample` counts both and writes them to `OUT_DIR/SAMPLE.json`.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import json
import os
import shutil
import sysconfig
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

EXCLUDED_DIRS = {"site-packages", "test", "tests", "idle_test", "__pycache__", "dist-packages"}


def stdlib_files(suffix: str = ".py") -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_DIRS)
        out.extend(Path(dirpath) / f for f in sorted(filenames) if f.endswith(suffix))
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())


def build_sample(out_dir: str | Path, max_code_files: int | None = None) -> dict:
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    root = Path(sysconfig.get_paths()["stdlib"])
    code_files = stdlib_files()[:max_code_files]
    for f in code_files:
        dest = out / "code" / "python" / f.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dest)
    headers = _write_headers(out / "code" / "headers.parquet")
    topics = _write_topics(out / "text" / "topics.jsonl.gz")
    docs = _write_docs(out / "text" / "docs.jsonl.zst", code_files, root)
    texts = [f.read_bytes() for f in code_files]
    info = {
        "python": sysconfig.get_python_version(),
        "documents": {"code/python": len(code_files), "code/headers": headers, "text/topics": topics, "text/docs": docs},
        "bytes": sum(p.stat().st_size for p in out.rglob("*") if p.is_file()),
        "exact_duplicates": count_exact_duplicates(texts),
        "near_duplicates": count_near_duplicates(texts),
    }
    (out / "SAMPLE.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info


def _write_headers(dest: Path) -> int:
    include = Path(sysconfig.get_paths()["include"])
    files = sorted(include.rglob("*.h"), key=lambda p: p.relative_to(include).as_posix())
    rows = []
    for f in files:
        data = f.read_bytes()
        rel = f.relative_to(include).as_posix()
        rows.append({
            "hexsha": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(),  # git's blob id, as The Stack
            "size": len(data),
            "ext": "h",
            "lang": "C",
            "max_stars_repo_path": f"Include/{rel}",
            "max_stars_repo_name": "python/cpython",
            "max_stars_count": 0,
            "content": data.decode("utf-8", "replace"),
        })
    dest.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), dest, row_group_size=64)
    return len(rows)


def _write_topics(dest: Path) -> int:
    from pydoc_data.topics import topics

    lines = [json.dumps({"id": name, "text": topics[name]}, ensure_ascii=False) for name in sorted(topics)]
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as fh:
        fh.write(("\n".join(lines) + "\n").encode("utf-8"))
    return len(lines)


def _write_docs(dest: Path, code_files: list[Path], root: Path) -> int:
    import zstandard

    records = []
    for f in code_files:
        try:
            doc = ast.get_docstring(ast.parse(f.read_text(encoding="utf-8")), clean=True)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        if doc and len(doc) >= 200:
            records.append({"title": f.relative_to(root).as_posix(), "body": doc})
    for f in sorted(root.glob("idlelib/*.txt")) + [root / "LICENSE.txt"]:
        if f.exists():
            records.append({"title": f.relative_to(root).as_posix(), "body": f.read_text(encoding="utf-8", errors="replace")})
    payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    dest.write_bytes(zstandard.ZstdCompressor(level=10).compress(payload))
    return len(records)


def count_exact_duplicates(texts: list[bytes]) -> int:
    seen: set[bytes] = set()
    dups = 0
    for t in texts:
        if not t.strip():
            continue
        h = hashlib.sha256(t).digest()
        dups += h in seen
        seen.add(h)
    return dups


def count_near_duplicates(texts: list[bytes], threshold: float = 0.7, num_perm: int = 128) -> int:
    """Documents that have a near-duplicate (datasketch LSH on word 5-grams, Jaccard >= threshold, verified)."""
    import re

    from datasketch import MinHash, MinHashLSH

    word = re.compile(r"\W+")
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    shingle_sets, hashes = [], []
    for i, t in enumerate(texts):
        tokens = [w for w in word.split(t.decode("utf-8", "replace").lower()) if w]
        grams = {" ".join(tokens[j : j + 5]) for j in range(max(1, len(tokens) - 4))} if tokens else set()
        shingle_sets.append(grams)
        m = MinHash(num_perm=num_perm)
        m.update_batch([g.encode() for g in grams])
        hashes.append(m)
        if grams:
            lsh.insert(str(i), m)
    with_dup = set()
    for i, m in enumerate(hashes):
        if not shingle_sets[i]:
            continue
        for key in lsh.query(m):
            j = int(key)
            if j != i and texts[j] != texts[i]:
                a, b = shingle_sets[i], shingle_sets[j]
                if len(a & b) / len(a | b) >= threshold:
                    with_dup.add(i)
    return len(with_dup)


def corpus_digest(out_dir: str | Path) -> str:
    h = hashlib.sha256()
    for p in sorted(Path(out_dir).rglob("*")):
        if p.is_file():
            h.update(p.relative_to(out_dir).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


__all__ = ["build_sample", "corpus_digest"]
