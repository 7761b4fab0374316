"""Stage `tokenize`: Hugging Face `tokenizers`, batch encoding, end-of-document token appended.

Input columns: the document schema (`text`). Added columns: `ids` (list<uint16> when every token id fits
in 16 bits, else list<uint32>; EOS appended, BOS prepended with `add_bos`) and `n_tokens` (int64, the
length of `ids`). Reason codes: none (every document gets tokens: at least its EOS).

The encoder is `Tokenizer.encode_batch_fast` (no offsets), the fastest of the library's batch calls; the
ids are flattened and framed with numpy, so no Python loop runs per token.
Reference: HF tokenizers; Megatron-LM / GPT-NeoX preprocessing append EOS to every document.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np
import pyarrow as pa

from curate.schema import TEXT
from curate.stagespec import Stage

STAGE = Stage(key="tokenize", order=80, kind="row", summary="HF tokenizers, EOS appended, ids as uint16/uint32",
              decide="curate.workers.tokenize:decide", run="curate.workers.tokenize:run",
              check="curate.workers.tokenize:check", skip="curate.workers.tokenize:skip_reason")

IDS, N_TOKENS = "ids", "n_tokens"
EOS_CANDIDATES = ("</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>", "<EOT>")
BOS_CANDIDATES = ("<s>", "<|begin_of_text|>", "<|startoftext|>", "<bos>")


@dataclass(frozen=True)
class Special:
    """The ids a tokenizer frames documents with, and the dtype its ids are stored in."""

    eos_id: int
    bos_id: int | None
    dtype: str  # "uint16" | "uint32"


def id_dtype(vocab_size: int) -> str:
    """uint16 when every id (0 .. vocab_size-1) fits in 16 bits, else uint32."""
    return "uint16" if vocab_size <= 1 << 16 else "uint32"


def find_special(tokenizer, wanted: str | None, candidates: tuple[str, ...]) -> tuple[str, int] | None:
    """The named token (any vocabulary entry), or the first candidate the tokenizer declares as special."""
    if wanted is not None:
        tid = tokenizer.token_to_id(wanted)
        return None if tid is None else (wanted, tid)
    special = {t.content: i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special}
    return next(((c, special[c]) for c in candidates if c in special), None)


def encode(tokenizer, table: pa.Table, special: Special) -> pa.Table:
    """Adds `ids` and `n_tokens` to `table` (same rows, same order)."""
    texts = table[TEXT].to_pylist()
    encodings = tokenizer.encode_batch_fast(texts, add_special_tokens=False) if texts else []
    lists = [e.ids for e in encodings]
    ids = frame(lists, special)
    n_tokens = pa.array(np.diff(ids.offsets.to_numpy()).astype(np.int64))
    return table.append_column(IDS, ids).append_column(N_TOKENS, n_tokens)


def frame(lists: list[list[int]], special: Special) -> pa.ListArray:
    """One list array of the documents' ids with EOS appended (and BOS prepended) to each."""
    dtype = np.dtype(special.dtype)
    body = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    extra = 1 + (special.bos_id is not None)
    lengths = body + extra
    offsets = np.zeros(len(lists) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    values = np.empty(int(offsets[-1]), dtype=dtype)
    ends = offsets[1:] - 1
    values[ends] = special.eos_id
    is_body = np.ones(len(values), dtype=bool)
    is_body[ends] = False
    if special.bos_id is not None:
        values[offsets[:-1]] = special.bos_id
        is_body[offsets[:-1]] = False
    values[is_body] = np.fromiter(chain.from_iterable(lists), dtype=dtype, count=int(body.sum()))
    # int32 offsets: a batch holds at most batch_size documents of at most ingest.max_bytes each
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values))
