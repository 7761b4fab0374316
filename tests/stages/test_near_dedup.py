"""near_dedup's pure phases against known answers: datasketch's own MinHash and LSH, exact Jaccard, the
Python tokenizer, and documents that classically break MinHash (empty, one token, symbols, huge)."""

from __future__ import annotations

import random
import re

import numpy as np
import pyarrow as pa
import pytest
from datasketch import LeanMinHash, MinHash, MinHashLSH
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.recipe import NearDedupConfig
from curate.stages import near_dedup as N

WORDS = ["def", "return", "self", "x", "y", "for", "in", "if", "else", "import", "numpy", "class", "foo", "bar"]


def random_docs(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    scripts = WORDS + ["日本語", "漢字", "हिन्दी", "пример", "ΣΊΣΥΦΟΣ", "naïve", "x_1", "42", "İstanbul"]
    seps = [" ", "(", ") ", ".", ":\n    ", ", ", " = ", "+", "\t"]
    return ["".join(rng.choice(scripts) + rng.choice(seps) for _ in range(rng.randint(0, 80))) for _ in range(n)]


def datasketch_minhash(text: str, num_perm: int = 256, seed: int = 1) -> MinHash:
    m = MinHash(num_perm=num_perm, seed=seed, hashfunc=N.shingle_hash32)
    m.update_batch([s.encode() for s in N.shingles(text, 5)])
    return m


def test_shingles_follow_the_stated_scheme():
    text = "Foo.bar(x_1,  y) + 2\n# Ünïcode 日本"
    assert N.shingles(text, 3) == {"foo bar x_1", "bar x_1 y", "x_1 y 2", "y 2 ünïcode", "2 ünïcode 日本"}
    assert N.shingles("Only two", 5) == {"only two"}  # fewer tokens than n: one shingle of all of them
    assert N.shingles("+++ --- ***", 5) == set() and N.shingles("", 5) == set()


def test_vectorised_tokens_equal_python_unicode_word_runs():
    """Arrow's split with the generated class gives exactly `re.findall(r"\\w+", text.lower())`, on text
    drawn from every Unicode plane (RE2's own \\w and tables differ from Python on thousands of points)."""
    rng = random.Random(1)
    points = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    texts = ["".join(chr(rng.choice(points)) if rng.random() < 0.6 else rng.choice(" .,_a") for _ in range(3000))
             for _ in range(40)]
    flat, counts = N.tokenize(texts)
    expected = [re.findall(r"\w+", t.lower()) for t in texts]
    assert counts.tolist() == [len(e) for e in expected]
    assert flat.to_pylist() == [tok for e in expected for tok in e]


def test_ascii_fast_path_equals_python_word_runs():
    """The compiled byte path hashes exactly the tokens of `re.findall(r"\\w+", text.lower())` on ASCII
    text, including empty documents and words that touch the document boundaries (which must not merge
    across them), and reads an Arrow array with a non-zero offset."""
    rng = random.Random(7)
    alphabet = [chr(c) for c in range(128)] + list("aZ_9") * 20
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300))) for _ in range(60)]
    texts += ["", "abc", "DEF", "", "x_1", "!", "Tail", "head", "a", "b", "c"]  # adjacent word-edged documents
    assert all(t.isascii() for t in texts)
    expected = [re.findall(r"\w+", t.lower()) for t in texts]
    for arr in (pa.array(texts, pa.large_string()), pa.array(["skip me"] + texts, pa.large_string()).slice(1)):
        tok, counts = N.token_hashes(arr)
        assert counts.tolist() == [len(e) for e in expected]
        assert tok.tolist() == [N.token_hash64(t.encode()) for e in expected for t in e]


def test_token_hashes_interleave_ascii_and_unicode_documents():
    docs = random_docs(80, seed=8) + ["plain ascii only", "", "ascii", "naïve café"]
    assert 0 < sum(d.isascii() for d in docs) < len(docs)
    tok, counts = N.token_hashes(pa.array(docs))
    expected = [re.findall(r"\w+", d.lower()) for d in docs]
    assert counts.tolist() == [len(e) for e in expected]
    assert tok.tolist() == [N.token_hash64(t.encode()) for e in expected for t in e]


def test_raw_shingles_have_the_same_sets_and_signatures():
    """The hot path keeps repeated n-grams (one per position); its per-document sets and its MinHash
    signatures equal the unique form's."""
    docs = random_docs(50, seed=9) + ["a b c d e a b c d e a b c d e", "one two"]
    doc_u, h_u = N.shingle_hashes(docs, 5)
    doc_r, h_r = N.shingle_hashes(pa.array(docs), 5, unique=False)
    for i, text in enumerate(docs):
        n_tokens = len(re.findall(r"\w+", text.lower()))
        assert (doc_r == i).sum() == (n_tokens - 4 if n_tokens >= 5 else min(n_tokens, 1))
        assert set(h_r[doc_r == i].tolist()) == set(h_u[doc_u == i].tolist())
    assert np.array_equal(N.signatures(doc_r, h_r, len(docs), 64, 1), N.signatures(doc_u, h_u, len(docs), 64, 1))


