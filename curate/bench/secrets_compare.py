"""redact's secret detection with Yelp detect-secrets (curate/stages/secrets.py), one process, no Ray
(`python -m curate.bench secrets_compare`; not in `make bench`).

1. Plugin sets on the case table (tests/redact_cases.py), each unioned with redact's own patterns and
   run on every line (no prefilter): precision and recall over the secret cases. Sets: ours (`secrets.PLUGINS`), ours plus BigCode's two
   entropy plugins (Base64 4.5, Hex 3.0; BigCode filtered them with a gibberish model), every plugin.
2. On standard-library code (`code_docs`): how many lines the prefilter flags, the plugin layer's
   throughput on those lines (MB/s and lines/s of flagged lines), and what it reports there.
3. The prefilter's recall on the first `every_line_mb` of it: the plugins on every line; a reported line
   the prefilter did not flag would be a miss.
"""

from __future__ import annotations

import time

IN_MAKE_BENCH = False
ENTROPY = [{"name": "Base64HighEntropyString", "limit": 4.5}, {"name": "HexHighEntropyString", "limit": 3.0}]


def plugin_sets() -> dict[str, list[dict]]:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    from curate.stages import secrets as S

    every = [{"name": c.__name__} for c in get_mapping_from_secret_type_to_class().values()]
    return {"ours": list(S.PLUGINS), "ours + entropy (BigCode)": list(S.PLUGINS) + ENTROPY,
            "every plugin": every}


def case_table(config: dict) -> tuple[float, float]:
    """(precision, recall) of redact's secret type with `config`'s plugins on the case table."""
    from unittest import mock

    from curate.stages import redact as R
    from curate.stages import secrets as S
    from tests.redact_cases import NEGATIVE, POSITIVE

    def run(doc):
        return R.redact_text(doc, {"secret"}, "placeholder", frozenset(), "s")

    # every line reaches every plugin of `config` here (PREFILTER `\S`, no anchors): the entropy plugins have none
    with (mock.patch.object(S, "scan_by_anchor", lambda lines: S.scan_lines(lines.to_pylist(), config)),
          mock.patch.object(S, "PREFILTER", r"\S")):
        tp = sum(1 for k, doc, value in POSITIVE if k == "secret" and value not in run(doc)[0])
        fp = sum(1 for _, doc in NEGATIVE if run(doc)[0] != doc)
    pos = sum(1 for k, _, _ in POSITIVE if k == "secret")
    return tp / max(tp + fp, 1), tp / pos


def main(target_mb: float = 16, every_line_mb: float = 4) -> None:
    import pyarrow as pa

    from curate.bench.row_stages import code_docs
    from curate.stages import secrets as S

    for name, plugins in plugin_sets().items():
        p, r = case_table({"plugins_used": plugins, "filters_used": list(S.FILTERS)})
        print(f"case table, secret, {name:<26} ({len(plugins):>2} plugins): precision {p:.2f} recall {r:.2f}")
    docs = code_docs(target_mb)
    texts = pa.array(docs, pa.large_string())
    mb = sum(len(d.encode()) for d in docs) / 1e6
    every = [line for d in docs for line in d.split("\n")]
    S.scan_lines(["warm-up: imports"])
    start = time.perf_counter()
    owners, _, lines = S.flagged_lines(texts)
    pre = time.perf_counter() - start
    flagged_mb = sum(len(x.encode()) for x in lines.to_pylist()) / 1e6
    print(f"stdlib {mb:.1f} MB, {len(docs)} files, {len(every)} lines: prefilter flags {len(lines)} lines "
          f"({len(set(owners.tolist()))} files, {flagged_mb:.3f} MB) in {pre:.3f} s ({mb / pre:.0f} MB/s)")
    for name, scan in (("every plugin", lambda x: S.scan_lines(x.to_pylist())), ("by anchor", S.scan_by_anchor)):
        best, found = float("inf"), []
        for _ in range(3):
            start = time.perf_counter()
            found = scan(lines)
            best = min(best, time.perf_counter() - start)
        print(f"plugin layer on flagged lines, {name}: best of 3 {best:.3f} s, {flagged_mb / best:.2f} MB/s, "
              f"{len(lines) / best:.0f} lines/s; lines reported: {sum(map(bool, found))}")  # counts only, no value
    every = [line for d in code_docs(every_line_mb) for line in d.split("\n")]
    mb = sum(len(x.encode()) + 1 for x in every) / 1e6
    start = time.perf_counter()
    reported = [line for line, v in zip(every, S.scan_lines(every)) if v]
    secs = time.perf_counter() - start
    missed = [line for line, f in zip(reported, pa.compute.match_substring_regex(pa.array(reported, pa.large_string()),
                                                                                   S.PREFILTER).to_pylist()) if not f]
    print(f"plugin layer on every line: {secs:.1f} s ({mb / secs:.2f} MB/s); lines reported {len(reported)}, "
          f"of which the prefilter missed {len(missed)}")


if __name__ == "__main__":
    main()
