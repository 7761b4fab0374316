"""redact's secret patterns against Yelp detect-secrets (what BigCode used), on the same standard-library
code, one process. detect-secrets is not a dependency: install it anywhere and put it on PYTHONPATH
(`pip install --target /tmp/ds detect-secrets==1.5.0; PYTHONPATH=/tmp/ds python -m curate.bench
secrets_compare`). Measured: its `scan_line` with BigCode's plugin set over every line, then over only the
lines redact's RE2 secret prefilter flags; and redact (secrets only) on the same documents.
Not in `make bench` (needs the extra package)."""

from __future__ import annotations

import re
import time

IN_MAKE_BENCH = False
PLUGINS = [{"name": n} for n in ("AWSKeyDetector", "GitHubTokenDetector", "SlackDetector", "PrivateKeyDetector",
                                  "JwtTokenDetector", "KeywordDetector", "BasicAuthDetector")] + [
    {"name": "Base64HighEntropyString", "limit": 4.5}, {"name": "HexHighEntropyString", "limit": 3.0}]


def main(target_mb: float = 2) -> None:
    import pyarrow as pa
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import transient_settings

    from curate.bench.row_stages import code_docs
    from curate.stages import redact as R

    docs = code_docs(target_mb)
    mb = sum(len(d.encode()) for d in docs) / 1e6
    prefilter = re.compile(R.PREFILTER["secret"])
    with transient_settings({"plugins_used": PLUGINS}):
        for name, keep in (("every line", lambda line: True), ("prefiltered lines", prefilter.search)):
            start, found = time.perf_counter(), 0
            for doc in docs:
                for line in doc.splitlines():
                    if keep(line):
                        found += sum(1 for _ in scan_line(line))
            secs = time.perf_counter() - start
            print(f"detect-secrets scan_line, {name}: {mb:.1f} MB, {mb / secs:.2f} MB/s, {found} findings")
    table = pa.table({"id": [str(i) for i in range(len(docs))], "text": docs})
    R.apply(table, ["secret"], "placeholder", [], 0)  # warm-up
    start = time.perf_counter()
    out = R.apply(table, ["secret"], "placeholder", [], 0)
    secs = time.perf_counter() - start
    found = sum(out["redactions"].combine_chunks().field("secret").to_pylist())
    print(f"curate redact (secrets only): {mb:.1f} MB, {mb / secs:.1f} MB/s, {found} findings")


if __name__ == "__main__":
    main()
