"""Stage `near_dedup`: MinHash LSH near-duplicate removal, verified against exact Jaccard.

Phases (pure functions here; curate/workers/near_dedup.py moves their tables between Ray tasks through
files grouped by bucket, so no process holds every signature, edge or document):
    shingle_hashes   per part: BigCode's shingles made precise: lower-case, split on Python's Unicode
                     `\\W+`, drop empty tokens, word n-grams (`ngram`, default 5) joined by one space; a
                     document with fewer tokens has one shingle of all its tokens, one without tokens has
                     none (it is never a candidate: an empty signature must not match every short file).
                     Each shingle gets a 64-bit hash (`shingle_hash64`; computed for a whole batch by
                     the compiled loops of near_dedup_kernels.py); the set of these hashes is what
                     "exact Jaccard" compares.
    signatures       MinHash, datasketch's "affine32" scheme (its default since 2.0): the low 32 bits of
                     the shingle hash, pre-mixed by MurmurHash3's finalizer, then `a*h + b mod 2^32` for
                     every permutation in one compiled loop per shingle; `datasketch.MinHash(num_perm, seed,
                     hashfunc=shingle_hash32)` fed the same shingles gives the same values.
    band_keys        (band, 64-bit hash of the band's r values) per document and band
    candidate_pairs  documents sharing a band key; all pairs of a bucket of at most `max_bucket_docs`
                     documents, and only pairs with its first document in a larger bucket
    shingle_sets     each document's distinct shingle hashes, sorted, computed once: the MinHash input
                     and the payload that verification reads
    (verification)   curate/workers/near_dedup_verify.py: candidate pairs scored by exact Jaccard (a
                     linear merge of two sorted sets, near_dedup_kernels.verify_pairs) or by
                     `signature_agreement` (`verify: exact | signature`), skipping pairs whose documents
                     the accepted pairs already connect
    (components)     curate/stages/components.py: connected components of the verified edges
    choose_survivors per cluster the best document survives: more stars, then more forks, then newer (The
                     Stack's metadata in `meta`, when present), then the smallest id
    mark_members     per part: drop_reason `near_dedup.duplicate`, drop_detail = the survivor's id

Input: the document schema. Added column: `minhash_cluster` (the survivor's id for every member of a
cluster of near duplicates, null otherwise). Reason codes: near_dedup.duplicate.
References: Broder 1997 (MinHash); Leskovec, Rajaraman & Ullman, Mining of Massive Datasets ch. 3 (LSH
banding and its S-curve); BigCode's near_deduplication scripts and The Stack (Kocetkov et al. 2022, which
used threshold 0.85), StarCoder (Li et al. 2023, threshold 0.7, 5-grams).
"""

from __future__ import annotations

import functools
import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.hashing import K_BAND, K_SHINGLE, fmix64  # the hash primitives the compiled loops share
from curate.schema import DROP_DETAIL, DROP_REASON, ID, META, TEXT
from curate.stagespec import Stage

STAGE = Stage(key="near_dedup", order=30, kind="global",
              summary="MinHash LSH near duplicates, verified by exact Jaccard, one survivor per cluster",
              decide="curate.workers.near_dedup:decide", run="curate.workers.near_dedup:run",
              check="curate.workers.near_dedup:check")

MAX_HASH32 = np.uint32(0xFFFFFFFF)
_WORDS = re.compile(r"\w+")  # "split on \W+ and drop empty tokens" is exactly "the runs of \w"
_U64 = np.uint64
_MASK64 = (1 << 64) - 1


# ---------------------------------------------------------------------------------------------- hashing
def _combine(h: np.ndarray, token: np.ndarray) -> np.ndarray:
    return fmix64(h * K_SHINGLE + token)


def token_hash64(token: bytes) -> int:
    """The hash of one token (lower-cased UTF-8 bytes): the sum over its bytes of fmix64(byte | position
    << 8), mixed with the length. The scalar definition the compiled loops (near_dedup_kernels) follow;
    used by tests and as datasketch's hashfunc."""
    total = 0
    for i, byte in enumerate(token):
        total = (total + _fmix64_int(byte | (i << 8))) & _MASK64
    return _fmix64_int(total ^ ((len(token) * int(K_SHINGLE)) & _MASK64))


