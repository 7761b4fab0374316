"""Architecture rules, checked on the source: Ray only in the engine, no I/O in stages, stats engine-free."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IO_MODULES = {"os", "io", "shutil", "smart_open", "pathlib", "glob", "requests", "urllib", "boto3", "ray",
              "pyarrow.parquet", "pyarrow.fs", "pyarrow.dataset", "subprocess", "socket"}
IO_CALLS = {"open"}


def imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def py_files(*dirs: str) -> list[Path]:
    return [p for d in dirs for p in sorted((ROOT / d).rglob("*.py"))]


def test_ray_is_imported_only_by_the_engine():
    offenders = [str(p.relative_to(ROOT)) for p in py_files("curate", "stats")
                 if p != ROOT / "curate/engine.py" and any(n == "ray" or n.startswith("ray.") for n in imports(p))]
    assert offenders == []


def test_enry_is_imported_only_by_the_linguist_module():
    offenders = [str(p.relative_to(ROOT)) for p in py_files("curate", "stats", "tests")
                 if p != ROOT / "curate/sources/linguist.py" and any(n.split(".")[0] == "enry" for n in imports(p))]
    assert offenders == []


def test_stages_do_no_io():
    offenders = []
    for p in py_files("curate/stages"):
        bad = [n for n in imports(p) if n in IO_MODULES or n.split(".")[0] in {"smart_open", "ray", "boto3"}]
        calls = [n.func.id for n in ast.walk(ast.parse(p.read_text()))
                 if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in IO_CALLS]
        if bad or calls:
            offenders.append((str(p.relative_to(ROOT)), bad, calls))
    assert offenders == []


def test_stats_does_not_import_the_engine():
    forbidden = {"curate.engine", "curate.pipeline", "curate.tasks", "curate.workers", "ray"}
    offenders = [(str(p.relative_to(ROOT)), n) for p in py_files("stats") for n in imports(p)
                 if any(n == f or n.startswith(f + ".") for f in forbidden)]
    assert offenders == []


def test_every_benchmark_module_imports_and_has_a_main():
    """`make bench` is not run by the tests; at least every benchmark must import and expose main()."""
    import importlib
    import pkgutil

    import curate.bench

    names = [m.name for m in pkgutil.iter_modules(curate.bench.__path__) if not m.name.startswith("_")]
    assert {"foundation", "language", "near_dedup", "pack", "publish", "scale"} <= set(names)
    for name in names:
        assert callable(importlib.import_module(f"curate.bench.{name}").main), name
