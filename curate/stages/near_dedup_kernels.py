"""Compiled loops of near_dedup's signature and verification phases (numba): one pass per step, no
temporary arrays.

The numpy forms of these steps each made several passes over arrays as large as the corpus (the MinHash
step alone writes and re-reads num_perm values per shingle); these loops keep each value in registers.
Their results are bit-identical to the definitions in curate/stages/near_dedup.py (`token_hash64`,
`shingle_hash64`, datasketch's affine32 permutations), which the tests check value by value.

    ascii_token_hashes  ASCII documents: Python's `\\w` runs ([A-Za-z0-9_]) of the lower-cased bytes, each
                        hashed as it is read (a run never crosses a document boundary)
    token_hashes        tokens already split (the Unicode path: Arrow's regex split of `str.lower()` text)
    ngram_hashes        each document's word n-gram hashes, one per position
    minhash             the signature of each document: per shingle, `a*x + b mod 2^32` for every
                        permutation against the running minimum (vectorised by LLVM along the permutations)
    sort_unique         each document's shingle hashes sorted, repeats removed (once, at signature time)
    intersection_size   |A & B| of two sorted, repeat-free hash arrays by one linear merge
    distinct_add, index_table, lookup
                        a growing hash set of int64 values; positions of values by one probe each
    unite, flatten      a union-find over node indices fed edge list by edge list, then each node's root
    verify_pairs        candidate pairs in the given order against a union-find: a pair whose documents
                        are already connected by accepted pairs is skipped, any other is scored (exact
                        Jaccard by merge, or MinHash agreement) and joins the two sets if accepted

Integer typing: numba widens uint32 arithmetic to 64 bits, so the 32-bit steps mask or cast explicitly.
Compiled once per machine: the machine code is cached beside this file, or in numba's user cache or
NUMBA_CACHE_DIR; where none is writable, each process compiles them again (~1 s) instead of failing.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from curate.hashing import FMIX_M1, FMIX_M2, K_SHINGLE

_U64 = np.uint64
_LOW32 = _U64(0xFFFFFFFF)
_S8, _S13, _S16, _S33 = _U64(8), _U64(13), _U64(16), _U64(33)

ASCII_WORD = np.zeros(256, np.bool_)  # Python's `\w` on an ASCII-only str is exactly [A-Za-z0-9_]
for _lo, _hi in ((48, 58), (65, 91), (97, 123), (95, 96)):
    ASCII_WORD[_lo:_hi] = True
ASCII_LOWER = np.arange(256, dtype=np.uint8)
ASCII_LOWER[65:91] += 32  # and str.lower() on ASCII maps only A-Z


@njit(inline="always")
def _fmix64(h):
    h ^= h >> _S33
    h *= FMIX_M1
    h ^= h >> _S33
    h *= FMIX_M2
    return h ^ (h >> _S33)


@njit(inline="always")
def _fmix32(h):
    """MurmurHash3's 32-bit finalizer on a value below 2^32 held in a uint64."""
    h ^= h >> _S16
    h = (h * _U64(0x85EBCA6B)) & _LOW32
    h ^= h >> _S13
    h = (h * _U64(0xC2B2AE35)) & _LOW32
    return h ^ (h >> _S16)


@njit(inline="always")
def _byte_term(byte, pos):
    return _fmix64(_U64(byte) | (_U64(pos) << _S8))


@njit(inline="always")
def _token_end(total, length):
    return _fmix64(total ^ (_U64(length) * K_SHINGLE))


def _compiled(fn):
    try:
        return njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # numba found no writable cache location (read-only install and home)
        return njit(nogil=True)(fn)


