"""curate export over synthesized multi-shard output: Megatron bin/idx read back by a reader written here
from the format's documentation, jsonl (ids and text), datasets directories, resume after a failure,
export from the loopback S3 server, and the CLI."""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
import pytest

from curate import cli
from curate.export import export
from curate.export import units as U
from curate.export.output import ExportUsageError
from tests.packed import write_packed

SIZES = (4, 1, 6, 3)
SEQ_LEN = 16
# the second document spans shard 1 (one sequence) whole and runs into shard 2
LENGTHS = [60, 40, 30]


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    return write_packed(tmp_path_factory.mktemp("packed"), sizes=SIZES, seq_len=SEQ_LEN, lengths=LENGTHS)


def read_megatron(prefix):
    """megatron-core IndexedDataset layout: magic, u64 version, u8 dtype code, u64 sequence count, u64 document
    count, int32 lengths, int64 byte pointers, int64 document indices; the .bin holds the tokens."""
    idx = (prefix.parent / f"{prefix.name}.idx").read_bytes()
    assert idx[:9] == b"MMIDIDX\x00\x00"
    version, code, n_seq, n_doc = struct.unpack("<QBQQ", idx[9:34])
    assert version == 1
    dtype = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 8: np.uint16}[code]
    lengths = np.frombuffer(idx, np.int32, n_seq, 34)
    pointers = np.frombuffer(idx, np.int64, n_seq, 34 + 4 * n_seq)
    documents = np.frombuffer(idx, np.int64, n_doc, 34 + 12 * n_seq)
    assert len(idx) == 34 + 12 * n_seq + 8 * n_doc
    data = np.memmap(prefix.parent / f"{prefix.name}.bin", dtype=np.uint8, mode="r")
    seqs = [np.frombuffer(data, dtype, int(n), int(p)).tolist() for n, p in zip(lengths, pointers)]
    assert pointers[-1] + lengths[-1] * np.dtype(dtype).itemsize == len(data)
    return np.dtype(dtype), seqs, documents.tolist()


def sequences(packed) -> list[list[int]]:
    t = packed.sequences
    return [ids[: len(ids) - pad] for ids, pad in zip(t["input_ids"].to_pylist(), t["n_pad_tokens"].to_pylist())]


def documents(packed) -> list[list[int]]:
    return [t.tolist() for _, t in packed.docs]


def test_documents_cross_shards(packed):
    """The fixture is what it claims: a document starts in shard 0, covers shard 1 and ends in shard 2."""
    starts = [t["doc_starts"].to_pylist() for t in packed.tables]
    assert starts[1] == [[False]] and starts[2][0][0] is False


@pytest.mark.parametrize("unit", ["sequence", "document"])
def test_megatron_reads_back(packed, tmp_path, unit):
    manifest = export(packed.workdir, "megatron", tmp_path / "out", unit=unit)
    dtype, seqs, docs = read_megatron(tmp_path / "out")
    assert dtype == np.uint16
    assert seqs == (sequences(packed) if unit == "sequence" else documents(packed))
    assert docs == list(range(len(seqs) + 1))
    assert manifest["complete"] and manifest["entries"] == len(seqs)
    for record in manifest["outputs"]:
        data = (tmp_path / record["file"]).read_bytes()
        assert record["bytes"] == len(data) and record["sha256"] == hashlib.sha256(data).hexdigest()
    assert json.loads((tmp_path / "out.manifest.json").read_text()) == manifest


