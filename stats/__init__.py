"""Dataset statistics reports: reads a run's artifacts only (manifests, parts, dropped parts, shards),
locally or in object storage, and writes report.md, report.html, stats.json and PNG plots.

It never imports the engine, the pipeline or Ray (tests/test_layering.py), so it works on a finished
run copied from anywhere. Entry point: `stats.report.build_report(workdir, out)` / `curate stats`.
"""
