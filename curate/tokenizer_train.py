"""`curate train-tokenizer`: a byte-level BPE tokenizer trained with HF `tokenizers` on a corpus sample.

From a recipe, the sample takes code and text documents in the recipe's `pack.mixture` ratio (by bytes, up
to `sample_bytes` in all), each side in source order, so the vocabulary matches what pack will emit.
From plain files, each file is one document. Byte-level BPE (GPT-2's scheme: ByteLevel pre-tokenizer
without a prefix space, ByteLevel decoder, no normalizer) is lossless: decode(encode(x)) == x.
Declared special tokens: `<|endoftext|>` (the end-of-document token tokenize finds by default),
`<|begin_of_text|>` and `<|pad|>`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|begin_of_text|>", "<|pad|>"]


def build_trainer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte has a token: nothing is unknown
    )
    return tok, trainer


def train(texts: Iterator[str], vocab_size: int, out: str | Path) -> dict:
    """Trains on `texts`, writes `out` atomically, returns a summary."""
    from curate import parts

    tok, trainer = build_trainer(vocab_size)
    counter = _Counter(texts)
    tok.train_from_iterator(counter, trainer=trainer)
    with parts.atomic_path(out) as tmp:
        tok.save(str(tmp))
    return {"out": str(out), "vocab_size": tok.get_vocab_size(), "documents": counter.docs, "bytes": counter.bytes,
            "sha256": parts.sha256_file(out)}


class _Counter:
    def __init__(self, texts: Iterator[str]):
        self.texts, self.docs, self.bytes = texts, 0, 0

    def __iter__(self):
        for t in self.texts:
            self.docs += 1
            self.bytes += len(t.encode("utf-8", "surrogatepass"))
            yield t


def recipe_sample(recipe, sample_bytes: int) -> Iterator[str]:
    """Documents of each side, in source order, until the side's share of `sample_bytes` is reached."""
    from curate.sources import plan_ingest, read_partition

    mix = recipe.pack.mixture
    total = sum(mix.values())
    plan = plan_ingest(recipe)
    for kind in ("code", "text"):
        budget = sample_bytes * mix.get(kind, 0) / total
        for partition in plan:
            if budget <= 0:
                break
            if recipe.source(partition.source).kind != kind:
                continue
            for raw in read_partition(partition, recipe):
                for text in raw["text"].drop_null().to_pylist():
                    if budget > 0 and text.strip():
                        budget -= len(text.encode("utf-8", "surrogatepass"))
                        yield text
                if budget <= 0:
                    break


def file_texts(paths: list[str]) -> Iterator[str]:
    for p in paths:
        yield Path(p).read_text(encoding="utf-8", errors="replace")