def megatron_core_indexed_dataset():
    """megatron-core's own IndexedDataset class, or a skip where megatron-core (and torch) are not installed
    (`make test` installs them only from a local wheel of torch's CPU build)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # megatron-core warns on import that Transformer Engine and Apex are absent
        try:
            from megatron.core.datasets.indexed_dataset import IndexedDataset
        except ImportError as exc:
            pytest.skip(f"megatron-core is not installed ({exc})")
    return IndexedDataset


@pytest.mark.parametrize("unit", ["sequence", "document"])
@pytest.mark.parametrize("vocab", [300, 100_000])  # uint16 and int32 tokens
def test_megatron_core_reads_the_export(packed, tmp_path, unit, vocab):
    """megatron-core's own reader of the format, where it can be installed: every entry equals the sequence
    (pad dropped) or the document, the document index is one entry per document, and the dtype is kept."""
    IndexedDataset = megatron_core_indexed_dataset()
    source = packed if vocab == 300 else write_packed(tmp_path / "w", sizes=(3, 2), vocab=vocab)
    export(source.workdir, "megatron", tmp_path / "out", unit=unit)
    data = IndexedDataset(str(tmp_path / "out"))
    want = sequences(source) if unit == "sequence" else documents(source)
    assert [data[i].tolist() for i in range(len(data))] == want
    assert data[0].dtype == (np.uint16 if vocab == 300 else np.int32)
    assert data.document_indices.tolist() == list(range(len(want) + 1))


def test_megatron_int32_for_a_large_vocabulary(tmp_path):
    packed = write_packed(tmp_path / "w", sizes=(3, 2), vocab=100_000)
    export(packed.workdir, "megatron", tmp_path / "big")
    dtype, seqs, _ = read_megatron(tmp_path / "big")
    assert dtype == np.int32 and seqs == sequences(packed) and max(max(s) for s in seqs) >= 65536


@pytest.mark.parametrize("unit", ["sequence", "document"])
def test_jsonl(packed, tmp_path, unit):
    export(packed.workdir, "jsonl", tmp_path / "out", unit=unit)
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    if unit == "sequence":
        table = packed.sequences
        assert [r["input_ids"] for r in lines] == sequences(packed)
        assert [r["index"] for r in lines] == list(range(table.num_rows))
        assert [r["doc_ids"] for r in lines] == table["doc_ids"].to_pylist()
        assert [r["doc_starts"] for r in lines] == table["doc_starts"].to_pylist()
    else:
        assert [(r["id"], r["input_ids"]) for r in lines] == [(i, t.tolist()) for i, t in packed.docs]


def test_jsonl_text_with_the_runs_tokenizer(packed, tmp_path):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel

    tok = Tokenizer(WordLevel({f"t{i}": i for i in range(300)}, unk_token="t1"))
    tok.save(str(tmp_path / "tok.json"))
    manifest = json.loads((packed.workdir / "shards" / "manifest.json").read_text())
    want = manifest["tokenizer"]["sha256"]
    with pytest.raises(ExportUsageError, match="sha256"):
        export(packed.workdir, "jsonl", tmp_path / "bad", unit="document", text=True, tokenizer=str(tmp_path / "tok.json"))
    manifest["tokenizer"]["sha256"] = hashlib.sha256((tmp_path / "tok.json").read_bytes()).hexdigest()
    copy = tmp_path / "copy"
    (copy / "shards").mkdir(parents=True)
    for p in (packed.workdir / "shards").iterdir():
        (copy / "shards" / p.name).write_bytes(p.read_bytes())
    (copy / "shards" / "manifest.json").write_text(json.dumps(manifest))
    assert want != manifest["tokenizer"]["sha256"]
    export(copy, "jsonl", tmp_path / "text", unit="document", text=True, tokenizer=str(tmp_path / "tok.json"))
    lines = [json.loads(line) for line in (tmp_path / "text.jsonl").read_text().splitlines()]
    assert [r["text"] for r in lines] == [" ".join(f"t{i}" for i in t) for _, t in packed.docs]


@pytest.mark.parametrize("unit", ["sequence", "document"])
def test_hf_load_from_disk(packed, tmp_path, unit):
    import datasets

    (packed.workdir / "ingest").mkdir(exist_ok=True)  # a stage manifest: its totals go into the card
    (packed.workdir / "ingest" / "_manifest.json").write_text(json.dumps(
        {"totals": {"docs_in": 12, "docs_kept": 10, "bytes_in": 3_000_000, "bytes_kept": 2_500_000}}))
    manifest = export(packed.workdir, "hf", tmp_path / "ds", unit=unit)
    ds = datasets.load_from_disk(str(tmp_path / "ds"))
    if unit == "sequence":
        assert ds["input_ids"] == packed.sequences["input_ids"].to_pylist()
        assert ds["doc_ids"] == packed.sequences["doc_ids"].to_pylist() and ds["index"] == list(range(sum(SIZES)))
    else:
        assert list(zip(ds["id"], ds["input_ids"])) == [(i, t.tolist()) for i, t in packed.docs]
    card = (tmp_path / "ds" / "README.md").read_text()
    assert "# synthetic: packed pretraining data" in card and f"{sum(SIZES)} sequences of {SEQ_LEN}" in card
    assert "| ingest | 12 | 10 | 3.0 | 2.5 |" in card
    assert {o["file"] for o in manifest["outputs"]} >= {"ds/README.md", "ds/state.json", "ds/dataset_info.json"}
    assert not (tmp_path / "ds.export-work").exists()


@pytest.mark.parametrize("fmt", ["megatron", "jsonl", "hf"])
def test_resume_after_a_failure_gives_the_same_files(packed, tmp_path, monkeypatch, fmt):
    """A failure while shard 2 is exported (after a torn write past the last finished shard): the rerun
    continues after shard 1 and its files and checksums equal an uninterrupted export's."""
    whole = export(packed.workdir, fmt, tmp_path / "a" / "out", unit="document")
    real = U.shard_entries
    seen = []

    def failing(shards, k, unit, first):
        seen.append(k)
        if k == 2:
            for name in ("out.bin", "out.jsonl"):
                if (tmp_path / "b" / name).exists():
                    with open(tmp_path / "b" / name, "ab") as fh:
                        fh.write(b"torn")
            raise RuntimeError("killed")
        return real(shards, k, unit, first)

    monkeypatch.setattr("curate.export.shard_entries", failing)
    with pytest.raises(RuntimeError, match="killed"):
        export(packed.workdir, fmt, tmp_path / "b" / "out", unit="document")
    progress = json.loads((tmp_path / "b" / "out.manifest.json").read_text())
    assert progress["shards_done"] == 2 and not progress["complete"]
    seen.clear()
    monkeypatch.setattr("curate.export.shard_entries", real)
    resumed = export(packed.workdir, fmt, tmp_path / "b" / "out", unit="document")
    assert resumed["outputs"] == whole["outputs"] and resumed["entries"] == whole["entries"]
    again = export(packed.workdir, fmt, tmp_path / "b" / "out", unit="document")  # complete: nothing redone
    assert again["outputs"] == whole["outputs"]


