"""Stage `pack`: an exact code:text token mixture, packed into fixed-length sequences.

Input columns: `id`, `kind`, `source`, `lang`, `n_tokens`, `ids` (the tokenize stage's output).
Output (not parts: Arrow IPC stream shards, see curate/workers/pack.py), one row per sequence:
`input_ids` (fixed_size_list<uint16|uint32>[seq_len]), `doc_ids`, `doc_lengths`, `doc_starts` (one entry per
piece of a document in the sequence, in order; EOS belongs to the piece that ends its document),
`n_code_tokens`, `n_text_tokens`, `n_pad_tokens`.
Reason codes: `pack.not_selected` (the plan took none of the document's tokens: its source was subsampled
to meet the ratio or the budget), `pack.tail_dropped` (its planned copies fell in the dropped last partial
sequence, `last: drop`).

Phases, each a pure function over numpy arrays (one entry per document or per planned copy, ~40 bytes):
    plan_mixture      tokens per side from the mixture, per-group epochs from weights and max_epochs; the
                      largest output that meets the ratio, and which source bounds it
    select_copies     copies per document: floor(epochs) for all, plus the fractional epoch taken from a
                      stable per-document priority (so the seed changes the order, never the selection)
    assign_shards     longest-first greedy balancing (LPT, Graham 1969) of each side's copies over shards
    order_stream      within a shard: each side in seeded random order, merged by deficit (a copy goes
                      where its side's consumed fraction says, so every prefix is close to the ratio)
    cut_pieces        the stream cut at shard boundaries, which are rounded to sequence boundaries
    build_sequences   a shard's tokens cut into sequences, with the pieces of every sequence
Every shard's ratio error is bounded by half a sequence at each end plus LPT's imbalance; the plan checks
each shard and lowers the shard count until all are within `ratio_tolerance`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from curate.stagespec import Stage

STAGE = Stage(key="pack", order=90, kind="global",
              summary="token-exact code:text mixture, seeded shuffle, fixed-length sequences, Arrow IPC shards",
              run="curate.packing:run_pack", skip="curate.workers.tokenize:skip_reason")

SIDES = ("code", "text")


class PlanError(ValueError):
    """The mixture cannot be planned (an empty side, a shard over tolerance at any shard count)."""


@dataclass
class Mixture:
    side_tokens: dict[str, float]  # planned tokens per side
    epochs: np.ndarray  # per group
    bound: str  # what limits the output: "source <name>", "total_tokens" or "allow_ratio_drift"
    available: dict[str, int] = field(default_factory=dict)  # tokens per side at one epoch


def plan_mixture(group_tokens: np.ndarray, group_side: np.ndarray, group_weight: np.ndarray,
                 group_max_epochs: np.ndarray, group_source: list[str], mixture: dict[str, float],
                 total_tokens: int | None, allow_drift: bool) -> Mixture:
    """Epochs per group: within a side, epochs are proportional to the group's weight (weight 1 everywhere =
    natural proportions); the side's scale is the largest that keeps every group within its max_epochs."""
    ratio = np.array([mixture.get(s, 0.0) for s in SIDES], dtype=float)
    frac = ratio / ratio.sum()
    weighted = np.where(group_weight > 0, group_tokens * group_weight, 0.0)
    side_max, side_bound = np.zeros(2), ["", ""]
    for s in range(2):
        in_side = (group_side == s) & (weighted > 0)
        if ratio[s] > 0 and not in_side.any():
            raise PlanError(f"pack.mixture: asks for {SIDES[s]} tokens but no {SIDES[s]} document reaches pack")
        if in_side.any():
            limits = np.where(in_side, group_max_epochs / np.where(in_side, group_weight, 1), np.inf)
            g = int(np.argmin(limits))
            side_max[s], side_bound[s] = limits[g] * weighted[in_side].sum(), f"source {group_source[g]}"
    if allow_drift:
        side = np.where(ratio > 0, side_max, 0.0)
        bound = "allow_ratio_drift"
        if total_tokens is not None and side.sum() > total_tokens:
            side, bound = side * total_tokens / side.sum(), "total_tokens"
    else:
        need = np.where(frac > 0, side_max / np.where(frac > 0, frac, 1), np.inf)
        s = int(np.argmin(need))
        total, bound = need[s], side_bound[s]
        if total_tokens is not None and total_tokens < total:
            total, bound = float(total_tokens), "total_tokens"
        side = frac * total
    scale = np.array([side[s] / weighted[group_side == s].sum() if side[s] > 0 else 0.0 for s in range(2)])
    epochs = np.where(group_weight > 0, scale[group_side] * group_weight, 0.0)
    available = {SIDES[s]: int(group_tokens[group_side == s].sum()) for s in range(2)}
    return Mixture({SIDES[s]: float(side[s]) for s in range(2)}, epochs, bound, available)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """A stable 64-bit mix (Steele et al. 2014) of integer keys: a seed-independent priority."""
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def select_copies(n_tokens: np.ndarray, group: np.ndarray, epochs: np.ndarray, priority: np.ndarray) -> np.ndarray:
    """Copies of each document: floor(epochs of its group), plus one for the documents whose priority
    prefix (within the group) is nearest to the fractional epoch's tokens."""
    whole = np.floor(epochs + 1e-9)
    part = epochs - whole
    copies = whole[group].astype(np.int64)
    order = np.lexsort((priority, group))
    g, n = group[order], n_tokens[order].astype(np.float64)
    cum = np.cumsum(n)
    starts = np.searchsorted(g, np.arange(len(epochs)))
    before = cum - n - np.concatenate([[0.0], cum])[starts[g]]
    group_total = np.bincount(group, weights=n_tokens, minlength=len(epochs))
    extra = (before + n / 2) < part[g] * group_total[g]  # the midpoint rule rounds to the nearest document
    copies[order] += extra
    return copies


