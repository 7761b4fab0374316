"""The trainable fastText quality classifier: `curate train-quality` and the scoring the `quality` stage uses.

Training data: positive and negative documents (jsonl with a `text` field, or parquet with a `text` column).
Each document becomes one fastText line `__label__hq <text>` or `__label__lq <text>`, prepared like language
ID's input (first `max_chars` characters, line breaks as spaces). A seeded shuffle holds out `holdout` of the
documents; the model is trained on the rest with fastText's supervised mode (word n-grams; as in DCLM's
fastText quality filter, Li et al. 2024) and its held-out accuracy is reported. Everything runs offline.
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa

from curate import tasks
from curate.stages.language import LABEL_PREFIX, prepare_texts

POSITIVE, NEGATIVE = "hq", "lq"


def read_texts(path: str | Path) -> list[str]:
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return [t for t in pq.read_table(path, columns=["text"])["text"].to_pylist() if t]
    with path.open(encoding="utf-8") as fh:
        return [rec["text"] for line in fh if line.strip() and (rec := json.loads(line)).get("text")]


def _lines(texts: list[str], label: str, max_chars: int) -> list[str]:
    return [f"{LABEL_PREFIX}{label} {t}" for t in prepare_texts(texts, max_chars)]


def train(positive: list[str], negative: list[str], out: str | Path, *, holdout: float = 0.2, seed: int = 0,
          max_chars: int = 10_000, epoch: int = 10, word_ngrams: int = 2) -> dict:
    """Trains and saves the model; returns counts and held-out accuracy."""
    import fasttext

    lines = _lines(positive, POSITIVE, max_chars) + _lines(negative, NEGATIVE, max_chars)
    random.Random(seed).shuffle(lines)
    n_test = int(round(len(lines) * holdout))
    test, trainset = lines[:n_test], lines[n_test:]
    with tempfile.TemporaryDirectory() as tmp:
        train_file = Path(tmp) / "train.txt"
        train_file.write_text("\n".join(trainset) + "\n", encoding="utf-8")
        model = fasttext.train_supervised(input=str(train_file), epoch=epoch, wordNgrams=word_ngrams, seed=seed,
                                          thread=1, verbose=0, minCount=1)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save_model(str(out))
    accuracy = _accuracy(model, test) if test else float("nan")
    return {"train": len(trainset), "test": len(test), "accuracy": accuracy, "model": str(out)}


def _accuracy(model, test: list[str]) -> float:
    gold = [line.split(" ", 1)[0] for line in test]
    texts = [line.split(" ", 1)[1] if " " in line else "" for line in test]
    predicted, _ = model.predict(texts, k=1)
    return float(np.mean([p[0] == g if p else False for p, g in zip(predicted, gold)]))


def classifier_model(path: str):
    import fasttext

    return tasks.cached(("fasttext", str(path)), lambda: fasttext.load_model(str(path)))


def score_texts(model, texts: pa.Array | list[str], max_chars: int) -> np.ndarray:
    """P(`__label__hq`) of each text (both labels are asked for, so the probability is always there)."""
    prepared = prepare_texts(texts, max_chars)
    if not prepared:
        return np.zeros(0)
    labels, probs = model.predict(prepared, k=2)
    want = LABEL_PREFIX + POSITIVE
    return np.array([dict(zip(lab, p)).get(want, 0.0) for lab, p in zip(labels, probs)], dtype=np.float64)
