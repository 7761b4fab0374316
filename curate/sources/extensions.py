"""The extension -> programming language map (names as in The Stack's `lang` column), kept as data."""

from __future__ import annotations

import csv
import os
from functools import lru_cache
from importlib import resources

#: Files recognised by their whole name rather than their extension.
SPECIAL_NAMES = {"makefile": "Makefile", "dockerfile": "Dockerfile", "cmakelists.txt": "CMake"}


@lru_cache(maxsize=1)
def extension_map() -> dict[str, str]:
    with resources.files("curate.rules").joinpath("extensions.csv").open(encoding="utf-8") as fh:
        return {row["extension"].lower(): row["language"] for row in csv.DictReader(fh)}


def language_of(path: str, overrides: dict[str, str] | None = None) -> str | None:
    """Programming language of a file by name; None when the extension is unknown."""
    name = os.path.basename(path).lower()
    if name in SPECIAL_NAMES:
        return SPECIAL_NAMES[name]
    ext = os.path.splitext(name)[1]
    if overrides and ext in {k.lower() for k in overrides}:
        return next(v for k, v in overrides.items() if k.lower() == ext)
    return extension_map().get(ext)


def known_languages() -> set[str]:
    return set(extension_map().values()) | set(SPECIAL_NAMES.values())
