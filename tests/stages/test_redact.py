"""redact: a table of positive and negative cases per type (tests/redact_cases.py), precision and recall
printed; replacement forms; the Arrow-level contract (same rows, counts, bytes before)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from curate.stages import redact as R
from tests.redact_cases import NEGATIVE, POSITIVE

ALL = set(R.TYPES)


def run_one(text: str, replacement: str = "placeholder") -> tuple[str, dict]:
    return R.redact_text(text, ALL, replacement, frozenset(), "0:doc")


def test_precision_and_recall_per_type(capsys):
    lines = []
    for kind in R.TYPES:
        pos = [(doc, value) for k, doc, value in POSITIVE if k == kind]
        neg = [doc for k, doc in NEGATIVE if k == kind]
        tp = sum(1 for doc, value in pos if value not in run_one(doc)[0] and run_one(doc)[1].get(kind))
        fp = sum(1 for doc in neg if run_one(doc)[0] != doc)
        precision, recall = tp / max(tp + fp, 1), tp / len(pos)
        lines.append(f"redact {kind:<10} positives {len(pos)} negatives {len(neg)}: precision {precision:.2f} "
                     f"recall {recall:.2f}")
        assert (tp, fp) == (len(pos), 0), lines[-1]
    with capsys.disabled():
        print("\n" + "\n".join(lines))


@pytest.mark.parametrize(("kind", "doc", "value"), POSITIVE)
def test_each_positive_is_replaced_by_its_placeholder(kind, doc, value):
    out, counts = run_one(doc)
    assert value not in out and R.PLACEHOLDER[kind] in out and counts == {kind: 1}


@pytest.mark.parametrize(("kind", "doc"), NEGATIVE)
def test_each_negative_is_unchanged(kind, doc):
    assert run_one(doc) == (doc, {})


@pytest.mark.parametrize(("kind", "doc", "value"), POSITIVE)
def test_synthetic_keeps_the_shape_and_drops_the_value(kind, doc, value):
    out, counts = run_one(doc, "synthetic")
    assert value not in out and counts == {kind: 1}
    again, _ = R.redact_text(out, ALL, "synthetic", frozenset(), "0:doc")
    assert again == out  # fakes are in kept ranges (example.com, documentation IPs) or shapes: stable
    if value.startswith(("AKIA", "ghp_", "xoxb", "AIza")):
        fake = next(w for w in out.replace("'", " ").replace('"', " ").replace("=", " ").split() if w[:4] == value[:4])
        assert len(fake) == len(value)


def test_synthetic_depends_on_seed_and_position_not_on_the_value():
    a = R.synthetic("secret", "AKIAQWERTYUIOPASDFGH", "0:doc:0")
    assert a == R.synthetic("secret", "AKIAZZZZZZZZZZZZZZZZ", "0:doc:0")  # same shape, same seed: same fake
    assert a != R.synthetic("secret", "AKIAQWERTYUIOPASDFGH", "1:doc:0")


def test_allow_list_and_type_selection():
    doc = "mail ops@bigcorp.com from 93.184.216.34"
    assert R.redact_text(doc, ALL, "placeholder", frozenset({"ops@bigcorp.com"}), "s")[0] == \
        "mail ops@bigcorp.com from <IP_ADDRESS>"
    assert R.redact_text(doc, {"email"}, "placeholder", frozenset(), "s")[0] == "mail <EMAIL> from 93.184.216.34"


def test_a_password_in_a_connection_string_wins_over_the_address_around_it():
    out, counts = run_one("url = 'mysql://root:Zx9Qw7Er5Ty3@db.bigcorp.com/app'")
    assert out == "url = 'mysql://root:<SECRET>@db.bigcorp.com/app'" and counts == {"secret": 1}


def test_apply_keeps_rows_and_counts_bytes_before():
    docs = ["nothing to see", POSITIVE[0][1], POSITIVE[7][1] + POSITIVE[3][1]]
    t = pa.table({"id": ["a", "b", "c"], "source": ["s"] * 3, "text": docs})
    out = R.apply(t, list(R.TYPES), "placeholder", [], 0)
    assert out["id"].to_pylist() == ["a", "b", "c"] and out["drop_reason"].null_count == 3
    assert out["redactions"].to_pylist() == [{"email": 0, "ip_address": 0, "secret": 0},
                                             {"email": 1, "ip_address": 0, "secret": 0},
                                             {"email": 0, "ip_address": 1, "secret": 1}]
    assert out["bytes_in"].to_pylist() == [len(d.encode()) for d in docs]
    assert out["text"][0].as_py() == docs[0]
    off = R.apply(t, [], "placeholder", [], 0)  # types: [] (a source that turns redaction off)
    assert off["text"].to_pylist() == docs and off["redactions"].combine_chunks().field("secret").to_pylist() == [0, 0, 0]


def test_prefilter_flags_every_positive():
    flags = R.candidates(pa.array([doc for _, doc, _ in POSITIVE]), list(R.TYPES))
    for i, (kind, _, _) in enumerate(POSITIVE):
        assert flags[kind][i], POSITIVE[i]
