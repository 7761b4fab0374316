"""The report on a generated run: every figure of stats.json recomputed here from the artifacts with
pyarrow (parts, dropped parts, shards) must be equal; the files are deterministic, self-contained and
the same when the work directory is read from a local S3-protocol server."""

from __future__ import annotations

import io
import json
import shutil
from collections import Counter, defaultdict
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow.ipc as ipc
import pytest
import xxhash
from PIL import Image

from curate.cli import main as cli_main
from curate.engine import LocalEngine
from curate.schema import STAGES
from stats.hist import LOG_EDGES
from stats.report import build_report
from tests.helpers import read_parts, recipe, run
from tests.stages.test_exact_dedup import planted_corpus
from tests.stats import synthetic
from tests.stats.conftest import upload_tree


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """A real ingest + exact_dedup run on the planted-duplicates corpus, plus one ingest drop (empty file)."""
    root = tmp_path_factory.mktemp("stats_run")
    sources, _ = planted_corpus(root)
    (root / "tree/empty.py").write_text("  \n")
    run(recipe(sources, ingest={"partition_bytes": 1024}), root / "w", LocalEngine(), ["ingest", "exact_dedup"])
    return root / "w"


@pytest.fixture(scope="module")
def full_run(base_run, tmp_path_factory) -> Path:
    w = tmp_path_factory.mktemp("stats_full") / "w"
    shutil.copytree(base_run, w)
    synthetic.full_run(w)
    return w