def shingle_hash64(shingle: bytes) -> int:
    """The 64-bit hash of one shingle (its tokens joined by one space), as `shingle_hashes` computes it."""
    h = 0
    for token in shingle.split(b" "):
        h = _fmix64_int((h * int(K_SHINGLE) + token_hash64(token)) & _MASK64)
    return h


def shingle_hash32(shingle: bytes) -> int:
    """The MinHash input hash: datasketch's `hashfunc` that reproduces our signatures."""
    return shingle_hash64(shingle) & 0xFFFFFFFF


def _fmix64_int(h: int) -> int:
    return int(fmix64(np.array([h], _U64))[0])


# ---------------------------------------------------------------------------------------------- shingles
def shingles(text: str, ngram: int) -> set[str]:
    """Reference shingles of one document, as strings (tests and the datasketch comparison)."""
    tokens = _WORDS.findall(text.lower())
    if not tokens:
        return set()
    if len(tokens) < ngram:
        return {" ".join(tokens)}
    return {" ".join(tokens[i : i + ngram]) for i in range(len(tokens) - ngram + 1)}


def tokenize(texts: list[str]) -> tuple[pa.Array, np.ndarray]:
    """(flat tokens, token count per document): Python's Unicode `\\w` runs of the lower-cased text.
    Arrow's RE2 splits (2x faster than `re.findall`), on an explicit class of the code points that Python's
    `\\w` matches: RE2's own `\\w` is ASCII and its Unicode tables are older than Python's. Lower-casing
    stays in Python (`str.lower`; Arrow's utf8_lower differs on ~80 code points). The general path;
    ASCII-only documents take the compiled byte loop (`token_hashes`)."""
    lowered = pa.array([t.lower() for t in texts], pa.large_string())
    pieces = pc.split_pattern_regex(lowered, _non_word_pattern())
    flat = pc.list_flatten(pieces)
    nonempty = pc.greater(pc.binary_length(flat), 0)
    parent = pc.list_parent_indices(pieces).to_numpy(zero_copy_only=False)
    counts = np.bincount(parent[nonempty.to_numpy(zero_copy_only=False)], minlength=len(texts)).astype(np.int64)
    return flat.filter(nonempty), counts


@functools.cache
def _non_word_pattern() -> str:
    """An RE2 class of the characters that are not Python `\\w` (str.isalnum() or '_'), built once per process."""
    word = np.fromiter((chr(c).isalnum() for c in range(0x110000)), bool, 0x110000)
    word[ord("_")] = True
    word[0xD800:0xE000] = False  # surrogates are not valid in UTF-8 strings
    bounds = np.flatnonzero(np.diff(np.concatenate([[0], word.astype(np.int8), [0]]))).reshape(-1, 2)
    cls = "".join(f"\\x{{{a:x}}}" if b - 1 == a else f"\\x{{{a:x}}}-\\x{{{b - 1:x}}}" for a, b in bounds)
    return f"[^{cls}]+"


def _as_large_strings(texts) -> pa.Array:
    if isinstance(texts, (pa.Array, pa.ChunkedArray)):
        arr = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
        arr = arr.cast(pa.large_string()) if arr.type != pa.large_string() else arr
        return pc.fill_null(arr, "") if arr.null_count else arr
    return pa.array(texts, pa.large_string())


def token_hashes(texts) -> tuple[np.ndarray, np.ndarray]:
    """(64-bit hash of every token in document order, token count per document) of a list or Arrow
    array of texts. ASCII-only documents (most code) are split and hashed in one compiled pass over their
    bytes; the others are split by `tokenize`; the two results are interleaved back into document order
    by array arithmetic."""
    arr = _as_large_strings(texts)
    is_ascii = pc.fill_null(pc.string_is_ascii(arr), True).to_numpy(zero_copy_only=False)
    if is_ascii.all():
        return _ascii_token_hashes(arr)
    groups = [np.flatnonzero(is_ascii), np.flatnonzero(~is_ascii)]
    a_tok, a_counts = _ascii_token_hashes(arr.filter(pa.array(is_ascii)))
    u_flat, u_counts = tokenize(arr.filter(pa.array(~is_ascii)).to_pylist())
    counts = np.zeros(len(arr), np.int64)
    counts[groups[0]], counts[groups[1]] = a_counts, u_counts
    starts = np.cumsum(counts) - counts
    tok = np.zeros(int(counts.sum()), _U64)
    for docs, hashes, c in ((groups[0], a_tok, a_counts), (groups[1], _hash_tokens(u_flat), u_counts)):
        dest = np.repeat(starts[docs] - (np.cumsum(c) - c), c) + np.arange(int(c.sum()))
        tok[dest] = hashes
    return tok, counts


