"""Pure ingest functions: normalisation decisions and id numbering across partitions."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.sources.records import RecordBuffer
from curate.stages import ingest


def raw(texts, errors=None):
    buf = RecordBuffer()
    for i, t in enumerate(texts):
        buf.add(f"s/{i}", text=t, error=(errors or {}).get(i), raw_bytes=len(t.encode()) if t else 0)
    return buf.take()


def test_normalize_keeps_rows_and_order_and_decides():
    decided = ingest.normalize(raw(["ok", "", " \n\t", "x" * 11, None], {4: "ingest.missing_text"}), "s", "text", 10)
    assert decided["id"].to_pylist() == [f"s/{i}" for i in range(5)]
    assert decided["drop_reason"].to_pylist() == [None, "ingest.empty", "ingest.empty", "ingest.too_large", "ingest.missing_text"]
    assert decided["drop_detail"][3].as_py() == "11 bytes > 10"
    assert set(decided["kind"].to_pylist()) == {"text"} and set(decided["source"].to_pylist()) == {"s"}


def test_max_bytes_boundary_is_inclusive():
    decided = ingest.normalize(raw(["é" * 5, "é" * 5 + "a"]), "s", "text", 10)  # 10 and 11 UTF-8 bytes
    assert decided["drop_reason"].to_pylist() == [None, "ingest.too_large"]


@settings(max_examples=200, deadline=None)
@given(ids=st.lists(st.sampled_from("abcde"), max_size=40), cuts=st.lists(st.integers(0, 40), max_size=5))
def test_id_numbering_does_not_depend_on_partitioning(ids, cuts):
    """Property: numbering repeats per partition with offsets equals numbering the whole source at once."""
    whole = ingest.IdDeduper()(pa.array(ids, pa.string())).to_pylist()
    bounds = sorted({0, len(ids), *[c for c in cuts if c <= len(ids)]})
    chunks = [ids[a:b] for a, b in zip(bounds, bounds[1:])]
    counts = [pa.table({"id": pa.array(c, pa.string())}).group_by("id").aggregate([("id", "count")]) for c in chunks]
    table = pa.concat_tables([
        pa.table({"id": t["id"], "part": pa.array([p] * t.num_rows, pa.int32()), "count": t["id_count"]})
        for p, t in enumerate(counts)]) if chunks else pa.table({"id": pa.array([], pa.string()), "part": pa.array([], pa.int32()), "count": pa.array([], pa.int64())})
    offsets = ingest.id_offsets(table).to_pylist()
    got = []
    for p, chunk in enumerate(chunks):
        seed = {o["id"]: o["offset"] for o in offsets if o["part"] == p}
        got += ingest.IdDeduper(seed)(pa.array(chunk, pa.string())).to_pylist()
    assert got == whole
    assert len(set(whole)) == len(whole)