@pytest.fixture(scope="module")
def full_report(full_run, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("stats_out") / "report"
    return build_report(str(full_run), str(out))["stats"], out


# ------------------------------------------------------------------ independent recomputation
def rows_of(directory: Path) -> list[dict]:
    t = read_parts(directory)
    return t.to_pylist() if t.num_columns else []


def expected_funnel(w: Path) -> list[dict]:
    out = []
    for stage in (s for s in STAGES if (w / s / "_manifest.json").exists()):
        kept, dropped = rows_of(w / stage), rows_of(w / stage / "dropped")
        for source in sorted({r["source"] for r in kept + dropped}):
            k = [r for r in kept if r["source"] == source]
            d = [r for r in dropped if r["source"] == source]
            by_reason = Counter(r["drop_reason"] for r in d)
            bytes_by_reason = Counter()
            for r in d:
                bytes_by_reason[r["drop_reason"]] += r["bytes"]
            bytes_kept = sum(len(r["text"].encode()) for r in k)
            out.append({"stage": stage, "source": source, "docs_in": len(k) + len(d), "docs_kept": len(k),
                        "docs_dropped": dict(sorted(by_reason.items())), "bytes_in": bytes_kept + sum(bytes_by_reason.values()),
                        "bytes_kept": bytes_kept, "bytes_dropped": dict(sorted(bytes_by_reason.items()))})
    return out


def expected_sums(rows: list[dict], keys: tuple[str, ...]) -> list[dict]:
    acc = defaultdict(lambda: Counter())
    for r in rows:
        key = tuple(r[k] or "" for k in keys)
        acc[key].update({"docs": 1, "bytes": len(r["text"].encode()), "chars": len(r["text"])})
        if "n_tokens" in r:
            acc[key]["tokens"] += r["n_tokens"]
    fields = ["docs", "bytes", "chars"] + (["tokens"] if rows and "n_tokens" in rows[0] else [])
    return [{**dict(zip(keys, k)), **{f: v[f] for f in fields}} for k, v in sorted(acc.items())]


def assert_hist(hists: dict, kind: str, values: list[float]) -> None:
    if not values:  # no value of this kind (all null): no histogram
        assert kind not in hists
        return
    h = hists[kind]
    counts, _ = np.histogram(values, bins=np.asarray(h["edges"], dtype=float))
    assert h["counts"] == counts.tolist() and h["total"] == len(values) == sum(h["counts"])


# ------------------------------------------------------------------ tests
def test_funnel_equals_parts(full_report, full_run):
    stats, _ = full_report
    assert stats["funnel"] == expected_funnel(full_run)
    assert all(c["ok"] for c in stats["ledger_checks"])
    ex = next(r for r in stats["funnel"] if r["stage"] == "exact_dedup" and r["source"] == "web")
    assert ex["docs_dropped"] == {"exact_dedup.duplicate": 5}  # the planted copies


def test_dedup_rates_and_extra(full_report, full_run):
    stats, _ = full_report
    for stage in ("exact_dedup", "near_dedup"):
        want = [{"source": r["source"], "docs_in": r["docs_in"], "duplicates": sum(r["docs_dropped"].values()),
                 "rate": sum(r["docs_dropped"].values()) / r["docs_in"]} for r in expected_funnel(full_run) if r["stage"] == stage]
        assert stats["dedup"][stage]["per_source"] == want
    assert stats["dedup"]["exact_dedup"]["extra"]["duplicates"] == 7
    assert stats["dedup"]["near_dedup"]["cluster_sizes"] == [[1, 28], [2, 2]]


def test_profiles_equal_parts(full_report, full_run):
    stats, _ = full_report
    first, final = stats["profiles"]["first"], stats["profiles"]["final"]
    assert (first["stage"], final["stage"]) == ("ingest", "tokenize")
    for p in (first, final):
        rows = rows_of(full_run / p["stage"])
        assert p["documents"] == len(rows)
        assert p["by_lang"] == expected_sums(rows, ("kind", "lang"))
        assert p["by_source"] == expected_sums(rows, ("source", "kind"))
        for kind in ("code", "text"):
            of_kind = [r for r in rows if r["kind"] == kind]
            assert_hist(p["hist"]["chars"], kind, [len(r["text"]) for r in of_kind])
            assert set(p["hist"]["chars"][kind]["edges"]) <= set(LOG_EDGES.tolist())
    for kind in ("code", "text"):
        of_kind = [r for r in rows_of(full_run / "tokenize") if r["kind"] == kind]
        assert_hist(final["hist"]["tokens"], kind, [r["n_tokens"] for r in of_kind])
        assert_hist(final["hist"]["lang_score"], kind, [r["lang_score"] for r in of_kind if r["lang_score"] is not None])
        assert_hist(final["hist"]["quality_score"], kind, [r["quality_score"] for r in of_kind])
        sig = final["signals"][kind]
        assert set(sig) == {"too_short", "odd_length"}  # the numeric signal is not a rule
        for rule in sig:
            fired = sum(r["quality_signals"][rule] for r in of_kind)
            assert sig[rule] == {"fired": fired, "docs": len(of_kind), "rate": fired / len(of_kind)}


def test_code_mix_shares_final_tokens(full_report, full_run):
    stats, _ = full_report
    code = [r for r in rows_of(full_run / "tokenize") if r["kind"] == "code"]
    total = sum(r["n_tokens"] for r in code)
    for row in stats["code_mix"]:
        mine = [r for r in code if (r["lang"] or "") == row["lang"]]
        assert row["tokens_after"] == sum(r["n_tokens"] for r in mine)
        assert row["share"] == row["tokens_after"] / total and row["share_unit"] == "tokens"


def test_examples_are_smallest_id_hashes(full_report, full_run):
    stats, _ = full_report
    for stage in ("ingest", "exact_dedup"):
        dropped = rows_of(full_run / stage / "dropped")
        assert set(stats["examples"][stage]) == {r["drop_reason"] for r in dropped}
        for reason, e in stats["examples"][stage].items():
            mine = sorted((r for r in dropped if r["drop_reason"] == reason),
                          key=lambda r: (xxhash.xxh3_64_intdigest(r["id"].encode()), r["id"]))
            assert e["count"] == len(mine)
            assert e["examples"] == [{"id": r["id"], "source": r["source"], "detail": r["drop_detail"],
                                      "text_head": r["text_head"]} for r in mine[:3]]


def test_output_equals_shards(full_report, full_run):
    stats, _ = full_report
    tables = [ipc.open_stream(p.read_bytes()).read_all() for p in sorted((full_run / "shards").glob("shard-*.arrow"))]
    sums = [{k: sum(t[f"n_{k}_tokens"].to_pylist()) for k in ("code", "text", "pad")} for t in tables]
    code, text, pad = (sum(s[k] for s in sums) for k in ("code", "text", "pad"))
    o = stats["output"]
    assert (o["shards"], o["sequences"], o["seq_len"]) == (2, sum(t.num_rows for t in tables), synthetic.SEQ_LEN)
    assert o["tokens"] == {"code": code, "text": text, "padding": pad, "total": code + text}
    assert o["ratio_code_text"] == code / text
    ratios = [s["code"] / s["text"] for s in sums]
    assert o["ratio_per_shard"] == {"min": min(ratios), "max": max(ratios)}
    assert o["padding_fraction"] == pad / (code + text + pad)
    starts = [b for t in tables for seq in t["doc_starts"].to_pylist() for b in seq]
    ids = [i for t in tables for seq in t["doc_ids"].to_pylist() for i in seq]
    assert (o["pieces"], o["documents_started"], o["continuation_pieces"]) == (len(starts), sum(starts), starts.count(False))
    assert o["documents_split"] == len({i for i, s in zip(ids, starts) if not s}) == 1
    assert o["target_ratio"] == 10.0
    assert all(c["ok"] for c in o["checks"]) and {c["figure"] for c in o["checks"]} >= {"sequences", "code", "text", "padding"}


def test_output_check_flags_a_manifest_that_disagrees(base_run, tmp_path):
    w = tmp_path / "w"
    shutil.copytree(base_run, w)
    synthetic.write_shards(w, {"totals": {"sequences": 6}})
    stats = build_report(str(w), str(tmp_path / "r"))["stats"]
    seq = next(c for c in stats["output"]["checks"] if c["figure"] == "sequences")
    assert seq == {"figure": "sequences", "shards": 5, "manifest": 6, "ok": False}


def test_run_card_from_manifests(full_report, full_run):
    stats, _ = full_report
    manifests = [json.loads((full_run / s / "_manifest.json").read_text()) for s in ("ingest", "exact_dedup")]
    card = stats["run"]
    assert card["recipe"] == manifests[0]["recipe"] and card["recipe"]["name"] == "t"
    assert len(card["recipe_hashes"]) == 2  # the hand-made stages claim another recipe: the report says so
    for m, s in zip(manifests, card["stages"]):
        assert (s["stage"], s["seconds"], s["started_at"]) == (m["stage"], m["seconds"], m["started_at"])
        assert s["bytes_per_second"] == round(m["totals"]["bytes_in"] / m["seconds"], 1)
    assert card["tokenizer"] == {"path": "assets/demo-tokenizer.json", "sha256": "ab" * 32, "vocab_size": 100, "eos_id": 0}


def test_partial_run_names_missing_stages(base_run, tmp_path):
    w = tmp_path / "w"
    shutil.copytree(base_run / "ingest", w / "ingest")
    result = build_report(str(w), str(tmp_path / "r"))
    assert result["stats"]["coverage"] == {"present": ["ingest"], "missing": list(STAGES[1:])}
    assert "output" not in result["stats"] and "exact_dedup" not in result["stats"]["dedup"]
    md = (tmp_path / "r/report.md").read_text()
    assert "Missing (no manifest in the work directory): exact_dedup, near_dedup" in md
    assert "No shards yet" in md


def test_ledger_mismatch_is_reported(base_run, tmp_path):
    w = tmp_path / "w"
    shutil.copytree(base_run, w)
    m = json.loads((w / "exact_dedup/_manifest.json").read_text())
    m["ledger"]["web"]["docs_kept"] += 1
    (w / "exact_dedup/_manifest.json").write_text(json.dumps(m))
    stats = build_report(str(w), str(tmp_path / "r"))["stats"]
    bad = [c for c in stats["ledger_checks"] if not c["ok"]]
    assert [c["stage"] for c in bad] == ["exact_dedup"] and bad[0]["differences"][0].startswith("web/kept: manifest")
    assert "LEDGER MISMATCH" in (tmp_path / "r/report.md").read_text()


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.refs, self.open = Counter(), [], []

    def handle_starttag(self, tag, attrs):
        self.tags[tag] += 1
        self.refs += [(tag, k, v) for k, v in attrs if k in ("src", "href", "srcset", "action", "data")]
        if tag not in ("meta", "img", "br", "hr", "link"):
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open.pop() == tag, f"unbalanced </{tag}>"


def test_html_is_self_contained_and_pngs_are_titled_images(full_report):
    _, out = full_report
    page = (out / "report.html").read_text()
    parser = _Refs()
    parser.feed(page)
    parser.close()
    assert parser.open == [] and parser.tags["script"] == parser.tags["link"] == parser.tags["iframe"] == 0
    assert "http://" not in page and "https://" not in page and "url(" not in page
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["funnel.png", "lang_score.png", "length_chars.png", "length_tokens.png", "near_dedup_cluster_sizes.png",
                    "quality_score.png", "shard_ratios.png"]
    srcs = [v for tag, k, v in parser.refs if tag == "img" and k == "src"]
    assert len(srcs) == len(pngs) and all(v.startswith("data:image/png;base64,") for v in srcs)
    import base64

    inlined = {base64.b64decode(v.split(",", 1)[1]) for v in srcs}
    assert inlined == {(out / n).read_bytes() for n in pngs}
    titles = {}
    for name in pngs:
        img = Image.open(io.BytesIO((out / name).read_bytes()))
        img.verify()
        assert img.format == "PNG" and img.size == (700, 360) and "Software" not in img.info
        titles[name] = img.info["Title"]
    assert titles["funnel.png"] == "Funnel: documents and bytes kept per stage"
    assert titles["length_tokens.png"] == "Document length in tokens (tokenize output)"
    md = (out / "report.md").read_text()
    assert all(f"]({n})" in md for n in pngs)


def test_same_artifacts_give_identical_files(full_run, full_report, tmp_path):
    _, out = full_report
    moved = tmp_path / "elsewhere"
    shutil.copytree(full_run, moved, ignore=shutil.ignore_patterns("report"))
    build_report(str(moved), str(tmp_path / "again"))
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in (tmp_path / "again").iterdir())
    assert all((out / n).read_bytes() == (tmp_path / "again" / n).read_bytes() for n in names)