def _string_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(UTF-8 bytes, int64 offsets of every string into them) of a large_string array, zero-copy."""
    if len(arr) == 0:  # a foreign producer may leave an empty array without an offsets buffer
        return np.zeros(0, np.uint8), np.zeros(1, np.int64)
    offsets = np.frombuffer(arr.buffers()[1], np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    return (np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)), offsets


def _kernels():
    """near_dedup_kernels, imported on first use: numba is loaded by the processes that compute signatures,
    not by every process that imports this module (the CLI, the driver)."""
    from curate.stages import near_dedup_kernels

    return near_dedup_kernels


def _ascii_token_hashes(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    data, offsets = _string_buffers(arr)
    K = _kernels()
    return K.ascii_token_hashes(data, offsets, K.ASCII_WORD, K.ASCII_LOWER)


def _hash_tokens(flat: pa.Array) -> np.ndarray:
    """Hashes of a flat large_string array of (lower-cased) tokens."""
    if len(flat) == 0:
        return np.zeros(0, _U64)
    data, offsets = _string_buffers(flat)
    return _kernels().token_hashes(data, offsets)


def shingle_hashes(texts, ngram: int, unique: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(doc index, 64-bit shingle hash) for the shingles of each document, grouped by document. With
    `unique` (the reference form, by a lexsort; the stage uses the compiled `shingle_sets`), each
    document's distinct shingles sorted by hash; without, every n-gram position in text order."""
    tok, counts = token_hashes(texts)
    h = _kernels().ngram_hashes(tok, counts, ngram)
    per_doc = np.where(counts >= ngram, counts - ngram + 1, np.minimum(counts, 1))
    doc = np.repeat(np.arange(counts.size, dtype=np.int64), per_doc)
    return _unique_by_doc(doc, h) if unique else (doc, h)


