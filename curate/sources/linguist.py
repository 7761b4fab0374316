"""GitHub Linguist's language data through go-enry (`enry-python`): the only module that imports `enry`.

The Stack v2 assigned languages with go-enry, and The Stack's `lang` column uses Linguist's names, so a
code document's language here is Linguist's canonical name (`Tcl`, `Vue`, `Vim Script`, `M4Sugar`).

- `detect(path, content)`: enry's answer (`enry.get_language`): its strategies in Linguist's order,
  modeline, file name, shebang, extension, then content (heuristics such as `.h` C / C++ / Objective-C,
  `.m` Objective-C / MATLAB, `.pl` Perl / Prolog, and the Bayesian classifier among the remaining
  candidates). Most files are settled by cheaper calls into the same strategies (`_first_strategies`),
  with the same answers (checked by a test, and on 11,089 real files). None when enry cannot
  classify the file, and also for `Text`: that is Linguist's name for "plain text, nothing more specific"
  (`.txt`, `README` without extension is not even that), so it says no more than None and a code tree reads
  such files only with `include_unknown`, as before. Other prose and data languages (Markdown, JSON, CSV)
  are returned as they are: `language.code_languages` decides whether they are kept.
- `by_name(path)` / `by_head(head)`: the cheap part of the strategy, for listing a tree without reading
  every file (see `curate.sources.code_tree`).
- `languages()`: every Linguist language with its type (programming, markup, data, prose), from
  `curate/rules/linguist_languages.csv`. enry has no call that lists its languages, so the table is
  generated from the installed enry (`python -m curate.sources.linguist --regenerate`, see `generate`)
  and a test checks every row against enry. `canonical(name)` resolves any spelling (case-insensitive,
  or an alias such as `viml`, `cpp`, `protobuf` through enry's modeline alias table).
- `generated_flags` / `vendored_flags`: Linguist's generated-file rules (protobuf and other generator
  headers, minified JS/CSS, lockfiles) and vendored-path rules (`vendor/`, `node_modules/`,
  `third_party/`), vectorised over Arrow columns for the quality signals.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from importlib import resources

import numpy as np
import pyarrow as pa

TABLE = "linguist_languages.csv"
TYPES = ("programming", "markup", "data", "prose")
#: Linguist's catch-all for plain text: no language to select by, so treated as unclassified.
NOT_A_LANGUAGE = frozenset({"", "Text"})
#: How much of a file's start `by_head` needs: a shebang is the first line, an Emacs modeline is on the
#: first line and a Vim modeline on the first five (Linguist also looks at the last five; see code_tree).
HEAD_BYTES = 1024
#: The most of a file that enry's content strategies are given (see `_bounded`).
CONTENT_BYTES = 16 * 1024
#: enry's binary test: a NUL byte in the first 8000 bytes.
_BINARY_SNIFF = 8000
#: enry looks for modelines in the first and the last five lines; a shebang is the first line.
_MODELINE_SCOPE = 5
_SHEBANG_LINE = 1024
#: A superset of what enry's modeline regexes match: an Emacs modeline is `-*- ... -*-` on one line, a Vim
#: one has `vi:` / `vim:` / `Vim600:` / `ex:` and `ft=` / `filetype=` / `syntax=`. Two linear searches
#: (`_may_hold_modeline`): one pattern spanning both parts would rescan a long line from every `ex:`.
#: The Vim patterns are searched in the ASCII-lowercased text: the same matches as re.IGNORECASE on bytes,
#: which makes Python's regex engine 5-10x slower (13 ms on a 400 KiB minified stylesheet).
_EMACS_MARK = re.compile(rb"-\*-[^\n]*-\*-")
_VIM_MARK = re.compile(rb"(?:vi|ex)(?:m[<=>]?[0-9]*)?:")
_VIM_FILETYPE = re.compile(rb"(?:ft|filetype|syntax)[ \t]*=")
#: Answers of enry's whole strategy are cached by base name and content digest (`_whole_strategy`).
_CONTENT_CACHE_SIZE = 8192
#: After this many files of one ambiguous extension, an extension whose heuristics settled fewer than
#: _SETTLED_SHARE of them goes straight to enry's whole strategy (see `_heuristics_worth_it`).
_SETTLED_SAMPLE = 16
_SETTLED_SHARE = 0.25


#: The default `language.code_languages`: every language of these Linguist types ...
DEFAULT_CODE_TYPES = ("programming", "markup")
#: ... plus the data and prose languages that code corpora keep (The Stack and StarCoder kept configuration
#: and documentation files): hand-written configuration and manifests (JSON, YAML, TOML, INI, XML), query
#: code that Linguist files under data (SQL), interface definitions (Protocol Buffer, GraphQL) and software
#: documentation (Markdown, reStructuredText, AsciiDoc). Not tables, images or dumps (CSV, TSV, SVG, Diff),
#: nor `Text`. Every language of the old extension map is in this default.
DEFAULT_CODE_NAMES = ("JSON", "JSON with Comments", "JSON5", "YAML", "TOML", "INI", "XML", "SQL",
                      "Protocol Buffer", "GraphQL", "Markdown", "reStructuredText", "AsciiDoc")


def _enry():
    import enry  # imported on first use: it loads go-enry's shared library (a Go runtime)

    return enry


# ---------------------------------------------------------------------------------------------- detection
def detect(path: str, content: bytes) -> str | None:
    """Linguist's language of a file from its path and content; None when enry cannot classify it."""
    lang = _first_strategies(path or "", content)
    if lang is None:  # ambiguous or unknown by name: enry's whole strategy, heuristics and classifier
        lang = _whole_strategy(path or "", _bounded(content))
    return None if lang in NOT_A_LANGUAGE else lang


