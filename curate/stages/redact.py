"""Stage `redact`: e-mail addresses, IP addresses and secrets are replaced in code and text.

Input: the document schema. Changed column: `text` (each detected value replaced). Added column:
`redactions` (struct of int32 counts: email, ip_address, secret) on every row. No document is dropped, so
no reason code; the ledger counts the bytes the replacements removed or added as `bytes_rewritten`
(the rows carry `bytes_in`, their size before). The original values are never returned, logged or counted
by content: only the counts per type leave this module.

Detectors (`types` picks which run):
    email       local@domain.tld with a country-code or common generic TLD (so `x@self.weight`, matrix
                products in Python, is not an address); kept: example.com/.org/.net and their subdomains
    ip_address  IPv4 and IPv6 that are public (`ipaddress`'s is_global: private, loopback, link-local,
                documentation, reserved ranges and 0.0.0.0 are kept; multicast and netmasks too), not a
                version or a section number (`version 1.2.3.4`, `v1.2.3.4`, `section 8.2.4.44`, a fifth
                component, every part one digit), not a well-known public DNS server
    secret      key shapes: AWS access key ids, GitHub tokens, Slack tokens and webhooks, Google API keys;
                PEM private key blocks; passwords in connection strings (`scheme://user:password@`);
                values assigned to secret-named keys (`api_key = "..."`) that look random (Shannon entropy
                >= 3.5 bits/char, letters and digits)
                and, unioned with these, Yelp detect-secrets' plugins (`curate.stages.secrets`: the plugin set
                and why, JWT, Azure, Stripe, Twilio, keyword assignments, ...) on only the lines its RE2
                prefilter flags
Each type has a cheap RE2 prefilter run by Arrow over the whole batch; only the documents it flags reach
the Python patterns, and only the detectors whose prefilter fired. Overlapping finds: the earlier start
wins, then the secret over the address, then the longer. The recipe's `allow` values are kept as they are.
Replacements: `placeholder` writes <EMAIL>, <IP_ADDRESS>, <SECRET>; `synthetic` writes a fake of the
same shape (an example.com address, a documentation-range IP, a key with the same prefix and character
classes) drawn from (seed, document id, position): never derived from the original, so it leaks nothing.
References: BigCode's PII redaction for StarCoder (Li et al. 2023, Sec. 4.3; bigcode-dataset `pii/`:
regexes for e-mails and IPs, detect-secrets for keys); Yelp detect-secrets' plugin shapes
(AWSKeyDetector, GitHubTokenDetector, SlackDetector, PrivateKeyDetector, entropy plugins).
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.schema import BYTES_IN, DROP_DETAIL, DROP_REASON, ID, TEXT
from curate.stages import secrets
from curate.stagespec import Stage

STAGE = Stage(key="redact", order=70, kind="row", per_source=True,
              summary="e-mails, public IPs and secrets replaced in place, counted per type; no document dropped",
              decide="curate.workers.redact:decide")

TYPES = ("email", "ip_address", "secret")
PLACEHOLDER = {"email": "<EMAIL>", "ip_address": "<IP_ADDRESS>", "secret": "<SECRET>"}
REDACTIONS = "redactions"
REDACTIONS_TYPE = pa.struct([pa.field(t, pa.int32()) for t in TYPES])

_GTLDS = "com|net|org|edu|gov|mil|int|info|biz|name|pro|io|dev|app|ai|co|me|tv|cc|xyz|online|site|tech|cloud|email|mail"
EMAIL = re.compile(r"(?<![\w.+%-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                   rf"(?:{_GTLDS}|[A-Za-z]{{2}})(?![\w-])", re.IGNORECASE)
IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\.?\w)")
IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:.])")
_VERSION_BEFORE = re.compile(r"(?i)(?:version|\bver|\brelease|\bv|section|\bsec|chapter|§|\brfc\s*\d+)[\W_]{0,8}$")
PUBLIC_DNS = frozenset({"8.8.8.8", "8.8.4.4", "1.1.1.1", "1.0.0.1", "9.9.9.9", "149.112.112.112", "208.67.222.222",
                        "208.67.220.220", "2001:4860:4860::8888", "2001:4860:4860::8844", "2606:4700:4700::1111",
                        "2606:4700:4700::1001"})
# secrets: (pattern, group of the value to replace: 0 = the whole match)
SECRETS = (
    (re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY"
                r"(?: BLOCK)?-----"), 0),
    (re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}(?![A-Z0-9])"), 0),
    (re.compile(r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,255})(?![A-Za-z0-9_])"), 0),
    (re.compile(r"(?<![A-Za-z0-9])xox[abposr]-(?:[0-9A-Za-z]+-){1,4}[0-9A-Za-z]{6,}"), 0),
    (re.compile(r"https://hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+"), 0),
    (re.compile(r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])"), 0),
    (re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]{1,20}://[^\s:/@'\"]+:([^\s@/'\"]{1,128})@"), 1),
    # no leading `[\w.-]*`: it would be retried from every position of every word (the slowest step by far)
    (re.compile(r"(?i)(?:secret|token|passwd|password|pwd|api_?key|access_?key|auth_?key|private_?key)"
                r"[\w.-]{0,40}[\"']?\s*(?:=>|:=|[:=])\s*[rbu]?[\"']([^\"'\s]{12,200})[\"']"), 1),
)
_ENTROPY_CHECKED = {len(SECRETS) - 1}  # the generic assignment: its value must look random
_PLACEHOLDER_VALUE = re.compile(r"(?i)^(?:[*x.]+|\$.*|<.*>|\{.*\}|%.*|(?:your|my|the|some|example|dummy|fake|test|"
                                r"changeme|placeholder|redacted|password|secret|token)[\w-]*)$")

# RE2 prefilters (Arrow): a document none of them flags is not looked at again
PREFILTER = {
    "email": r"[A-Za-z0-9]@[A-Za-z0-9-]+\.[A-Za-z]",
    "ip_address": r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9A-Fa-f]{1,4}::?[0-9A-Fa-f]{1,4}::?[0-9A-Fa-f]{0,4}",
    "secret": r"PRIVATE KEY|AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|gh[pousr]_|github_pat_|xox[abposr]-|hooks\.slack|"
              r"AIza|://[^\s:/@'\"]+:[^\s@/'\"]+@|(?i:secret|token|passw|pwd|api_?key|access_?key|auth_?key|private_?key)"
              r"[\w.-]{0,40}[\"']?\s*(?:=>|:=|[:=])\s*[rbu]?[\"'][^\"'\s]{12}",
    # detect-secrets' plugins: a document it flags is split into lines, and only flagged lines are scanned
    "secret_plugins": secrets.PREFILTER,
}


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values()) if n else 0.0


def _looks_random(value: str) -> bool:
    return (entropy(value) >= 3.5 and any(c.isdigit() for c in value) and any(c.isalpha() for c in value)
            and not _PLACEHOLDER_VALUE.match(value))


def _is_public_ip(text: str, start: int, value: str) -> bool:
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return False
    if not addr.is_global or addr.is_multicast or value in PUBLIC_DNS or str(addr) in PUBLIC_DNS or _is_mask(addr):
        return False
    if addr.version == 4:  # 1.2.3.4-like (every part one digit): an example or a version, not a host
        return not _VERSION_BEFORE.search(text[max(0, start - 24):start]) and max(map(len, value.split("."))) > 1
    return sum(1 for g in value.split(":") if g) >= 3  # `a::b` in C++/Rust code is not an address


def _is_mask(addr) -> bool:
    """A netmask (ones then zeros: `ffff:ffff::`, `255.255.0.0`) names no host."""
    bits = int(addr)
    inverted = ~bits & ((1 << addr.max_prefixlen) - 1)
    return bits != 0 and (inverted & (inverted + 1)) == 0


def _email_kept(value: str) -> bool:
    domain = value.rsplit("@", 1)[1].lower()
    return any(domain == d or domain.endswith("." + d) for d in ("example.com", "example.org", "example.net"))


def _keep_plugin_value(allow: frozenset[str]):
    """The filter on detect-secrets' values: the same placeholder rule as the patterns', and `allow`."""
    return lambda value: value not in allow and not _PLACEHOLDER_VALUE.match(value)


def plugin_spans(texts: pa.Array, allow: frozenset[str]) -> dict[int, list[tuple[int, int]]]:
    """Document index -> spans of the secrets detect-secrets' plugins find (on prefiltered lines only)."""
    return secrets.find_spans(texts, _keep_plugin_value(allow))