def shingle_sets(texts, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """(values, counts): each document's distinct shingle hashes, sorted, grouped by document (`counts`
    per document): the signature phase's input (MinHash ignores repeats, so it hashes each once) and
    the payload that verification intersects by merge. Equal to `shingle_hashes(unique=True)`."""
    tok, counts = token_hashes(texts)
    h = _kernels().ngram_hashes(tok, counts, ngram)
    per_doc = np.where(counts >= ngram, counts - ngram + 1, np.minimum(counts, 1))
    return sorted_sets(h, per_doc)


def sorted_sets(h: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, counts) of hashes grouped by document: each group sorted, repeats removed (compiled)."""
    return _kernels().sort_unique(np.ascontiguousarray(h, _U64), np.ascontiguousarray(counts, np.int64))


def _unique_by_doc(doc: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((h, doc))
    doc, h = doc[order], h[order]
    keep = np.ones(doc.size, bool)
    keep[1:] = (doc[1:] != doc[:-1]) | (h[1:] != h[:-1])
    return doc[keep], h[keep]


# ---------------------------------------------------------------------------------------------- signatures
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of datasketch's affine32 scheme: the same RandomState draws as `MinHash(num_perm, seed)`."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def signatures(doc: np.ndarray, h: np.ndarray, n_docs: int, num_perm: int, seed: int) -> np.ndarray:
    """MinHash signatures [n_docs, num_perm] (uint32) from (doc, shingle hash) pairs (repeats allowed). A
    document without shingles keeps datasketch's empty value (all 2^32-1). Memory: the signatures only;
    each shingle's permuted values never leave registers (near_dedup_kernels.minhash)."""
    a, b = permutations(num_perm, seed)
    doc = np.ascontiguousarray(doc, np.int64)
    if doc.size and (doc.min() < 0 or doc.max() >= n_docs):  # the compiled loop does not check bounds
        raise ValueError(f"signatures: document index outside 0..{n_docs - 1}")
    return _kernels().minhash(doc, np.ascontiguousarray(h, _U64), n_docs, a, b)


# ---------------------------------------------------------------------------------------------- LSH
def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """[n_docs, bands] uint64: a hash of each band's `rows` values, seeded by the band index."""
    n = sig.shape[0]
    values = sig[:, : bands * rows].reshape(n, bands, rows).astype(_U64)
    h = np.broadcast_to(fmix64((np.arange(bands, dtype=_U64) + _U64(1)) * K_BAND), (n, bands)).copy()
    for j in range(rows):
        h = _combine(h, values[:, :, j])
    return h


def resolve_bands(cfg) -> tuple[int, int, float]:
    """(bands, rows, candidate_threshold): the recipe's explicit (b, r), or the (b, r) that datasketch's
    optimiser picks for candidate_threshold (default threshold - 0.2): never datasketch's bare defaults,
    which are tuned for the threshold itself and so miss many pairs just above it."""
    from datasketch.lsh import _optimal_param  # the same optimiser MinHashLSH(threshold=...) calls

    cand = cfg.candidate_threshold if cfg.candidate_threshold is not None else round(max(0.05, cfg.threshold - 0.2), 6)
    if cfg.bands is not None:
        return cfg.bands, cfg.rows, cand
    b, r = _optimal_param(cand, cfg.num_perm, 0.5, 0.5)
    return int(b), int(r), cand


def s_curve(bands: int, rows: int, points=(0.5, 0.6, 0.7, 0.8, 0.85, 0.9)) -> dict[str, float]:
    """P(candidate | Jaccard J) = 1 - (1 - J^r)^b, at the given J."""
    return {f"{j:.2f}": round(1.0 - (1.0 - j**rows) ** bands, 6) for j in points}


def candidate_pairs(key: np.ndarray, doc: np.ndarray, max_bucket_docs: int) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) with u < v for documents that share a band key; unique pairs, sorted by (u, v). A key shared
    by more than max_bucket_docs documents pairs only its smallest document with the others. The pairs
    are made and deduplicated in one compiled pass (near_dedup_kernels.group_pairs): memory and time
    follow the distinct pairs, not every band's copy of them."""
    if key.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    nodes, rank = np.unique(doc.astype(np.int64), return_inverse=True)
    order = np.lexsort((rank, key))  # by key, then by document
    key, rank = key[order], rank[order].astype(np.int64)
    start = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1], [True]]))
    pair = np.sort(_kernels().group_pairs(start, rank, max_bucket_docs, nodes.size))
    return nodes[pair // nodes.size], nodes[pair % nodes.size]


def unique_pairs(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows (u, v), sorted by (u, v): np.unique(axis=0)'s result, but each row is one int64
    key over the dense ranks of its nodes (a plain sort; the row view of axis=0 sorts 6x slower)."""
    if u.size == 0:
        return u.astype(np.int64), v.astype(np.int64)
    nodes, inv = np.unique(np.concatenate([u, v]).astype(np.int64), return_inverse=True)
    key = np.unique(inv[: u.size].astype(np.int64) * nodes.size + inv[u.size :])
    return nodes[key // nodes.size], nodes[key % nodes.size]


# ---------------------------------------------------------------------------------------------- verify
def signature_agreement(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The fraction of equal MinHash values of aligned signature rows (the MinHash Jaccard estimate);
    empty signatures never agree."""
    empty = (a == MAX_HASH32).all(axis=1) | (b == MAX_HASH32).all(axis=1)
    return np.where(empty, 0.0, (a == b).mean(axis=1))


# ---------------------------------------------------------------------------------------------- survivors
STAR_KEYS, FORK_KEYS = ("max_stars_count", "stars", "stars_count"), ("max_forks_count", "forks", "forks_count")
DATE_KEYS = ("max_stars_repo_stars_event_max_datetime", "max_stars_repo_stars_event_min_datetime", "date")


def rank_columns(table: pa.Table) -> dict[str, pa.Array]:
    """The survivor-ranking fields of each document from its `meta` JSON (zero / empty when absent)."""
    metas = table[META].to_pylist() if META in table.column_names else [None] * table.num_rows
    parsed = [_meta(m) for m in metas]  # per document: JSON parsing has no vectorised Arrow kernel
    return {
        "stars": pa.array([_first(p, STAR_KEYS, 0) for p in parsed], pa.int64()),
        "forks": pa.array([_first(p, FORK_KEYS, 0) for p in parsed], pa.int64()),
        "date": pa.array([str(_first(p, DATE_KEYS, "")) for p in parsed], pa.string()),
    }


def _meta(raw: str | None) -> dict:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _first(meta: dict, keys: tuple, default):
    for k in keys:
        v = meta.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and default == 0:
            return int(v)
        if isinstance(v, str) and default == "":
            return v
    return default


# A document of an earlier run's signature index (`near_dedup.against`) has this bit set in its node id, so
# it never collides with this run's (part << 32 | row) ids and sorts after every one of them; bits 56-61
# hold which earlier run (its level), so two earlier runs' ids never collide either. A run's part index
# must then fit in the 24 bits left between the row (bits 0-31) and the level.
INDEX_FLAG = np.int64(1 << 62)
LEVEL_SHIFT, MAX_LEVELS, MAX_INDEXED_PARTS = 56, 64, 1 << 24
INDEX_BITS = INDEX_FLAG | np.int64((MAX_LEVELS - 1) << LEVEL_SHIFT)  # what shuffle buckets ignore


def in_index(nodes: np.ndarray) -> np.ndarray:
    return (nodes & INDEX_FLAG) != 0


def index_nodes(nodes: np.ndarray, level: int) -> np.ndarray:
    """The ids an earlier run's own (unflagged) node ids get in this run: the flag and its level."""
    return nodes | INDEX_FLAG | np.int64(level << LEVEL_SHIFT)


def choose_survivors(members: pa.Table) -> pa.Table:
    """members: (comp, doc, id, stars, forks, date) for every document of a set of whole clusters.
    Returns (doc, survivor id, is_survivor, survivor_in_index) per member: a document of an earlier run's
    index survives first (that run's output is never touched); else the survivor has the most stars, then
    forks, then the newest date, then the smallest id (BigCode's order)."""
    t = members.append_column("_old", pa.array(in_index(members["doc"].to_numpy())))
    t = t.sort_by([("comp", "ascending"), ("_old", "descending"), ("stars", "descending"),
                   ("forks", "descending"), ("date", "descending"), (ID, "ascending")])
    comp = t["comp"].to_numpy()
    first = np.concatenate([[True], comp[1:] != comp[:-1]]) if comp.size else np.zeros(0, bool)
    head = np.maximum.accumulate(np.where(first, np.arange(comp.size), 0))
    old = t["_old"].to_numpy(zero_copy_only=False)
    return pa.table({"doc": t["doc"], "survivor": pc.take(t[ID], pa.array(head, pa.int64())),
                     "is_survivor": pa.array(first), "survivor_in_index": pa.array(old[head])})


def mark_members(table: pa.Table, rows: np.ndarray, members: pa.Table) -> pa.Table:
    """Adds minhash_cluster / drop_reason / drop_detail to a batch whose rows have order keys `rows`,
    given (doc, survivor, is_survivor[, survivor_in_index]) of this part's cluster members."""
    n = table.num_rows
    docs = members["doc"].combine_chunks() if members.num_rows else pa.array([], pa.int64())
    idx = pc.index_in(pa.array(rows, pa.int64()), docs)

    def column(name: str, type_: pa.DataType) -> pa.Array:
        if not members.num_rows or name not in members.column_names:
            return pa.nulls(n, type_)
        return pc.take(members[name].combine_chunks(), idx)

    survivor, is_surv = column("survivor", pa.string()), column("is_survivor", pa.bool_())
    dropped = pc.fill_null(pc.invert(is_surv), False)
    indexed = pc.fill_null(column("survivor_in_index", pa.bool_()), False)
    reason = pc.if_else(dropped, pc.if_else(indexed, "near_dedup.indexed_duplicate", "near_dedup.duplicate"),
                        pa.nulls(n, pa.string()))
    detail = pc.if_else(dropped, survivor, pa.nulls(n, pa.string()))
    return (table.append_column("minhash_cluster", survivor.cast(pa.string()))
            .append_column(DROP_REASON, reason).append_column(DROP_DETAIL, detail.cast(pa.string())))


def doc_texts(table: pa.Table) -> list[str]:
    return table[TEXT].to_pylist()