def test_report_from_s3_equals_local(full_run, full_report, stats_s3, tmp_path):
    endpoint, client = stats_s3
    _, out = full_report
    upload_tree(client, "runs", "demo/w", full_run)
    build_report("s3://runs/demo/w", str(tmp_path / "from_s3"), endpoint_url=endpoint)
    for p in out.iterdir():
        assert (tmp_path / "from_s3" / p.name).read_bytes() == p.read_bytes(), p.name
    # default output folder: WORKDIR/report/ in the bucket
    assert cli_main(["stats", "s3://runs/demo/w", "--endpoint-url", endpoint]) == 0
    body = client.get_object(Bucket="runs", Key="demo/w/report/stats.json")["Body"].read()
    assert body == (out / "stats.json").read_bytes()


def test_cli_writes_into_workdir_report(base_run, tmp_path, capsys):
    w = tmp_path / "w"
    shutil.copytree(base_run, w)
    assert cli_main(["stats", str(w)]) == 0
    assert {"report.md", "report.html", "stats.json", "funnel.png"} <= {p.name for p in (w / "report").iterdir()}
    assert "missing: near_dedup" in capsys.readouterr().out
    assert cli_main(["stats", str(tmp_path / "nothing")]) == 2


def test_rule_rates_per_kind_from_the_quality_ledger():
    from stats.collect import rule_rates

    ledger = {"web": {"docs_in": 10, "docs_dropped": {"quality.a": 2, "quality.b": 1}},
              "news": {"docs_in": 30, "docs_dropped": {"quality.a": 4}},
              "stack": {"docs_in": 50, "docs_dropped": {"quality.code_c": 5}}}
    profiles = {"first": {"by_source": [{"source": "web", "kind": "text"}, {"source": "news", "kind": "text"},
                                        {"source": "stack", "kind": "code"}]}}
    assert rule_rates({"ledger": ledger}, profiles) == [
        {"kind": "code", "reason": "quality.code_c", "dropped": 5, "docs_in": 50, "rate": 0.1},
        {"kind": "text", "reason": "quality.a", "dropped": 6, "docs_in": 40, "rate": 0.15},
        {"kind": "text", "reason": "quality.b", "dropped": 1, "docs_in": 40, "rate": 0.025}]
    assert rule_rates(None, profiles) is None


def test_credentials_in_a_workdir_uri_are_refused_without_echo(capsys):
    from curate.cli import main

    assert main(["stats", "s3://AKIDSECRET:hunter2@bucket/run"]) == 2
    err = capsys.readouterr().err
    assert "credentials in the URI are refused" in err and "hunter2" not in err and "AKIDSECRET" not in err