def _whole_strategy(path: str, content: bytes) -> str:
    """`enry.get_language(path, content)`, cached by the base name and the content's digest (enry's
    strategies read only the base name: file name, extension, manpage suffix; and the content).

    Why: this path costs 0.1-1 ms a file (the classifier), and copies are common in code (vendored
    libraries, the same file in several directories: tcllib repeats 14 of its 181 `.inc` files)."""
    key = (path.rsplit("/", 1)[-1], hashlib.sha1(content).digest())
    found = _CONTENT_ANSWERS.get(key)
    if found is None:
        found = _enry().get_language(path, content)
        if len(_CONTENT_ANSWERS) >= _CONTENT_CACHE_SIZE:
            _CONTENT_ANSWERS.clear()  # bounded; a worker meets copies mostly close together
        _CONTENT_ANSWERS[key] = found
    return found


_CONTENT_ANSWERS: dict[tuple[str, bytes], str] = {}
#: Per tuple of extension candidates: [files whose heuristics settled, files they did not].
_HEURISTICS_OUTCOMES: dict[tuple[str, ...], list[int]] = {}


def clear_caches() -> None:
    """Forget every cached answer and the extensions' heuristic outcomes (benchmarks start cold)."""
    _name_candidates.cache_clear()
    _extension_candidates.cache_clear()
    _CONTENT_ANSWERS.clear()
    _HEURISTICS_OUTCOMES.clear()


def _heuristics_worth_it(candidates: tuple[str, ...]) -> bool:
    """Whether to try enry's heuristics alone before its whole strategy, for an ambiguous extension.

    Why: when the heuristics leave several candidates, the whole strategy runs them again before the
    classifier, so trying them first costs twice (tcllib's `.inc`: 12 candidates, settled for 13 of 181
    files, 0.3 ms of heuristics wasted per file). Either path gives enry's answer; this only picks the
    cheaper one from what the extension's first files showed."""
    settled, unsettled = _HEURISTICS_OUTCOMES.get(candidates, (0, 0))
    return settled + unsettled < _SETTLED_SAMPLE or settled >= _SETTLED_SHARE * (settled + unsettled)


def _bounded(content: bytes) -> bytes:
    """At most CONTENT_BYTES, cut at a line end: what enry's content heuristics and classifier read.

    Why: enry's cost grows with the bytes it is given (copies, regexes over the whole file, a Bayesian
    classifier at ~1 us per byte and candidate); Linguist's own classifier reads only the first 50 KiB.
    On 11,089 real files the first CONTENT_BYTES gave the whole file's answer every time (README); the
    modeline at the file's end was already read by `_first_strategies`."""
    if len(content) <= CONTENT_BYTES:
        return content
    end = content.rfind(b"\n", 0, CONTENT_BYTES)
    return content[: end + 1 if end > 0 else CONTENT_BYTES]