def test_export_from_s3(packed, tmp_path, s3):
    from curate.publish import publish

    _, bucket, endpoint = s3
    assert publish(packed.workdir, f"s3://{bucket}/ds", endpoint_url=endpoint).committed
    local = export(packed.workdir, "megatron", tmp_path / "local")
    remote = export(f"s3://{bucket}/ds", "megatron", tmp_path / "remote", endpoint_url=endpoint)
    assert [o["sha256"] for o in remote["outputs"]] == [o["sha256"] for o in local["outputs"]]


def test_cli(packed, tmp_path, capsys):
    with pytest.raises(SystemExit) as help_exit:
        cli.main(["export", "--help"])
    assert help_exit.value.code == 0 and "--unit {sequence,document}" in capsys.readouterr().out
    assert cli.main(["export", str(packed.workdir), "--format", "megatron", "--out", str(tmp_path / "m"),
                     "--unit", "document"]) == 0
    assert f"exported {len(packed.docs)} documents" in capsys.readouterr().out
    assert cli.main(["export", str(packed.workdir), "--format", "megatron", "--text", "--out", str(tmp_path / "x")]) == 2
    assert "--text applies to" in capsys.readouterr().err
    assert cli.main(["export", str(tmp_path), "--format", "jsonl", "--out", str(tmp_path / "y")]) == 1