def test_shingle_hashes_equal_the_scalar_reference():
    docs = random_docs(60)
    doc, h = N.shingle_hashes(docs, 5)
    for i, text in enumerate(docs):
        assert sorted(h[doc == i].tolist()) == sorted(N.shingle_hash64(s.encode()) for s in N.shingles(text, 5))


def test_signatures_equal_datasketch_minhash():
    """The values datasketch computes the slow way, per shingle, with the same hash function."""
    docs = random_docs(80, seed=2)
    doc, h = N.shingle_hashes(docs, 5)
    sig = N.signatures(doc, h, len(docs), 256, 1)
    for i, text in enumerate(docs):
        m = datasketch_minhash(text)
        assert np.array_equal(sig[i], m.hashvalues)
        assert LeanMinHash(seed=1, hashvalues=sig[i], scheme="affine32") == LeanMinHash(m)
    a, b = N.permutations(256, 1)
    assert np.array_equal(np.array([a, b]), MinHash(num_perm=256, seed=1).permutations)
    order = np.random.default_rng(0).permutation(doc.size)  # any order of (doc, shingle), with repeats
    assert np.array_equal(N.signatures(np.tile(doc[order], 2), np.tile(h[order], 2), len(docs), 256, 1), sig)


def test_candidate_pairs_equal_datasketch_lsh_on_our_signatures():
    """MinHashLSH with the same (b, r), indexing LeanMinHashes of our values, finds the same pairs."""
    rng = random.Random(3)
    base = [" ".join(rng.choice(WORDS) for _ in range(60)) for _ in range(20)]
    docs = base + [b.replace("foo", "bar", 1) for b in base] + [b[: len(b) // 2] for b in base]
    doc, h = N.shingle_hashes(docs, 5)
    sig = N.signatures(doc, h, len(docs), 128, 1)
    bands, rows = 16, 8
    keys = N.band_keys(sig, bands, rows)
    u, v = N.candidate_pairs(keys.ravel(), np.repeat(np.arange(len(docs)), bands), max_bucket_docs=1000)
    lsh = MinHashLSH(num_perm=128, params=(bands, rows))
    for i in range(len(docs)):
        lsh.insert(i, LeanMinHash(seed=1, hashvalues=sig[i], scheme="affine32"))
    expected = {(min(i, j), max(i, j)) for i in range(len(docs))
                for j in lsh.query(LeanMinHash(seed=1, hashvalues=sig[i], scheme="affine32")) if i != j}
    assert set(zip(u.tolist(), v.tolist())) == expected and expected


def test_exact_jaccard_of_sorted_sets_by_merge():
    """Known answers of the merge Jaccard that verification uses (two empty sets are not duplicates), on
    lists given with repeats and out of order, as `sorted_sets` turns them into sets."""
    from curate.stages import near_dedup_kernels as K

    def jaccard(x, y):
        (a, _), (b, _) = N.sorted_sets(np.array(x, np.uint64), np.array([len(x)])), N.sorted_sets(
            np.array(y, np.uint64), np.array([len(y)]))
        inter = K.intersection_size(a, b)
        return inter / (a.size + b.size - inter) if a.size + b.size else 0.0

    sets = [[1, 2, 3, 4], [3, 4, 5], [], [7], [1, 2, 3, 4]]
    pairs = [(0, 1), (0, 4), (2, 2), (3, 1), (0, 3)]
    assert [jaccard(sets[i], sets[j]) for i, j in pairs] == [2 / 5, 1.0, 0.0, 0.0, 0.0]
    assert jaccard([3, 1, 3, 2, 1], [2, 5, 2, 3]) == 2 / 4 and jaccard([4, 4], [4]) == 1.0


def test_minhash_estimate_within_tolerance_of_exact_jaccard():
    """With 256 permutations the standard error is sqrt(J(1-J)/256) <= 0.031; allow 4 sigma."""
    rng = random.Random(4)
    a_tokens = [f"t{rng.randrange(10**6)}" for _ in range(2000)]
    b_tokens = a_tokens[:1200] + [f"u{rng.randrange(10**6)}" for _ in range(800)]
    docs = [" ".join(a_tokens), " ".join(b_tokens)]
    doc, h = N.shingle_hashes(docs, 5)
    sig = N.signatures(doc, h, 2, 256, 1)
    a, b = set(h[doc == 0].tolist()), set(h[doc == 1].tolist())
    exact = len(a & b) / len(a | b)
    assert abs(N.signature_agreement(sig[:1], sig[1:])[0] - exact) < 4 * 0.032


def test_bad_inputs_are_never_merged():
    """Empty, one-token, pure-symbol and non-Latin documents: only real matches share a band key."""
    docs = ["", "+++ --- ***", "{}[]();", "x", "y", "日本語のテキスト", "हिन्दी", "", "!!!"]
    doc, h = N.shingle_hashes(docs, 5)
    sig = N.signatures(doc, h, len(docs), 64, 1)
    has = np.bincount(doc, minlength=len(docs)) > 0
    assert has.tolist() == [False, False, False, True, True, True, True, False, False]
    keys = N.band_keys(sig[has], 8, 8)
    u, _ = N.candidate_pairs(keys.ravel(), np.repeat(np.flatnonzero(has), 8), 100)
    assert u.size == 0
    assert (sig[~has] == N.MAX_HASH32).all()  # datasketch's empty value, but never banded


def test_giant_document_is_signed_in_bounded_chunks():
    rng = np.random.default_rng(5)
    words = np.array([f"w{i}" for i in range(50_000)])
    text = " ".join(words[rng.integers(0, words.size, 1_700_000)])  # ~10 MB
    assert len(text) > 10_000_000
    doc, h = N.shingle_hashes([text, text[: len(text) // 2]], 5)
    sig = N.signatures(doc, h, 2, 256, 1)
    a, b = set(h[doc == 0].tolist()), set(h[doc == 1].tolist())
    exact = len(a & b) / len(a | b)
    assert 0.45 < exact < 0.55 and abs(N.signature_agreement(sig[:1], sig[1:])[0] - exact) < 0.13


def test_bands_default_to_datasketch_optimum_below_threshold():
    b, r, cand = N.resolve_bands(NearDedupConfig())
    assert cand == 0.5 and (b, r) == (42, 6)  # datasketch's _optimal_param(0.5, 256, 0.5, 0.5)
    curve = N.s_curve(b, r)
    assert curve["0.70"] > 0.99 and curve["0.90"] == 1.0
    assert N.resolve_bands(NearDedupConfig(bands=20, rows=10))[:2] == (20, 10)
    with pytest.raises(ValueError, match="near_dedup.bands"):
        NearDedupConfig(bands=30, rows=10)


def test_survivor_order_stars_forks_date_id():
    members = pa.table({"comp": [1, 1, 1, 1, 2, 2], "doc": [10, 11, 12, 13, 20, 21],
                        "id": ["d", "c", "b", "a", "z", "y"], "stars": [5, 5, 5, 1, 0, 0],
                        "forks": [2, 2, 1, 9, 0, 0], "date": ["2020", "2021", "2022", "2023", "", ""]})
    out = {r["doc"]: (r["survivor"], r["is_survivor"]) for r in N.choose_survivors(members).to_pylist()}
    assert out == {11: ("c", True), 10: ("c", False), 12: ("c", False), 13: ("c", False),
                   21: ("y", True), 20: ("y", False)}


def test_signatures_refuse_a_document_index_outside_the_batch_and_accept_an_empty_one():
    """The compiled loop does not check bounds, so the wrapper does; an empty batch gives empty results."""
    with pytest.raises(ValueError, match="outside 0..1"):
        N.signatures(np.array([0, 2]), np.array([1, 2], np.uint64), 2, 8, 1)
    doc, h = N.shingle_hashes(pa.array([], pa.large_string()), 5, unique=False)
    assert doc.size == h.size == 0 and N.signatures(doc, h, 0, 8, 1).shape == (0, 8)


# documents built from the characters that decide token boundaries: word characters either side of the ASCII
# range, separators, and Unicode letters and digits that only the regex path knows
_CHARS = st.sampled_from(list("aZ_9 \t\n.,(+") + ["é", "İ", "ß", "日", "٣", "\u00a0"])


@given(st.lists(st.text(_CHARS, max_size=40), max_size=12), st.integers(1, 6))
@settings(max_examples=150, deadline=None)
def test_compiled_shingle_hashes_equal_the_reference_on_any_documents(docs, ngram):
    """For any batch, ASCII or not, empty or not, and any n: each document's shingle hashes are exactly
    the scalar hashes of `shingles(text, n)`, and its signature is datasketch's on those shingles."""
    doc, h = N.shingle_hashes(pa.array(docs, pa.large_string()), ngram, unique=False)
    sig = N.signatures(doc, h, len(docs), 16, 3)
    for i, text in enumerate(docs):
        expected = {N.shingle_hash64(s.encode()) for s in N.shingles(text, ngram)}
        assert set(h[doc == i].tolist()) == expected
        m = MinHash(num_perm=16, seed=3, hashfunc=N.shingle_hash32)
        m.update_batch([s.encode() for s in N.shingles(text, ngram)])
        assert np.array_equal(sig[i], m.hashvalues)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 40)), max_size=300), st.integers(1, 8))
def test_candidate_pairs_equal_a_python_reference(rows, max_docs):
    """Property: the distinct (u < v) pairs of documents under one key, a key of more than max_docs
    documents pairing only its smallest document with the others; sorted by (u, v)."""
    rows = sorted(set(rows))
    groups: dict = {}
    for k, d in rows:
        groups.setdefault(k, []).append(d << 33)  # large node ids, as parts make them
    want = set()
    for docs in groups.values():
        docs = sorted(docs)
        for i, a in enumerate(docs):
            for b in docs[i + 1 :] if len(docs) <= max_docs or i == 0 else []:
                want.add((a, b))
    key = np.array([k for k, _ in rows], np.uint64)
    doc = np.array([d << 33 for _, d in rows], np.int64)
    u, v = N.candidate_pairs(key, doc, max_docs)
    assert list(zip(u.tolist(), v.tolist())) == sorted(want)
