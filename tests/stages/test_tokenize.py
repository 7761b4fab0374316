"""tokenize: lossless round trips, EOS framing, the uint32 path, and tokenizer validation before work."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from curate.errors import RecipeError
from curate.recipe import TokenizeConfig
from curate.stages import tokenize as T
from curate.tokenizer_train import train
from curate.workers.tokenize import load_tokenizer, special_ids, tokenizer_identity

HOSTILE = [
    "def f(x):\r\n\treturn x\t# tab\r\n",
    "naïve café — “quotes” 日本語 🙂 \u200b zero-width, e\u0301 combining",
    "ﬁ ligature and ① circled and ＡＢＣ fullwidth",
    "   leading spaces\n\n\ntrailing   ",
    "x",
]


def _corpus(n: int = 200):
    words = ["alpha", "beta", "gamma", "def", "return", "import", "café", "日本", "\t", "\r\n", "(x)", "🙂"]
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(words, 30)) for _ in range(n)]


@pytest.fixture(scope="module")
def bpe_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    train(iter(_corpus()), 400, path)
    return path


def _encode(tok, texts, cfg=None):
    special = special_ids(tok, cfg or TokenizeConfig(tokenizer="x"))
    return T.encode(tok, pa.table({"text": texts}), special), special


def test_byte_level_round_trip_is_exact(bpe_path):
    """decode(encode(x)) == x for byte-level BPE without a normalizer, on tabs, CRLF and unusual Unicode."""
    tok = load_tokenizer(str(bpe_path))
    out, special = _encode(tok, HOSTILE)
    assert special.eos_id == tok.token_to_id("<|endoftext|>")
    for text, ids, n in zip(HOSTILE, out["ids"].to_pylist(), out["n_tokens"].to_pylist()):
        assert ids[-1] == special.eos_id and special.eos_id not in ids[:-1]
        assert n == len(ids)
        assert tok.decode(ids[:-1], skip_special_tokens=False) == text
    assert out["ids"].type == pa.list_(pa.uint16())


def test_normalizing_tokenizer_round_trips_to_the_normalized_text(bpe_path, tmp_path):
    from tokenizers import Tokenizer, normalizers

    tok = Tokenizer.from_file(str(bpe_path))
    tok.normalizer = normalizers.NFKC()
    path = tmp_path / "nfkc.json"
    tok.save(str(path))
    tok = load_tokenizer(str(path))
    out, _ = _encode(tok, HOSTILE)
    for text, ids in zip(HOSTILE, out["ids"].to_pylist()):
        assert tok.decode(ids[:-1]) == tok.normalizer.normalize_str(text)
    assert tok.normalizer.normalize_str(HOSTILE[2]) != HOSTILE[2]  # the case is not vacuous


def test_bos_is_prepended_when_asked(bpe_path):
    tok = load_tokenizer(str(bpe_path))
    cfg = TokenizeConfig(tokenizer="x", add_bos=True)
    out, special = _encode(tok, ["ab", "c"], cfg)
    bos = tok.token_to_id("<|begin_of_text|>")
    assert special.bos_id == bos
    for ids, text in zip(out["ids"].to_pylist(), ["ab", "c"]):
        assert ids[0] == bos and ids[-1] == special.eos_id
        assert tok.decode(ids[1:-1]) == text


def _word_level(path, size: int, eos: str | None = "</s>"):
    vocab = {f"w{i}": i for i in range(size - 2)}
    vocab["[UNK]"] = size - 2
    if eos:
        vocab[eos] = size - 1
    spec = {"version": "1.0", "truncation": None, "padding": None, "normalizer": None,
            "added_tokens": ([{"id": size - 1, "content": eos, "single_word": False, "lstrip": False, "rstrip": False,
                               "normalized": False, "special": True}] if eos else []),
            "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": None, "decoder": None,
            "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}}
    path.write_text(json.dumps(spec))
    return path


def test_vocab_over_65535_uses_uint32(tmp_path):
    path = _word_level(tmp_path / "big.json", 70_000)
    tok = load_tokenizer(str(path))
    out, special = _encode(tok, ["w69997 w5", "w1"])
    assert special.dtype == "uint32" and special.eos_id == 69_999
    assert out["ids"].type == pa.list_(pa.uint32())
    assert out["ids"].to_pylist() == [[69_997, 5, 69_999], [1, 69_999]]


def test_bad_tokenizers_are_refused_before_work(tmp_path):
    with pytest.raises(RecipeError, match="file not found"):
        tokenizer_identity(TokenizeConfig(tokenizer=str(tmp_path / "missing.json")))
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"model": ')
    with pytest.raises(RecipeError, match="not a valid tokenizer.json"):
        tokenizer_identity(TokenizeConfig(tokenizer=str(corrupt)))
    no_eos = _word_level(tmp_path / "noeos.json", 100, eos=None)
    with pytest.raises(RecipeError, match="tokenize.eos_token"):
        tokenizer_identity(TokenizeConfig(tokenizer=str(no_eos)))
    with pytest.raises(RecipeError, match="tokenize.eos_token"):
        tokenizer_identity(TokenizeConfig(tokenizer=str(no_eos), eos_token="<nope>"))


def test_hub_name_offline_says_so(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RecipeError, match="hub name but HF_HUB_OFFLINE"):
        load_tokenizer("meta-llama/Llama-2-7b-hf")


def test_identity_records_file_hash(bpe_path):
    from curate.parts import sha256_file

    ident = tokenizer_identity(TokenizeConfig(tokenizer=str(bpe_path)))
    assert ident["sha256"] == sha256_file(bpe_path)
    tok = load_tokenizer(str(bpe_path))
    assert ident["vocab_size"] == tok.get_vocab_size(with_added_tokens=True) <= 400
    assert ident["dtype"] == "uint16" and ident["eos_id"] == tok.token_to_id("<|endoftext|>")