def _first_strategies(path: str, content: bytes) -> str | None:
    """enry's answer when its modeline, file-name, shebang or extension strategy gives exactly one
    language (enry returns that one), computed from cached name lookups; None: ask enry itself.

    Why: enry's whole call costs 50-150 us a file (the content is copied and scanned by each strategy),
    as much as ingest spends on a small file; most files are settled by their name. A test checks this
    agrees with enry's `get_language` on every file it writes."""
    if content.find(b"\0", 0, _BINARY_SNIFF) >= 0:
        return None  # enry calls it binary and answers nothing
    ends = _header_and_footer(content)
    if _may_hold_modeline(ends):
        lang = _enry().get_language_by_modeline(ends).language
        if lang:
            return lang
    name = path.rsplit("/", 1)[-1]
    by_filename, by_extension = _name_candidates(name)
    if by_filename:
        return by_filename[0] if len(by_filename) == 1 else None
    if content.startswith(b"#!"):
        by_shebang = _enry().get_languages_by_shebang(name, content[:_SHEBANG_LINE])
        if by_shebang:
            return by_shebang[0] if len(by_shebang) == 1 else None
    if len(by_extension) <= 1:
        return by_extension[0] if by_extension else None
    if not _heuristics_worth_it(by_extension):
        return None  # its heuristics rarely settle this extension: enry's whole strategy at once
    # enry's XML and manpage strategies come between the extension and the heuristics, but they only
    # narrow the classifier's candidates: the heuristics' rules are chosen by the extension and their
    # single answer is enry's answer whatever those strategies said.
    by_heuristics = _heuristics(name, _bounded(content))
    outcomes = _HEURISTICS_OUTCOMES.setdefault(by_extension, [0, 0])
    outcomes[len(by_heuristics) != 1] += 1
    return by_heuristics[0] if len(by_heuristics) == 1 else None  # none or several: the classifier decides


def _heuristics(name: str, content: bytes) -> list[str]:
    """enry's content strategy (Linguist's heuristics.yml) alone: a third of the cost of its whole
    strategy, which repeats the name strategies and copies the content for each.

    No candidates are passed: go-enry's content strategy picks its rules by the extension and does not
    read them (the same answers with and without on 7,447 real ambiguous files), and converting them
    cost as much as the call itself (7 against 13-23 us on a small file)."""
    from enry.definitions import lib
    from enry.utils import go_str_slice_to_py

    return go_str_slice_to_py(lib, lib.GetLanguagesByContent(name.encode(), content, len(content), _null()))


def _may_hold_modeline(text: bytes) -> bool:
    if _EMACS_MARK.search(text):
        return True
    if b"=" not in text:  # every Vim modeline sets `ft=` / `filetype=` / `syntax=`
        return False
    lowered = text.lower()
    return bool(_VIM_MARK.search(lowered) and _VIM_FILETYPE.search(lowered))


def _header_and_footer(content: bytes) -> bytes:
    """The lines enry searches for modelines: the first and the last five, or all of a file with fewer
    than ten line ends (found by position, without counting every line end of a long file)."""
    head = -1
    for _ in range(_MODELINE_SCOPE):
        head = content.find(b"\n", head + 1)
        if head < 0:
            return content
    foot = len(content)
    for _ in range(_MODELINE_SCOPE):
        foot = content.rfind(b"\n", 0, foot)
    if foot <= head:  # the 5th line end from the end is not after the 5th from the start: < 10 line ends
        return content
    return content[: head + 1] + content[foot:]