def retarget(n_tokens, group, side_of_group, epochs, priority, target: dict[str, float], fixed: str) -> np.ndarray:
    """Copies after matching the free side to the fixed side's actual tokens, so the ratio is as exact as
    whole documents allow (the fixed side is the one a source or the budget bounded)."""
    copies = select_copies(n_tokens, group, epochs, priority)
    side = side_of_group[group]
    fixed_s = SIDES.index(fixed)
    actual = float((copies * n_tokens)[side == fixed_s].sum())
    free = 1 - fixed_s
    if target[fixed] <= 0 or target[SIDES[free]] <= 0:
        return copies
    want = actual * target[SIDES[free]] / target[fixed]
    scaled = np.where(side_of_group == free, epochs * want / target[SIDES[free]], epochs)
    mine = side == free
    copies[mine] = select_copies(n_tokens, group, scaled, priority)[mine]
    return _close_gap(copies, n_tokens, mine, np.floor(scaled + 1e-9)[group], want)


def _close_gap(copies, n_tokens, mine, whole, want: float, rounds: int = 16) -> np.ndarray:
    """Adds or removes single fractional-epoch copies on the free side while that brings its tokens
    closer to `want` (per-group rounding leaves up to half a document per group)."""
    for _ in range(rounds):
        gap = want - float((copies * n_tokens)[mine].sum())
        can = mine & ((copies == whole) if gap > 0 else (copies > whole))
        if not can.any():
            break
        cost = np.where(can, np.abs(abs(gap) - n_tokens), np.inf)
        best = int(np.argmin(cost))
        if cost[best] >= abs(gap):
            break
        copies[best] += 1 if gap > 0 else -1
    return copies


def assign_shards(lengths: np.ndarray, side: np.ndarray, n_shards: int, seed: int) -> np.ndarray:
    """Shard of every copy: per side, longest first, each to the currently least loaded shard (LPT, whose
    imbalance is at most one copy and in practice the smallest copies), so each shard gets ~1/n of each side.
    One heap operation per copy: ~1 s per million copies."""
    import heapq

    shard = np.zeros(len(lengths), dtype=np.int32)
    if n_shards == 1:
        return shard
    tie = np.random.default_rng([seed, 1]).random(len(lengths))
    for s in range(2):
        idx = np.nonzero(side == s)[0]
        idx = idx[np.lexsort((tie[idx], -lengths[idx]))]
        heap = [(0, k) for k in range(n_shards)]
        out = np.empty(len(idx), dtype=np.int32)
        for j, n in enumerate(lengths[idx].tolist()):
            load, k = heap[0]
            out[j] = k
            heapq.heapreplace(heap, (load + n, k))
        shard[idx] = out
    return shard


def order_stream(lengths: np.ndarray, side: np.ndarray, shard: np.ndarray, seed: int) -> np.ndarray:
    """Stream order of the copies: by shard; within a shard, each side shuffled (seeded) and the two
    merged by the midpoint of each copy in its side's token count (deficit interleaving)."""
    rnd = np.random.default_rng([seed, 2]).random(len(lengths))
    order = np.lexsort((rnd, side, shard))  # by shard, side, random
    key = np.zeros(len(lengths))
    ln = lengths[order].astype(np.float64)
    grp = shard[order].astype(np.int64) * 2 + side[order]
    cum = np.cumsum(ln)
    first = np.searchsorted(grp, grp, side="left")
    before = cum - ln - np.concatenate([[0.0], cum])[first]
    total = np.bincount(grp, weights=ln)[grp]
    key[order] = (before + ln / 2) / np.where(total > 0, total, 1)
    return np.lexsort((side, key, shard))