def find(text: str, types: set[str], allow: frozenset[str],
         found: list[tuple[int, int]] | None = None) -> list[tuple[int, int, str]]:
    """(start, end, type) of every value to replace, without overlaps, in text order. `found`: the
    plugins' secret spans in this text when the caller computed them for its batch (then `types` says
    only whether redact's own secret patterns run); None: computed here if `secret` is in `types`."""
    spans: list[tuple[int, int, int, str]] = []  # start, priority (secret first), end, type
    if found is None and "secret" in types:
        found = plugin_spans(pa.array([text], pa.large_string()), allow).get(0, [])
    spans += [(start, 0, end, "secret") for start, end in found or ()]
    if "secret" in types:
        for k, (pattern, group) in enumerate(SECRETS):
            for m in pattern.finditer(text):
                value = m.group(group)
                if group and (_PLACEHOLDER_VALUE.match(value) or (k in _ENTROPY_CHECKED and not _looks_random(value))):
                    continue
                if value not in allow:
                    spans.append((m.start(group), 0, m.end(group), "secret"))
    if "ip_address" in types:
        for pattern in (IPV4, IPV6):
            for m in pattern.finditer(text):
                if m.group() not in allow and _is_public_ip(text, m.start(), m.group()):
                    spans.append((m.start(), 1, m.end(), "ip_address"))
    if "email" in types:
        for m in EMAIL.finditer(text):
            if m.group() not in allow and not _email_kept(m.group()):
                spans.append((m.start(), 2, m.end(), "email"))
    out, end = [], -1
    for start, _, stop, kind in sorted(spans, key=lambda s: (s[0], s[1], -s[2])):
        if start >= end:
            out.append((start, stop, kind))
            end = stop
    return out