@lru_cache(maxsize=65536)
def _name_candidates(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(file-name candidates, extension candidates) of a base name, as enry's strategies give them.
    Linguist's name rules read the base name only; trees repeat base names, and planning lists a tree
    twice, so the lookups are cached."""
    enry = _enry()
    return tuple(enry.get_languages_by_filename(name)), _extension_candidates(name[name.find("."):].lower()
                                                                            if "." in name else "")


@lru_cache(maxsize=4096)
def _extension_candidates(suffix: str) -> tuple[str, ...]:
    """enry's extension candidates of a lowercased suffix from the name's first dot (`.d.ts`, `.tcl`):
    all that its extension strategy reads, so one lookup serves every file with that suffix."""
    if not suffix:
        return ()
    from enry.definitions import lib  # enry-python 0.2 wraps no call for the extension candidates
    from enry.utils import go_str_slice_to_py

    return tuple(go_str_slice_to_py(lib, lib.GetLanguagesByExtension(b"f" + suffix.encode(), b"", 0, _null())))


def _null():
    from enry._c_enry import ffi

    return ffi.NULL


def fill_missing(langs: pa.Array, paths: pa.Array, texts: pa.Array) -> pa.Array:
    """`langs` with each null filled by `detect(path, text)` where the text is there (a null path: content
    strategies only, i.e. shebang and modeline); rows that enry cannot classify stay null."""
    langs, paths, texts = (c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in (langs, paths, texts))
    out = langs.to_pylist()
    todo = [i for i, lang in enumerate(out) if lang is None and texts[i].is_valid]
    for i in todo:
        out[i] = detect(paths[i].as_py() or "", _bytes(texts[i].as_py()))
    return pa.array(out, pa.string()) if todo else langs


def by_name(path: str) -> str | None:
    """A language the file name alone gives (its file name's, else its extension's first candidate), or
    None; `detect` decides among ambiguous candidates. An extension that may be `Text` (`.txt`: Text,
    Adblock Filter List, Vim Help File) names no language: such a file is plain text unless its content
    says otherwise, and only reading it can tell."""
    by_filename, by_extension = _name_candidates(path.rsplit("/", 1)[-1])
    candidates = by_filename or by_extension
    return None if not candidates or NOT_A_LANGUAGE.intersection(candidates) else candidates[0]


def by_head(head: bytes) -> str | None:
    """The language a file's first bytes name by a shebang (`#!/usr/bin/env tclsh`) or a modeline."""
    enry = _enry()
    lang = ""
    if head.startswith(b"#!"):  # Linguist reads a shebang on the first line only
        lang = enry.get_language_by_shebang(head).language
    if not lang and _may_hold_modeline(head):  # enry's modeline regexes are slow: ask only when one may be there
        lang = enry.get_language_by_modeline(head).language
    return None if lang in NOT_A_LANGUAGE else lang


# ---------------------------------------------------------------------------------------------- the table
@lru_cache(maxsize=1)
def languages() -> dict[str, tuple[str, str]]:
    """Lowercased name -> (canonical name, type) for every Linguist language enry knows."""
    with resources.files("curate.rules").joinpath(TABLE).open(encoding="utf-8", newline="") as fh:
        return {row["name"].lower(): (row["name"], row["type"]) for row in csv.DictReader(fh)}


@lru_cache(maxsize=4096)
def canonical(name: str) -> str | None:
    """Linguist's canonical spelling of a language name or alias, case-insensitively; None if unknown.
    Aliases (`viml`, `cpp`, `protobuf`, `sh`) are resolved by enry's modeline alias table."""
    if not name or not name.strip():
        return None
    found = languages().get(name.lower())
    if found:
        return found[0]
    if re.fullmatch(r"[\w+#.-]+", name):  # a modeline word cannot hold spaces or quotes
        alias = _enry().get_language_by_modeline(f"-*- mode: {name.lower()} -*-\n".encode()).language
        if alias and alias.lower() in languages():
            return languages()[alias.lower()][0]
    return None


def language_type(name: str) -> str:
    """programming, markup, data or prose; `unknown` for a name Linguist does not know."""
    found = canonical(name)
    return languages()[found.lower()][1] if found else "unknown"


def names_of_types(types: Iterable[str]) -> set[str]:
    """The canonical names of every language of the given Linguist types."""
    wanted = set(types)
    return {name for name, kind in languages().values() if kind in wanted}


class LanguageSet(frozenset):
    """Lowercased language names; membership also accepts an alias of a member (`viml` for `Vim Script`,
    The Stack v1's spelling), resolved once per distinct name."""

    def __contains__(self, name) -> bool:
        if frozenset.__contains__(self, name):
            return True
        found = canonical(name) if isinstance(name, str) else None
        return found is not None and frozenset.__contains__(self, found.lower())


def selection(types: Iterable[str], names: Iterable[str]) -> LanguageSet:
    """The languages of `types` and the `names` (as written, and in Linguist's spelling), lowercased."""
    chosen = names_of_types(types) | set(names) | {c for c in map(canonical, names) if c}
    return LanguageSet(name.lower() for name in chosen)


# ---------------------------------------------------------------------------------------------- flags
def _bytes(text: str | None) -> bytes:
    return b"" if text is None else text.encode("utf-8", "surrogatepass")


def generated_flags(paths: pa.Array | pa.ChunkedArray, texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """True where Linguist's generated-file rules match (path and content); False for a null path."""
    is_generated = _enry().is_generated
    return np.fromiter((p is not None and is_generated(p, _bytes(t)) for p, t in zip(paths.to_pylist(), texts.to_pylist())),
                       dtype=bool, count=len(paths))


def vendored_flags(paths: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """True where Linguist's vendored-path rules match; False for a null path."""
    is_vendor = _enry().is_vendor
    return np.fromiter((p is not None and is_vendor(p) for p in paths.to_pylist()), dtype=bool, count=len(paths))


# ---------------------------------------------------------------------------------------------- generation
def generate(library: str | None = None) -> list[tuple[str, str]]:
    """(name, type) of every language the installed enry knows, sorted by name.

    enry lists no languages, but its shared library holds every name as a string constant (Go stores them
    back to back, without separators). Every substring of the library's read-only data that could be a
    name is asked for its type: a canonical name has one, anything else is `unknown`. Every substring that
    could be an extension (`.tcl`) is also asked for its languages, so that a name stored in a way the
    scan cannot see is still found through its extension.
    """
    enry = _enry()
    data = _rodata(library or _library_path())
    names = {c for c in _substrings(data, rb"[A-Za-z0-9 +#'*._()/!,-]+", rb"[A-Za-z0-9]", 40)
             if enry.get_language_type(c) != "unknown"}
    for ext in set(_substrings(data, rb"[A-Za-z0-9_+#.-]+", rb"\.", 24)):
        names.update(enry.get_languages("f" + ext, b""))
    return sorted(((n, enry.get_language_type(n)) for n in names), key=lambda r: r[0].lower())


def _library_path() -> str:
    import os

    directory = os.path.dirname(_enry().__file__)
    return next(os.path.join(directory, f) for f in sorted(os.listdir(directory))
                if f.startswith("libenry.") and f.endswith((".so", ".dylib", ".dll")))


def _rodata(path: str) -> bytes:
    """The `.rodata` section of an ELF library (where Go keeps string constants), else the whole file."""
    import struct

    with open(path, "rb") as fh:
        data = fh.read()
    if data[:4] != b"\x7fELF" or data[4] != 2:  # not a 64-bit ELF: scan everything (slower, same answer)
        return data
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    strtab = sections[shstrndx][4]
    for name_off, _type, _flags, _addr, offset, size in sections:
        if data[strtab + name_off:data.index(b"\0", strtab + name_off)] == b".rodata":
            return data[offset:offset + size]
    return data


def _substrings(data: bytes, run_chars: bytes, start_chars: bytes, max_len: int) -> Iterator[str]:
    """Every substring (up to max_len characters) of every run of `run_chars` that starts with one of
    `start_chars` and does not end in a space; repeats included (a set would take gigabytes)."""
    starts = re.compile(start_chars)
    for m in re.finditer(run_chars, data):
        run = m.group().decode("ascii")
        for i in (s.start() for s in starts.finditer(m.group())):
            yield from (run[i:j] for j in range(i + 1, min(len(run), i + max_len) + 1) if run[j - 1] != " ")


def write_table(rows: list[tuple[str, str]]) -> str:
    path = str(resources.files("curate.rules").joinpath(TABLE))
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["name", "type"])
        writer.writerows(rows)
    return path


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m curate.sources.linguist", description=__doc__.splitlines()[0])
    parser.add_argument("--regenerate", action="store_true", help=f"rewrite curate/rules/{TABLE} from the installed enry")
    args = parser.parse_args(argv)
    if not args.regenerate:
        parser.print_help()
        return 0
    rows = generate()
    print(f"{write_table(rows)}: {len(rows)} languages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
