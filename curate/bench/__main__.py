"""`python -m curate.bench [NAME ...]`: runs every benchmark module's main() (or only the named ones).

Modules that set `IN_MAKE_BENCH = False` (long ones, e.g. `scale`) run only when named."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import curate.bench


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(curate.bench.__path__) if not m.name.startswith("_"))
    default = [n for n in names if getattr(importlib.import_module(f"curate.bench.{n}"), "IN_MAKE_BENCH", True)]
    selected = argv or default
    for name in selected:
        if name not in names:
            print(f"unknown benchmark {name!r} (available: {', '.join(names)})", file=sys.stderr)
            return 2
    for name in selected:
        print(f"\n== {name} ==", flush=True)
        sys.argv = [sys.argv[0], name]  # as `python -m curate.bench NAME`: a module that reads its own options sees none
        importlib.import_module(f"curate.bench.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
