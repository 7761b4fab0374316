"""Streaming histograms with fixed bins: the same data gives the same counts whatever the batching.

Lengths use log-scale bins with integer edges (10 per decade, rounded up to integers and deduplicated),
so a bin is exact for integer data and a reader can recompute it with `numpy.histogram(values, edges)`.
Scores use 20 equal bins on [0, 1]; values outside go to `below` / `above`.
"""

from __future__ import annotations

import numpy as np

BINS_PER_DECADE = 10
MAX_DECADE = 12  # 10^12 characters or tokens: far above any document


def log_edges() -> np.ndarray:
    """[0, 1, 2, 3, 4, 5, 7, 8, 10, 13, 16, 20, 26, ...]: a zero bin, then ~10 bins per decade."""
    raw = np.ceil(10 ** (np.arange(BINS_PER_DECADE * MAX_DECADE + 1) / BINS_PER_DECADE) - 1e-9).astype(np.int64)
    return np.concatenate([[0], np.unique(raw)])


LOG_EDGES = log_edges()
SCORE_EDGES = np.round(np.linspace(0.0, 1.0, 21), 6)  # exactly the edges the report stores (linspace gives 0.7000000000000001)


class Histogram:
    """Counts over fixed `edges` (left-closed bins; the last edge is an open upper bound)."""

    def __init__(self, edges: np.ndarray):
        self.edges = np.asarray(edges)
        self.counts = np.zeros(len(self.edges) - 1, dtype=np.int64)
        self.below = 0
        self.above = 0

    def add(self, values) -> None:
        v = np.asarray(values)
        if v.dtype.kind == "f":
            v = v[~np.isnan(v)]
        idx = np.searchsorted(self.edges, v, side="right") - 1
        self.below += int(np.count_nonzero(idx < 0))
        # the upper edge is inclusive for scores (1.0 is the top bin), exclusive for lengths (never reached)
        top = v == self.edges[-1]
        idx[top] = len(self.counts) - 1
        self.above += int(np.count_nonzero(idx >= len(self.counts)))
        ok = (idx >= 0) & (idx < len(self.counts))
        self.counts += np.bincount(idx[ok], minlength=len(self.counts))

    @property
    def total(self) -> int:
        return int(self.counts.sum()) + self.below + self.above

    def to_json(self) -> dict:
        """Edges and counts of the non-empty span only (the full edge list is a constant of this module)."""
        nz = np.flatnonzero(self.counts)
        lo, hi = (int(nz[0]), int(nz[-1]) + 1) if len(nz) else (0, 0)
        edges = self.edges[lo:hi + 1] if hi > lo else self.edges[:0]
        return {"edges": [_num(e) for e in edges], "counts": [int(c) for c in self.counts[lo:hi]],
                "below": self.below, "above": self.above, "total": self.total}


def _num(x):
    return int(x) if float(x).is_integer() else round(float(x), 6)


def quantiles_from_hist(h: dict, qs=(0.5, 0.9, 0.99)) -> dict[str, float]:
    """Approximate quantiles (the upper edge of the bin holding each quantile), for the tables."""
    counts = np.asarray(h["counts"])
    if counts.sum() == 0:
        return {}
    cum = np.cumsum(counts) / counts.sum()
    return {f"p{round(q * 100)}": h["edges"][int(np.searchsorted(cum, q)) + 1] for q in qs}
