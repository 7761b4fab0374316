"""A generated corpus with the shape of real code for near_dedup's benchmark (no third-party text).

What real code repositories have and the plain generated corpus lacks, each made from code-like lines
drawn from one bank of generated lines (a heavy-tailed choice, so common lines recur across files as
imports and boilerplate do):
    vendored     a few library files copied into hundreds of repositories (and dozens more into tens),
                 each copy with 0-2 % of its lines replaced, deleted or inserted and its version line
                 changed: clusters of up to several hundred near duplicates
    headers      a handful of license headers: prepended to 40 % of all files, and alone (with a line or
                 two of their own) in thousands of small `__init__.py`-like files: one huge family
    generated    templates of generated files (schemas, lockfiles, migrations) whose variants differ
                 in a few lines
    unique       ordinary files, until the target size is reached
Output: parquet files (`id`, `content`, The Stack's column names), documents shuffled, deterministic
for a (mb, seed). `scale` > 1 writes `scale` corpora of `mb` each with seeds seed, seed + 1, ...: more
families of the same shapes (the 8x memory run), not bigger ones.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

SYLLABLES = ["get", "set", "val", "node", "item", "buf", "ptr", "idx", "conf", "load", "parse", "read", "write",
             "data", "key", "name", "path", "file", "user", "list", "map", "size", "len", "err", "res", "req",
             "cache", "row", "col", "span", "tok", "ctx", "cfg", "msg", "src", "dst", "opt", "mode", "flag"]
KEYWORDS = ["def", "return", "if", "else", "for", "in", "import", "from", "class", "while", "try", "except",
            "with", "as", "None", "True", "False", "not", "and", "or", "yield", "raise", "pass", "self"]
PROSE = ["the", "software", "is", "provided", "without", "any", "kind", "of", "permission", "hereby", "to",
         "use", "copy", "modify", "merge", "publish", "notice", "shall", "be", "included", "in", "all", "copies",
         "or", "portions", "author", "holder", "liable", "for", "claim", "damages", "other", "license", "terms"]


def _ident(rng: random.Random) -> str:
    return "_".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3)))


def _line(rng: random.Random) -> str:
    indent = "    " * rng.choice([0, 1, 1, 2, 2, 3])
    i = rng.randrange(6)
    if i == 0:
        return f"{indent}def {_ident(rng)}({_ident(rng)}, {_ident(rng)}={rng.randint(0, 99)}):"
    if i == 1:
        return f"{indent}{_ident(rng)} = {_ident(rng)}.{_ident(rng)}({_ident(rng)}, {_ident(rng)})"
    if i == 2:
        return f"{indent}{rng.choice(KEYWORDS)} {_ident(rng)} {rng.choice(KEYWORDS)} {_ident(rng)}:"
    if i == 3:
        return f"{indent}# {' '.join(rng.choice(PROSE + SYLLABLES) for _ in range(rng.randint(3, 9)))}"
    if i == 4:
        return f"{indent}return {_ident(rng)}[{rng.randint(0, 9)}] + {_ident(rng)}"
    return f"{indent}from {_ident(rng)}.{_ident(rng)} import {_ident(rng)}"


class _Bank:
    """Lines drawn heavy-tailed: the first lines of the bank are the common ones."""

    def __init__(self, rng: random.Random, size: int = 200_000):
        self.lines = [_line(rng) for _ in range(size)]
        self.np = np.random.default_rng(rng.randrange(1 << 32))

    def draw(self, n: int) -> list[str]:
        idx = (self.np.pareto(0.9, n) * 40).astype(np.int64) % len(self.lines)
        return [self.lines[i] for i in idx]


def _edit(lines: list[str], rate: float, bank: _Bank, rng: random.Random) -> list[str]:
    out = list(lines)
    for _ in range(int(len(out) * rate * rng.random()) + rng.randint(0, 1)):
        j = rng.randrange(len(out))
        r = rng.random()
        if r < 0.4:
            out[j] = bank.draw(1)[0]
        elif r < 0.7 and len(out) > 1:
            del out[j]
        else:
            out.insert(j, bank.draw(1)[0])
    return out


def _headers(rng: random.Random, n: int = 6) -> list[str]:
    return ["\n".join("# " + " ".join(rng.choice(PROSE) for _ in range(rng.randint(8, 14))) for _ in range(rng.randint(15, 30)))
            for _ in range(n)]


def documents(mb: float, seed: int = 0) -> list[tuple[str, str]]:
    """(id, text) of one corpus of about `mb` MB (see the module docstring), shuffled."""
    rng = random.Random(seed)
    bank, headers, docs = _Bank(rng), _headers(rng), []
    target = mb * 1e6

    def add(kind: str, text: str) -> None:
        if rng.random() < 0.4 and kind != "header":
            text = rng.choice(headers) + "\n" + text
        docs.append((f"s{seed}/repo{rng.randrange(10**6):06d}/{kind}{len(docs):07d}.py", text))

    copies = [300, 260, 220, 180, 150, 120] + [rng.randint(10, 40) for _ in range(30)]
    for n_copies in copies[: max(1, round(len(copies) * mb / 160))]:
        lib = bank.draw(rng.randint(400, 900))
        for c in range(n_copies):
            add("vendored", f"__version__ = '{c % 7}.{c % 13}.{c}'\n" + "\n".join(_edit(lib, 0.02, bank, rng)))
    for _ in range(int(3000 * mb / 160)):
        own = "\n".join(bank.draw(rng.randint(1, 3)))
        add("header", rng.choice(headers) + "\n" + own)
    for _ in range(int(40 * mb / 160)):
        template = bank.draw(rng.randint(300, 700))
        for _ in range(rng.randint(30, 90)):
            variant = list(template)
            for _ in range(rng.randint(2, 6)):
                variant[rng.randrange(len(variant))] = f"    {_ident(rng)} = {rng.randrange(10**9)}"
            add("generated", "\n".join(variant))
    total = sum(len(t) for _, t in docs)
    while total < target:
        text = "\n".join(bank.draw(int(rng.lognormvariate(5, 0.9)) + 5))
        add("unique", text)
        total += len(text) + (len(docs[-1][1]) - len(text))
    rng.shuffle(docs)
    return docs


def write(root: Path, mb: float, seed: int = 0, scale: int = 1, file_mb: float = 32) -> Path:
    """The corpus (or `scale` of them) as parquet files of about file_mb each under root; returns root."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root.mkdir(parents=True, exist_ok=True)
    n = 0
    for s in range(seed, seed + scale):
        docs = documents(mb, s)
        start, size = 0, 0
        for i, (_, text) in enumerate(docs):
            size += len(text)
            if size >= file_mb * 1e6 or i == len(docs) - 1:
                chunk = docs[start : i + 1]
                pq.write_table(pa.table({"id": [d[0] for d in chunk], "content": [d[1] for d in chunk]}),
                               root / f"code-{n:03d}.parquet")
                start, size, n = i + 1, 0, n + 1
    return root
