"""No import circle anywhere in curate/ and stats/, counting imports inside functions too (a circle that
only closes at call time still couples the modules); and every module imports on its own."""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for d in ("curate", "stats") for p in sorted((ROOT / d).rglob("*.py"))}


def edges(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports: `import a.b`, `from a import b` (b a module or a name in a)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            out |= {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}
    return {m for m in out if m in known and m != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_known_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle():
    mods = modules()
    graph = {name: edges(name, path, set(mods)) for name, path in mods.items()}
    # package __init__ modules are imported by every submodule's import; the circle rule is about real modules
    graph = {k: {m for m in v if mods[m].name != "__init__.py"} for k, v in graph.items()}
    assert cycles(graph) == []


def test_the_pipeline_names_no_stage_module():
    names = edges("curate.pipeline", ROOT / "curate/pipeline.py", set(modules()))
    assert not {n for n in names if n.startswith(("curate.stages.", "curate.workers.")) or n == "curate.packing"}


OPTIONAL = {"curate.torch_data": "torch"}  # modules that exist for an optional dependency, and need it


def test_every_module_imports():
    for name in modules():
        if name.endswith("__main__"):
            continue
        if name in OPTIONAL and importlib.util.find_spec(OPTIONAL[name]) is None:
            continue
        importlib.import_module(name)