def synthetic(kind: str, value: str, seed: str) -> str:
    """A fake of `value`'s shape from `seed` alone (never from the value's content, beyond its shape)."""
    digest = hashlib.sha256(seed.encode()).digest()
    n = int.from_bytes(digest[:8], "big")
    if kind == "email":
        return f"user{n % 100000:05d}@example.com"
    if kind == "ip_address":
        return f"198.51.100.{n % 254 + 1}" if "." in value else f"2001:db8::{n % 65536:x}"
    rng = np.random.default_rng(n)
    keep = 4 if re.match(r"AKIA|ASIA|AIza|gh[pousr]_|xox", value) else 0
    out = []
    for i, c in enumerate(value):  # same length and character classes; the key's type prefix kept
        if i < keep or not c.isalnum() or c in "\n-" or value.startswith("-----") and not _in_pem_body(value, i):
            out.append(c)
        elif c.isdigit():
            out.append(str(rng.integers(10)))
        else:
            letter = chr(ord("a") + int(rng.integers(26)))
            out.append(letter.upper() if c.isupper() else letter)
    return "".join(out)


def _in_pem_body(value: str, i: int) -> bool:
    return value.find("\n") < i < value.rfind("\n")


def redact_text(text: str, types: set[str], replacement: str, allow: frozenset[str], seed: str,
                found: list[tuple[int, int]] | None = None) -> tuple[str, dict]:
    """(text with every find replaced, count per type); `found` as for `find`."""
    spans = find(text, types, allow, found)
    if not spans:
        return text, {}
    pieces, at, counts = [], 0, Counter()
    for k, (start, stop, kind) in enumerate(spans):
        value = text[start:stop]
        new = PLACEHOLDER[kind] if replacement == "placeholder" else synthetic(kind, value, f"{seed}:{k}")
        pieces += [text[at:start], new]
        at = stop
        counts[kind] += 1
    pieces.append(text[at:])
    return "".join(pieces), dict(counts)


def candidates(texts: pa.ChunkedArray | pa.Array, types: list[str]) -> dict[str, np.ndarray]:
    """Per type, which documents its RE2 prefilter flags (vectorised over the batch); with `secret`, also
    `secret_plugins`: the documents with a line for detect-secrets' plugins."""
    keys = [*types, "secret_plugins"] if "secret" in types else list(types)
    return {t: pc.fill_null(pc.match_substring_regex(texts, PREFILTER[t]), False).to_numpy(zero_copy_only=False)
            for t in keys}


def _batch_plugin_spans(texts, rows: np.ndarray, flags: dict, allow: frozenset[str]) -> dict[int, list]:
    """Row -> the plugins' spans, for the rows the plugins' prefilter flagged, in one vectorised pass."""
    if "secret_plugins" not in flags:
        return {}
    secret_rows = rows[flags["secret_plugins"][rows]]
    if not len(secret_rows):
        return {}
    arr = texts.take(pa.array(secret_rows))
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    return {int(secret_rows[i]): spans for i, spans in plugin_spans(arr, allow).items()}


def apply(table: pa.Table, types: list[str], replacement: str, allow: list[str], seed: int) -> pa.Table:
    """The table with `text` redacted, `redactions` counts, `bytes_in` (bytes before) and null decision
    columns; same rows, same order."""
    n = table.num_rows
    texts = table[TEXT]
    counts = {t: np.zeros(n, np.int32) for t in TYPES}
    flags = candidates(texts, list(types)) if n and types else {}
    rows = np.flatnonzero(np.logical_or.reduce(list(flags.values()))) if flags else np.zeros(0, np.int64)
    new_text = texts
    if len(rows):
        ids = table[ID].take(pa.array(rows)).to_pylist()
        originals = texts.take(pa.array(rows)).to_pylist()
        allowed = frozenset(allow)
        plugin = _batch_plugin_spans(texts, rows, flags, allowed)
        replaced = []
        for r, doc_id, text in zip(rows.tolist(), ids, originals):  # flagged documents only
            on = {t for t in types if flags[t][r]}  # `secret`: the patterns; the plugins' spans are in `plugin`
            out, found = redact_text(text, on, replacement, allowed, f"{seed}:{doc_id}", plugin.get(r, []))
            replaced.append(out)
            for t, c in found.items():
                counts[t][r] = c
        arr = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
        mask = np.zeros(n, bool)
        mask[rows] = True
        new_text = pc.replace_with_mask(arr, pa.array(mask), pa.array(replaced, arr.type))
    bytes_in = pc.cast(pc.binary_length(texts), pa.int64())
    redactions = pa.StructArray.from_arrays([pa.array(counts[t]) for t in TYPES], fields=list(REDACTIONS_TYPE))
    out = table.set_column(table.schema.get_field_index(TEXT), TEXT, new_text)
    return (out.append_column(REDACTIONS, redactions).append_column(BYTES_IN, bytes_in)
            .append_column(DROP_REASON, pa.nulls(n, pa.string())).append_column(DROP_DETAIL, pa.nulls(n, pa.string())))