@_compiled
def ascii_token_hashes(data, offsets, word, lower):
    """(hash of every token in document order, tokens per document) of ASCII documents given as UTF-8
    bytes `data` and their int64 `offsets` (n_docs + 1, absolute positions in `data`)."""
    n = offsets.size - 1
    tok = np.empty((offsets[n] - offsets[0] + n) // 2 + 1, _U64)  # a token and its separator: 2 bytes
    counts = np.zeros(n, np.int64)
    k = 0
    for d in range(n):
        total, pos = _U64(0), 0
        for i in range(offsets[d], offsets[d + 1]):
            c = data[i]
            if word[c]:
                total += _byte_term(lower[c], pos)
                pos += 1
            elif pos:
                tok[k] = _token_end(total, pos)
                k += 1
                total, pos = _U64(0), 0
        if pos:
            tok[k] = _token_end(total, pos)
            k += 1
        counts[d] = k
    for d in range(n - 1, 0, -1):
        counts[d] -= counts[d - 1]
    return tok[:k], counts


@_compiled
def token_hashes(data, offsets):
    """The hash of each token data[offsets[i]:offsets[i + 1]] (already lower-cased UTF-8 bytes)."""
    n = offsets.size - 1
    out = np.empty(n, _U64)
    for t in range(n):
        total = _U64(0)
        for pos in range(offsets[t + 1] - offsets[t]):
            total += _byte_term(data[offsets[t] + pos], pos)
        out[t] = _token_end(total, offsets[t + 1] - offsets[t])
    return out


@_compiled
def ngram_hashes(tok, counts, ngram):
    """The shingle hashes of each document, in text order: one per n-gram position; a document with
    fewer than `ngram` tokens has one shingle of all of them, one without tokens none."""
    size = 0
    for c in counts:
        size += c - ngram + 1 if c >= ngram else min(c, 1)
    out = np.empty(size, _U64)
    start, k = 0, 0
    for c in counts:
        width = min(c, ngram)
        for i in range(max(c - ngram + 1, 1) if c else 0):
            h = _U64(0)
            for j in range(width):
                h = _fmix64(h * K_SHINGLE + tok[start + i + j])
            out[k] = h
            k += 1
        start += c
    return out


@_compiled
def minhash(doc, h, n_docs, a, b):
    """[n_docs, num_perm] uint32 signatures of shingle hashes `h` of documents `doc` (any order, repeats
    allowed); a document without shingles keeps datasketch's empty value, 2^32 - 1 everywhere."""
    sig = np.full((n_docs, a.size), np.uint32(0xFFFFFFFF), np.uint32)
    for i in range(h.size):
        x = np.uint32(_fmix32(h[i] & _LOW32))
        row = sig[doc[i]]
        for p in range(a.size):
            row[p] = min(row[p], np.uint32(a[p] * x + b[p]))
    return sig


@_compiled
def sort_unique(h, counts):
    """(values, counts) of each document's shingle hashes `h` (grouped by document, `counts` per document)
    sorted ascending without repeats: the form a pair's Jaccard is read from by one merge."""
    out = np.empty(h.size, _U64)
    new_counts = np.zeros(counts.size, np.int64)
    start, k = 0, 0
    for d in range(counts.size):
        s = _sort_uniform(h[start : start + counts[d]])
        first = k
        for i in range(s.size):
            if i == 0 or s[i] != s[i - 1]:
                out[k] = s[i]
                k += 1
        new_counts[d] = k - first
        start += counts[d]
    return out[:k], new_counts


@njit
def _sort_uniform(x):
    """A sorted copy of x, in expected linear time for uniformly distributed values (hashes): one pass
    places each value in its bucket of the top bits (about two values per bucket), then an insertion
    sort finishes each short run. Correct for any input; only the speed assumes uniform values (a run
    of equal values costs one comparison each). 3x np.sort on shingle hashes."""
    n = x.size
    if n < 32:
        return np.sort(x)
    bits = 1
    while (1 << (bits + 1)) <= n:
        bits += 1
    shift = _U64(64 - bits)
    pos = np.zeros((1 << bits) + 1, np.int64)
    for i in range(n):
        pos[(x[i] >> shift) + _U64(1)] += 1
    for b in range(1 << bits):
        pos[b + 1] += pos[b]
    out = np.empty(n, _U64)
    for i in range(n):
        b = x[i] >> shift
        out[pos[b]] = x[i]
        pos[b] += 1
    for i in range(1, n):
        v, j = out[i], i - 1
        while j >= 0 and out[j] > v:
            out[j + 1] = out[j]
            j -= 1
        out[j + 1] = v
    return out


@njit(inline="always")
def _intersection(a, b):
    i, j, n = 0, 0, 0
    while i < a.size and j < b.size:
        x, y = a[i], b[j]
        if x == y:
            n += 1
            i += 1
            j += 1
        elif x < y:
            i += 1
        else:
            j += 1
    return n


@_compiled
def intersection_size(a, b):
    """|A & B| of two sorted, repeat-free uint64 arrays: one merge, no allocation."""
    return _intersection(a, b)


@njit(inline="always")
def _find(parent, x):
    while parent[x] != x:
        parent[x] = parent[parent[x]]  # path halving
        x = parent[x]
    return x


@njit(inline="always")
def _jaccard(a, b):
    inter = _intersection(a, b)
    union = a.size + b.size - inter
    return inter / union if union > 0 else 0.0  # two empty sets are not duplicates


@njit(inline="always")
def _agreement(a, b, empty):
    """The MinHash estimate: the share of equal values; a signature of an empty document agrees with none."""
    a_empty, b_empty, same = True, True, 0
    for p in range(a.size):
        a_empty &= a[p] == empty
        b_empty &= b[p] == empty
        same += a[p] == b[p]
    return 0.0 if a_empty or b_empty else same / a.size


@_compiled
def verify_pairs(a, b, ra, rb, a_off, a_vals, b_off, b_vals, a_sig, b_sig, mode, threshold, audit, parent,
                 exact, state):
    """Pairs i in index order: union-find nodes a[i], b[i]; shingle sets a_vals[a_off[ra[i]]:a_off[ra[i] + 1]]
    and the same of b (sorted, repeat-free); signature rows a_sig[ra[i]], b_sig[rb[i]] (mode 1 only).
    mode 0 scores by exact Jaccard, 1 by MinHash agreement, 2 accepts every pair; accepted = score >=
    threshold. A pair whose nodes share a root is skipped (state 0): the accepted pairs already connect
    them, so accepting it could not change a component. Otherwise state 1 (rejected) or 2 (accepted: its
    nodes are joined, the smaller root becoming the root). Pairs with audit[i] get their exact Jaccard in
    `exact` (and their decision, in `state` 3 or 4 when skipped: rejected or accepted) whatever happens."""
    empty = np.uint32(0xFFFFFFFF)
    for i in range(a.size):
        sa = a_vals[a_off[ra[i]] : a_off[ra[i] + 1]]
        sb = b_vals[b_off[rb[i]] : b_off[rb[i] + 1]]
        x, y = _find(parent, a[i]), _find(parent, b[i])
        if x == y and not audit[i]:
            state[i] = 0
            continue
        j = _jaccard(sa, sb) if mode == 0 or audit[i] else 0.0
        if audit[i]:
            exact[i] = j
        score = j if mode == 0 else _agreement(a_sig[ra[i]], b_sig[rb[i]], empty) if mode == 1 else 1.0
        accept = score >= threshold if mode != 2 else True
        if x == y:
            state[i] = 4 if accept else 3
        elif accept:
            state[i] = 2
            parent[max(x, y)] = min(x, y)
        else:
            state[i] = 1


@_compiled
def group_pairs(start, rank, max_docs, n):
    """The distinct pair keys `rank[i] * n + rank[j]` (i < j) of documents sharing a band key: groups
    rank[start[g]:start[g + 1]] (ranks ascending inside a group); a group of more than `max_docs`
    documents pairs only its first with the others. Each pair is put in an open-addressing hash set as it
    is made, so memory follows the distinct pairs, not the pairs of every band (a near duplicate repeats
    its pair in most bands). Unsorted."""
    cap = 1 << 16
    table = np.full(cap, -1, np.int64)
    count = 0
    for g in range(start.size - 1):
        lo, hi = start[g], start[g + 1]
        for i in range(lo, hi - 1):
            last = hi if hi - lo <= max_docs or i == lo else i + 1
            for j in range(i + 1, last):
                if rank[i] == rank[j]:
                    continue
                key = rank[i] * n + rank[j]
                slot = np.int64(_fmix64(_U64(key)) & _U64(cap - 1))
                while table[slot] != -1 and table[slot] != key:
                    slot = (slot + 1) & (cap - 1)
                if table[slot] == -1:
                    table[slot] = key
                    count += 1
                    if 2 * count > cap:  # keep the load under one half: grow and re-insert
                        cap *= 2
                        old, table = table, np.full(cap, -1, np.int64)
                        for x in old:
                            if x != -1:
                                s = np.int64(_fmix64(_U64(x)) & _U64(cap - 1))
                                while table[s] != -1:
                                    s = (s + 1) & (cap - 1)
                                table[s] = x
    out = np.empty(count, np.int64)
    k = 0
    for x in table:
        if x != -1:
            out[k] = x
            k += 1
    return out


@njit(inline="always")
def _slot(table, values, x):
    """The slot of x in an open-addressing table of indices into `values` (-1: empty): x's, or the empty
    slot where it would go."""
    mask = table.size - 1
    s = np.int64(_fmix64(_U64(x)) & _U64(mask))
    while table[s] != -1 and values[table[s]] != x:
        s = (s + 1) & mask
    return s


@_compiled
def distinct_add(table, values, count, x):
    """Adds the values x (>= 0) to a set of distinct values: `values[:count]`, indexed by the hash table
    `table` (-1: empty). Returns (table, values, count), both grown (doubled) as needed, so memory follows
    the distinct values, not how often each one comes."""
    for j in range(x.size):
        s = _slot(table, values, x[j])
        if table[s] != -1:
            continue
        if count == values.size:
            values = np.concatenate((values, np.empty(values.size, np.int64)))
        values[count] = x[j]
        table[s] = count
        count += 1
        if 2 * count > table.size:  # keep the load under one half: grow and re-insert
            table = np.full(table.size * 2, -1, np.int64)
            for i in range(count):
                table[_slot(table, values, values[i])] = i
    return table, values, count


@_compiled
def index_table(values):
    """A hash table of the positions of the distinct `values`, for `lookup`."""
    cap = 2
    while cap < 2 * values.size:
        cap *= 2
    table = np.full(cap, -1, np.int64)
    for i in range(values.size):
        table[_slot(table, values, values[i])] = i
    return table


@_compiled
def lookup(table, values, x):
    """The position in `values` of each of x (all present): one hash probe, not a binary search."""
    out = np.empty(x.size, np.int64)
    for j in range(x.size):
        out[j] = table[_slot(table, values, x[j])]
    return out


@_compiled
def unite(parent, a, b):
    """Joins the sets of a[i] and b[i] for every edge, in a union-find over node indices whose root is
    a set's smallest node (so the roots do not depend on the order of the edges); several calls over the
    parts of an edge list give the same sets as one call over all of it."""
    for i in range(a.size):
        x, y = _find(parent, a[i]), _find(parent, b[i])
        if x != y:
            parent[max(x, y)] = min(x, y)


@_compiled
def flatten(parent):
    """Every node's root: parent becomes the component of each node, named by its smallest node."""
    for x in range(parent.size):
        parent[x] = _find(parent, x)
    return parent


def component_roots(a, b, n):
    """The component of each of n nodes (0..n-1) under the edges (a[i], b[i]), named by its smallest
    node: a union-find (the smaller root becomes the root), then every node's root."""
    parent = np.arange(n, dtype=np.int64)
    unite(parent, np.asarray(a, np.int64), np.asarray(b, np.int64))
    return flatten(parent)
