"""Document boundaries of a packed sequence turned into what packed training needs. Pure numpy.

A packed sequence holds pieces of several documents (`doc_lengths`, in order) and then `seq_len -
sum(doc_lengths)` padding tokens. Attention must not cross a piece boundary (a document must not see
the one before it), and positions restart at each piece, as if each piece were its own sequence. The
padding forms one more segment of its own that nothing else attends to (its loss should be masked).

    segment_ids      piece number per token, -1 for padding
    position_ids     0, 1, ... restarting at every piece (and at the padding)
    attention_mask   (seq_len, seq_len) bool, block-diagonal, causal by default; True = may attend
    cu_seqlens       cumulative segment lengths (int32, starting at 0), for variable-length attention
                     kernels (flash-attn's `cu_seqlens`)
"""

from __future__ import annotations

import numpy as np


def _segments(doc_lengths, seq_len: int) -> np.ndarray:
    """Segment lengths: the pieces, then the padding if any."""
    lengths = np.asarray(doc_lengths, dtype=np.int64)
    pad = seq_len - int(lengths.sum())
    if pad < 0:
        raise ValueError(f"doc_lengths sum to {int(lengths.sum())}, more than seq_len={seq_len}")
    return np.concatenate([lengths, [pad]]) if pad else lengths


def segment_ids(doc_lengths, seq_len: int) -> np.ndarray:
    lengths = np.asarray(doc_lengths, dtype=np.int64)
    seg = np.full(seq_len, -1, dtype=np.int32)
    seg[: int(lengths.sum())] = np.repeat(np.arange(len(lengths), dtype=np.int32), lengths)
    return seg


def position_ids(doc_lengths, seq_len: int) -> np.ndarray:
    segments = _segments(doc_lengths, seq_len)
    starts = np.repeat(np.cumsum(segments) - segments, segments)
    return (np.arange(seq_len) - starts).astype(np.int64)


def attention_mask(doc_lengths, seq_len: int, causal: bool = True) -> np.ndarray:
    """True where query i may attend key j: same segment (padding counts as one), and j <= i if causal."""
    segments = _segments(doc_lengths, seq_len)
    seg = np.repeat(np.arange(len(segments)), segments)
    mask = seg[:, None] == seg[None, :]
    return np.tril(mask) if causal else mask


def cu_seqlens(doc_lengths, seq_len: int) -> np.ndarray:
    segments = _segments(doc_lengths, seq_len)
    return np.concatenate([[0], np.cumsum(segments)]).astype(np.int32)