def shard_bounds(doc_ends_by_shard: np.ndarray, total: int, seq_len: int, last: str) -> np.ndarray:
    """Token offsets where shards start (sequence-aligned) plus the end of the output."""
    end = -(-total // seq_len) * seq_len if last == "pad" else total // seq_len * seq_len
    inner = np.round(doc_ends_by_shard[:-1] / seq_len).astype(np.int64) * seq_len
    return np.concatenate([[0], np.clip(inner, 0, end), [end]]).astype(np.int64)


def cut_pieces(starts: np.ndarray, lengths: np.ndarray, bounds: np.ndarray) -> dict[str, np.ndarray]:
    """The stream (copies at `starts` with `lengths`) cut at the shard bounds; what lies past the last bound
    (the dropped tail) is left out. Returns per piece: copy index, offset in the copy, length, shard, pos."""
    end = int(bounds[-1])
    points = np.unique(np.concatenate([starts, bounds[1:-1]]))
    points = points[points < end]
    item = np.searchsorted(starts, points, side="right") - 1
    next_points = np.concatenate([points[1:], [end]])
    stop = np.minimum(starts[item] + lengths[item], next_points)
    keep = stop > points
    points, item, stop = points[keep], item[keep], stop[keep]
    shard = np.searchsorted(bounds, points, side="right") - 1
    return {"item": item, "offset": points - starts[item], "length": stop - points, "shard": shard, "pos": points}


def shard_counts(pieces: dict[str, np.ndarray], item_side: np.ndarray, n_shards: int) -> np.ndarray:
    """Tokens per shard and side, shape (n_shards, 2)."""
    side = item_side[pieces["item"]]
    out = np.zeros((n_shards, 2), dtype=np.int64)
    np.add.at(out, (pieces["shard"], side), pieces["length"])
    return out


def ratio_errors(counts: np.ndarray, target: float | None) -> np.ndarray:
    """Relative error of each row's code/text ratio against `target` (None: one side only, no error)."""
    if target is None:
        return np.zeros(len(counts))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = counts[:, 0] / counts[:, 1]
    return np.where(np.isfinite(r), np.abs(r / target - 1), np.inf)


@dataclass
class Plan:
    mixture: Mixture
    copies: np.ndarray  # per document
    item_doc: np.ndarray  # per copy (in document order): its document
    pieces: dict[str, np.ndarray]  # per piece, in stream order: item, offset, length, shard, pos
    bounds: np.ndarray  # token offset of each shard's start, then the end of the output
    counts: np.ndarray  # (shards, 2): code and text tokens per shard
    target_ratio: float | None  # code/text the shards are checked against
    shards_wanted: int
    tokens_planned: int  # before the last partial sequence is padded or dropped

    @property
    def n_shards(self) -> int:
        return len(self.bounds) - 1


def plan_pack(n_tokens: np.ndarray, group: np.ndarray, groups: dict[str, np.ndarray], group_source: list[str],
              priority: np.ndarray, cfg, seed: int, allow_drift: bool) -> Plan:
    """The whole plan from per-document token counts and groups (`groups`: side, weight, max_epochs and
    tokens per group); `cfg` is the recipe's PackConfig."""
    mix = plan_mixture(groups["tokens"], groups["side"], groups["weight"], groups["max_epochs"], group_source,
                       cfg.mixture, cfg.total_tokens, allow_drift)
    both = all(cfg.mixture.get(s, 0) > 0 for s in SIDES)
    if both and not allow_drift:
        # the side a source bounded cannot grow, so the other side is matched to it; under a budget, text is
        # matched to code (the larger side, whose document granularity matters least)
        bounded = mix.bound.removeprefix("source ")
        fixed = groups["side"][group_source.index(bounded)] if mix.bound.startswith("source ") else 0
        copies = retarget(n_tokens, group, groups["side"], mix.epochs, priority, mix.side_tokens, SIDES[int(fixed)])
    else:
        copies = select_copies(n_tokens, group, mix.epochs, priority)
    item_doc = np.repeat(np.arange(len(n_tokens)), copies)
    lengths = n_tokens[item_doc].astype(np.int64)
    side = groups["side"][group[item_doc]]
    totals = np.bincount(side, weights=lengths, minlength=2)
    target = None
    if both:
        target = totals[0] / totals[1] if allow_drift else cfg.mixture["code"] / cfg.mixture["text"]
        overall = ratio_errors(totals[None, :], target)[0]
        if overall > cfg.ratio_tolerance:
            raise PlanError(f"pack: the selected documents give code:text {totals[0]:.0f}:{totals[1]:.0f}, "
                            f"{overall:.2%} off the mixture; documents are too long for this little data")
    total = int(lengths.sum())
    n_seq = total // cfg.seq_len if cfg.last == "drop" else -(-total // cfg.seq_len)
    if n_seq == 0:
        raise PlanError(f"pack: {total} tokens planned, fewer than one sequence of pack.seq_len={cfg.seq_len}")
    wanted = k = int(max(1, min(round(total / cfg.shard_tokens), n_seq)))
    while True:
        plan = _plan_shards(lengths, side, k, seed, cfg, total, target)
        if plan is not None or k == 1:
            break
        k = min(k - 1, k * 3 // 4 + 1)
    if plan is None:
        raise PlanError("pack: even one shard is off the ratio tolerance")
    pieces, bounds, counts = plan
    return Plan(mix, copies, item_doc, pieces, bounds, counts, target, wanted, total)


def _plan_shards(lengths, side, k, seed, cfg, total, target):
    shard = assign_shards(lengths, side, k, seed)
    order = order_stream(lengths, side, shard, seed)
    ordered = lengths[order]
    starts = np.concatenate([[0], np.cumsum(ordered)[:-1]]).astype(np.int64)
    ends = np.cumsum(np.bincount(shard, weights=lengths, minlength=k))
    bounds = shard_bounds(ends, total, cfg.seq_len, cfg.last)
    if np.any(np.diff(bounds) <= 0):
        return None
    pieces = cut_pieces(starts, ordered, bounds)
    pieces["item"] = order[pieces["item"]]
    counts = shard_counts(pieces, side, k)
    if k > 1 and ratio_errors(counts, target).max() > cfg.ratio_tolerance:
        return None
    return pieces, bounds, counts


# ---------------------------------------------------------------------------------------------- sequences
def sequences_schema(dtype: str, seq_len: int) -> pa.Schema:
    return pa.schema([
        pa.field("input_ids", pa.list_(pa.from_numpy_dtype(np.dtype(dtype)), seq_len)),
        pa.field("doc_ids", pa.list_(pa.string())),
        pa.field("doc_lengths", pa.list_(pa.int32())),
        pa.field("doc_starts", pa.list_(pa.bool_())),
        pa.field("n_code_tokens", pa.int32()),
        pa.field("n_text_tokens", pa.int32()),
        pa.field("n_pad_tokens", pa.int32()),
    ])


def build_sequences(tokens: np.ndarray, piece_len: np.ndarray, piece_id: pa.Array, piece_begins: np.ndarray,
                    piece_side: np.ndarray, seq_len: int, pad_id: int) -> pa.Table:
    """A shard's sequences from its pieces in stream order (`tokens` is their concatenation). A piece that
    crosses a sequence boundary becomes two pieces; the last sequence is padded with `pad_id`."""
    n = len(tokens)
    n_seq = -(-n // seq_len)
    starts = np.concatenate([[0], np.cumsum(piece_len)[:-1]]).astype(np.int64)
    points = np.unique(np.concatenate([starts, np.arange(0, n, seq_len)])) if n else np.zeros(0, np.int64)
    piece = np.searchsorted(starts, points, side="right") - 1
    seg_len = np.diff(np.concatenate([points, [n]]))
    seq = points // seq_len
    begins = (points == starts[piece]) & piece_begins[piece]
    seg_offsets = np.searchsorted(seq, np.arange(n_seq + 1)).astype(np.int32)
    padded = np.full(n_seq * seq_len, pad_id, dtype=tokens.dtype)
    padded[:n] = tokens
    code = np.bincount(seq, weights=seg_len * (piece_side[piece] == 0), minlength=n_seq)
    text = np.bincount(seq, weights=seg_len * (piece_side[piece] == 1), minlength=n_seq)
    pad = seq_len - code - text

    def lists(values: pa.Array) -> pa.Array:
        return pa.ListArray.from_arrays(pa.array(seg_offsets), values)

    return pa.table({
        "input_ids": pa.FixedSizeListArray.from_arrays(pa.array(padded), seq_len),
        "doc_ids": lists(piece_id.take(pa.array(piece))),
        "doc_lengths": lists(pa.array(seg_len.astype(np.int32))),
        "doc_starts": lists(pa.array(begins)),
        "n_code_tokens": code.astype(np.int32),
        "n_text_tokens": text.astype(np.int32),
        "n_pad_tokens": pad.astype(np.int32),
    }, schema=sequences_schema(tokens.dtype.name, seq_len))
