"""redact: a table of positive and negative cases per type (tests/redact_cases.py), precision and recall
printed; replacement forms; the Arrow-level contract (same rows, counts, bytes before); detect-secrets'
plugin layer (what only it finds, its prefilter, its settings, its spans)."""

from __future__ import annotations

import logging

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from detect_secrets.core.scan import _process_line_based_plugins
from detect_secrets.settings import get_settings, transient_settings

from curate.stages import redact as R
from curate.stages import secrets as S
from tests.redact_cases import NEGATIVE, PLUGIN_ONLY, POSITIVE

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
    flags["secret"] = flags["secret"] | flags["secret_plugins"]  # the patterns' documents, the plugins' ones
    for i, (kind, _, _) in enumerate(POSITIVE):
        assert flags[kind][i], POSITIVE[i]


# detect-secrets' plugins (curate/stages/secrets.py)

@pytest.mark.parametrize(("doc", "value", "plugin"), PLUGIN_ONLY)
def test_plugin_only_secrets_are_missed_by_the_patterns_and_found_by_the_plugins(doc, value, plugin):
    assert value in R.redact_text(doc, {"secret"}, "placeholder", frozenset(), "s", found=[])[0]  # patterns only
    assert value not in run_one(doc)[0]
    with transient_settings({"plugins_used": [{"name": plugin}], "filters_used": list(S.FILTERS)}):
        reported = {s.secret_value for line in doc.splitlines() for s in
                    _process_line_based_plugins([(1, line)], filename=S.FILENAME)}
    assert reported, plugin  # the plugin named in the case is one that finds it


def test_plugin_set_resolves_and_leaves_no_global_settings_behind():
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    known = {c.__name__ for c in get_mapping_from_secret_type_to_class().values()}
    assert {p["name"] for p in S.PLUGINS} <= known and set(S.ANCHORS) == {p["name"] for p in S.PLUGINS}
    assert not {"Base64HighEntropyString", "HexHighEntropyString", "IPPublicDetector"} & {p["name"] for p in S.PLUGINS}
    before = get_settings().json()
    lines = [doc for doc, _, _ in PLUGIN_ONLY]
    first = S.scan_lines(lines)
    assert get_settings().json() == before  # transient: whatever was configured before is back
    assert first == S.scan_lines(lines) and all(first)
    assert not any("verification" in f["path"] for f in S.FILTERS)  # no plugin verifies over the network


def test_a_document_without_a_flagged_line_never_reaches_the_plugins(monkeypatch):
    seen: list[str] = []

    def counting(lines, config=None):
        seen.extend(lines)
        return [set() for _ in lines]

    monkeypatch.setattr(S, "scan_lines", counting)
    plain = "def helper(values):\n    return [v * 2 for v in values]\n"
    t = pa.table({"id": ["a", "b"], "source": ["s"] * 2, "text": [plain, plain + POSITIVE[0][1]]})
    R.apply(t, list(R.TYPES), "placeholder", [], 0)
    assert seen == []  # the e-mail document is flagged for e-mails, none of its lines for the plugins
    t = pa.table({"id": ["c"], "source": ["s"], "text": [plain + 'db_password = "hunter2-Lk8#q"\n' + plain]})
    R.apply(t, list(R.TYPES), "placeholder", [], 0)
    assert seen == ['db_password = "hunter2-Lk8#q"']  # only the flagged line, not the document


def test_flagged_lines_give_character_offsets_in_the_document():
    texts = pa.array(["é\nnothing\nx = 'sk_live_J0bZB535ya5Q6wNy6HajqpFG'", "plain", "pwd = 'x'\r\nok"],
                     pa.large_string())
    owners, starts, lines = S.flagged_lines(texts)
    assert owners.tolist() == [0, 2] and starts.tolist() == [10, 0]
    assert lines.to_pylist() == ["x = 'sk_live_J0bZB535ya5Q6wNy6HajqpFG'", "pwd = 'x'\r"]
    assert texts[0].as_py()[10:].startswith("x = 'sk_live")


def test_line_spans_cover_every_occurrence_widened_to_the_token():
    line = "a = 'ghp_Zq8x'; b = 'ghp_Zq8x'; c = 'ghp'"
    assert S.line_spans(line, {"ghp"}) == [(5, 13), (21, 29), (37, 40)]
    assert S.line_spans("pw: 'hunter2-Lk8#q' and hunter2", {"hunter2-Lk8#q"}) == [(5, 18)]


def test_prefilter_flags_every_case_line_a_plugin_reports():
    lines = [line for doc in [d for _, d, _ in POSITIVE] + [d for _, d in NEGATIVE] for line in doc.split("\n")]
    reported = [line for line, values in zip(lines, S.scan_lines(lines)) if values]
    assert len(reported) >= len(PLUGIN_ONLY)
    flags = pc.match_substring_regex(pa.array(reported), S.PREFILTER).to_pylist()
    assert all(flags), [line for line, f in zip(reported, flags) if not f]


def test_keyword_values_must_look_like_passwords():
    lines = ["'MODULE_PWD_STATE': 'yes',", 'db_password = "hunter2-Lk8#q"', 'password = "sunshine"',
             'password = "Sunshine"', '"API_KEY": "abc123",', 'password = "Abc1234"']
    assert S.scan_lines(lines) == [set(), {"hunter2-Lk8#q"}, set(), {"Sunshine"}, set(), set()]


def test_no_value_reaches_a_log(caplog):
    caplog.set_level(logging.DEBUG)
    uuid_line = "db_password = '123e4567-e89b-12d3-a456-426614174000'"  # reported, then dropped by a filter
    found = S.scan_lines([uuid_line, PLUGIN_ONLY[0][0]])
    assert found[0] == set() and len(found[1]) == 1
    assert "426614174000" not in caplog.text and PLUGIN_ONLY[0][1][:20] not in caplog.text


def test_each_line_seen_by_its_anchors_plugins_finds_what_every_plugin_finds():
    lines = [line for doc in [d for _, d, _ in POSITIVE] + [d for _, d in NEGATIVE] for line in doc.split("\n")]
    by_anchor = S.scan_by_anchor(pa.array(lines, pa.large_string()))
    assert by_anchor == S.scan_lines(lines) and sum(map(bool, by_anchor)) >= len(PLUGIN_ONLY)
    assert S.plugins_per_line(pa.array(['db_password = "x"', "AKIAQWERTYUIOPASDFGH", "nothing"])) == [
        ("KeywordDetector",), ("AWSKeyDetector",), ()]
