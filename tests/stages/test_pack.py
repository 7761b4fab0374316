"""pack's pure phases: mixture arithmetic with known answers, per-shard ratios, lossless packing, seeds."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from curate.recipe import PackConfig
from curate.stages import pack as P

EOS = 0


def _groups(tokens, side, weight=None, max_epochs=None):
    n = len(tokens)
    return (np.array(tokens, float), np.array(side), np.array(weight or [1.0] * n),
            np.array(max_epochs or [1.0] * n))


def test_mixture_bounded_by_text_takes_the_largest_exact_output():
    tokens, side, w, m = _groups([1000, 50], [0, 1])
    mix = P.plan_mixture(tokens, side, w, m, ["code", "prose"], {"code": 10, "text": 1}, None, False)
    assert mix.bound == "source prose"
    assert mix.side_tokens == pytest.approx({"code": 500.0, "text": 50.0})
    assert mix.epochs == pytest.approx([0.5, 1.0])


def test_mixture_upsamples_text_up_to_max_epochs_and_budget_bounds():
    tokens, side, w, m = _groups([1000, 50], [0, 1], max_epochs=[1, 1.5])
    mix = P.plan_mixture(tokens, side, w, m, ["code", "prose"], {"code": 10, "text": 1}, None, False)
    assert mix.bound == "source prose" and mix.epochs == pytest.approx([0.75, 1.5])
    tokens, side, w, m = _groups([1000, 50], [0, 1], max_epochs=[1, 4])
    mix = P.plan_mixture(tokens, side, w, m, ["code", "prose"], {"code": 10, "text": 1}, None, False)
    assert mix.bound == "source code" and mix.epochs == pytest.approx([1.0, 2.0])
    mix = P.plan_mixture(tokens, side, w, m, ["code", "prose"], {"code": 10, "text": 1}, 110, False)
    assert mix.bound == "total_tokens" and mix.side_tokens == pytest.approx({"code": 100.0, "text": 10.0})
    drift = P.plan_mixture(tokens, side, w, m, ["code", "prose"], {"code": 10, "text": 1}, None, True)
    assert drift.side_tokens == pytest.approx({"code": 1000.0, "text": 200.0})


def test_weights_set_relative_epochs_within_a_side():
    tokens, side, w, m = _groups([600, 400, 100], [0, 0, 1], weight=[2, 1, 1], max_epochs=[5, 5, 1])
    mix = P.plan_mixture(tokens, side, w, m, ["py", "c", "prose"], {"code": 3, "text": 1}, None, False)
    assert mix.bound == "source prose"
    assert mix.epochs[0] == pytest.approx(2 * mix.epochs[1])
    assert mix.side_tokens["code"] == pytest.approx(300.0)
    assert 600 * mix.epochs[0] + 400 * mix.epochs[1] == pytest.approx(300.0)


def test_an_empty_side_is_refused():
    tokens, side, w, m = _groups([1000], [0])
    with pytest.raises(P.PlanError, match="no text document"):
        P.plan_mixture(tokens, side, w, m, ["code"], {"code": 10, "text": 1}, None, False)


def _docs(seed=0, n_code=2000, n_text=600, langs=("py", "c")):
    rng = np.random.default_rng(seed)
    n_tokens = np.concatenate([rng.integers(20, 400, n_code), rng.integers(10, 120, n_text)])
    code_group = rng.integers(0, len(langs), n_code)
    group = np.concatenate([code_group, np.full(n_text, len(langs))])
    return n_tokens, group


def _plan(n_tokens, group, cfg, seed=0, weights=None, max_epochs=None, drift=False):
    k = group.max() + 1
    groups = {"side": np.array([0] * (k - 1) + [1]), "weight": np.array(weights or [1.0] * k),
              "max_epochs": np.array(max_epochs or [1.0] * (k - 1) + [3.0]),
              "tokens": np.bincount(group, weights=n_tokens, minlength=k)}
    priority = P.splitmix64(np.arange(len(n_tokens)))
    return P.plan_pack(n_tokens, group, groups, [f"g{i}" for i in range(k)], priority, cfg, seed, drift), groups


@pytest.mark.parametrize("mixture,weights", [
    ({"code": 10, "text": 1}, None),
    ({"code": 1, "text": 1}, None),
    ({"code": 3, "text": 1}, [3.0, 1.0, 1.0]),  # python weighted 3x over C
])
def test_every_shard_meets_the_ratio(mixture, weights):
    n_tokens, group = _docs()
    cfg = PackConfig(mixture=mixture, seq_len=64, shard_tokens=40_000)
    plan, groups = _plan(n_tokens, group, cfg, weights=weights)
    target = mixture["code"] / mixture["text"]
    assert plan.n_shards >= 2
    errors = P.ratio_errors(plan.counts, target)
    assert errors.max() <= 0.01, errors
    code, text = plan.counts.sum(0)
    assert abs(code / text / target - 1) <= 0.002
    if weights:
        tok = np.bincount(group, weights=n_tokens * plan.copies)
        epochs = tok / groups["tokens"]
        assert epochs[0] / epochs[1] == pytest.approx(3.0, rel=0.05)


def _pack_all(n_tokens, plan, seq_len, docs_ids, n_code=2000):
    """The workers' path without files: gather each shard's pieces, build its sequences (documents from
    `n_code` on are text)."""
    tables = []
    p = plan.pieces
    for k in range(plan.n_shards):
        sel = np.nonzero(p["shard"] == k)[0]
        doc = plan.item_doc[p["item"][sel]]
        tokens = np.concatenate([docs_ids[d][o:o + n] for d, o, n in zip(doc, p["offset"][sel], p["length"][sel])])
        tables.append(P.build_sequences(tokens.astype(np.uint16), p["length"][sel], pa.array([f"d{d}" for d in doc]),
                                        p["offset"][sel] == 0, (doc >= n_code).astype(np.int8), seq_len, EOS))
    return tables


def test_pack_then_unpack_returns_the_planned_multiset():
    """Property: the concatenated sequences, split on EOS, are exactly the selected documents with their
    planned copies; pieces trace every token to its document."""
    n_tokens, group = _docs(n_code=300, n_text=80)
    n_tokens[5] = 64 * 12 + 7  # a document longer than many sequences
    rng = np.random.default_rng(1)
    docs_ids = [np.append(rng.integers(1, 5000, n - 1), EOS) for n in n_tokens]
    cfg = PackConfig(seq_len=64, shard_tokens=4000, mixture={"code": 4, "text": 1})
    plan, _ = _plan(n_tokens, group, cfg)
    tables = _pack_all(n_tokens, plan, 64, docs_ids)
    stream, pieces = [], Counter()
    for t in tables:
        ids = np.array(t["input_ids"].to_pylist())
        for row, pad in zip(ids, t["n_pad_tokens"].to_pylist()):
            stream.extend(row[: 64 - pad])
        for lens, pad in zip(t["doc_lengths"].to_pylist(), t["n_pad_tokens"].to_pylist()):
            assert sum(lens) + pad == 64
        for dids, starts in zip(t["doc_ids"].to_pylist(), t["doc_starts"].to_pylist()):
            pieces.update(d for d, s in zip(dids, starts) if s)
    got = Counter()
    cur = []
    for tok in stream:
        cur.append(tok)
        if tok == EOS:
            got[tuple(cur)] += 1
            cur = []
    assert cur == []
    want = Counter()
    for d, c in enumerate(plan.copies):
        if c:
            want[tuple(docs_ids[d])] += int(c)
    assert got == want
    assert pieces == Counter({f"d{d}": int(c) for d, c in enumerate(plan.copies) if c})
    assert plan.copies[5] >= 1 and (plan.copies > 1).any() and (plan.copies == 0).any()


def test_last_partial_sequence_drop_is_counted():
    n_tokens, group = _docs(n_code=300, n_text=80)
    pad = _plan(n_tokens, group, PackConfig(seq_len=64, shard_tokens=10**9, mixture={"code": 4, "text": 1}))[0]
    drop = _plan(n_tokens, group, PackConfig(seq_len=64, shard_tokens=10**9, mixture={"code": 4, "text": 1},
                                             last="drop"))[0]
    total = pad.tokens_planned
    assert pad.bounds[-1] == -(-total // 64) * 64 and drop.bounds[-1] == total // 64 * 64
    assert drop.pieces["length"].sum() == total - total % 64


def test_seed_changes_order_not_counts():
    n_tokens, group = _docs()
    cfg = PackConfig(seq_len=64, shard_tokens=40_000)
    a, _ = _plan(n_tokens, group, cfg, seed=0)
    b, _ = _plan(n_tokens, group, cfg, seed=0)
    c, _ = _plan(n_tokens, group, cfg, seed=1)
    for key in ("item", "offset", "length", "shard", "pos"):
        assert np.array_equal(a.pieces[key], b.pieces[key])
    assert np.array_equal(a.copies, c.copies) and a.tokens_planned == c.tokens_planned
    assert not np.array_equal(a.item_doc[a.pieces["item"]], c.item_doc[c.pieces["item"]])


def _unpack(tables, seq_len):
    """(EOS-split documents as a multiset, starts per doc id, code and text tokens counted from the pieces)."""
    stream, starts, code, text = [], Counter(), 0, 0
    for t in tables:
        for row, pad, lens, dids, begins, nc, nt in zip(
                t["input_ids"].to_pylist(), t["n_pad_tokens"].to_pylist(), t["doc_lengths"].to_pylist(),
                t["doc_ids"].to_pylist(), t["doc_starts"].to_pylist(), t["n_code_tokens"].to_pylist(),
                t["n_text_tokens"].to_pylist()):
            assert len(row) == seq_len and sum(lens) + pad == seq_len and nc + nt + pad == seq_len
            stream.extend(row[: seq_len - pad])
            starts.update(d for d, s in zip(dids, begins) if s)
            code, text = code + nc, text + nt
    docs, cur = Counter(), []
    for tok in stream:
        cur.append(tok)
        if tok == EOS:
            docs[tuple(cur)], cur = docs[tuple(cur)] + 1, []
    assert cur == []  # no document is cut off at the end
    return docs, starts, code, text


@settings(max_examples=80, deadline=None)
@given(n_code=st.integers(30, 150), n_text=st.integers(10, 40), seq_len=st.sampled_from([8, 16, 64]),
       code_w=st.integers(1, 12), text_w=st.integers(1, 3), shard_tokens=st.integers(200, 5000),
       last=st.sampled_from(["pad", "drop"]), seed=st.integers(0, 2**16))
def test_packing_is_lossless_for_any_mixture(n_code, n_text, seq_len, code_w, text_w, shard_tokens, last, seed):
    """Property: whatever the corpus, mixture, sequence and shard sizes: every selected document comes back
    whole with its planned copies (pad), or all but the dropped tail (drop); every sequence is full; the
    per-sequence code/text counts add up to the plan; every shard is within the ratio tolerance."""
    rng = np.random.default_rng(seed)
    n_tokens = np.concatenate([rng.integers(1, 300, n_code), rng.integers(1, 80, n_text)])
    group = np.concatenate([np.zeros(n_code, int), np.ones(n_text, int)])
    docs_ids = [np.append(rng.integers(1, 5000, n - 1), EOS).astype(np.uint16) for n in n_tokens]
    cfg = PackConfig(seq_len=seq_len, shard_tokens=shard_tokens, mixture={"code": code_w, "text": text_w}, last=last)
    try:
        plan, _ = _plan(n_tokens, group, cfg, seed=seed % 7, max_epochs=[1.0, 3.0])
    except P.PlanError as err:  # few, long documents cannot make the ratio: refused, with the reason
        assert "documents are too long for this little data" in str(err)
        event("refused: too little data")
        return
    tables = _pack_all(n_tokens, plan, seq_len, docs_ids, n_code)
    planned = Counter()
    for d, c in enumerate(plan.copies):
        if c:
            planned[tuple(docs_ids[d].tolist())] += int(c)
    if last == "pad":
        got, starts, code, text = _unpack(tables, seq_len)
        assert got == planned
        assert starts == Counter({f"d{d}": int(c) for d, c in enumerate(plan.copies) if c})
        code_planned = int((n_tokens * plan.copies)[:n_code].sum())
        assert (code, text) == (code_planned, plan.tokens_planned - code_planned)
    else:  # only whole sequences: the tokens kept are the planned ones minus less than one sequence
        kept = sum(t.num_rows for t in tables) * seq_len
        assert kept == plan.tokens_planned // seq_len * seq_len
    assert (P.ratio_errors(plan.counts, code_w / text_w) <= cfg.ratio_tolerance).all() or plan.n_shards == 1
