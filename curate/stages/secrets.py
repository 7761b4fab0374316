"""redact's second secret detector: Yelp detect-secrets' plugins, run only on the lines a cheap prefilter flags.

What BigCode's PII pipeline used for keys (bigcode-dataset `pii/utils/keys_detection.py`: detect-secrets
1.x, most plugins, the heuristic filters). Here the plugins run line by line in detect-secrets' file mode
(`core.scan._process_line_based_plugins`, as `scan_file` does; not `scan_line`, whose eager search turns
every quoted string into a high-entropy finding), one line at a time so that a line's result never depends
on its neighbours in the batch.

Cost: a document reaches Python per line only if `PREFILTER` (RE2, run by Arrow over the whole column)
matches it; then its lines are split and matched by Arrow again, and only the matching lines go to the
plugins. `PREFILTER` is the union of an anchor per plugin in `PLUGINS`: a line a plugin can report has
the anchor (tests and `curate.bench.secrets_compare` check this).

Spans: a plugin reports a value per line; every occurrence of it on that line is a span, widened over
`[A-Za-z0-9_-]` on both sides because two plugins report a part of their match (GitHubTokenDetector's
group is `ghp`, JwtTokenDetector's lazy tail stops before the signature). Values that look like
placeholders (redact's `_PLACEHOLDER_VALUE`) or are in the recipe's `allow` are dropped by the caller.

Each flagged line is scanned only by the plugins whose anchor it contains (`scan_by_anchor`; most flagged
lines carry a keyword name and nothing else).

Settings: detect-secrets keeps process-global settings. `scan_lines` enters `transient_settings` for each
call (about 1 ms per entry; one per distinct plugin set in a batch) and leaves it, which restores whatever
was there before: nothing leaks into other code in the process. Plugin classes are resolved once per process
(`_check_plugins`). No verification filter is configured, so no plugin ever calls the network.
Not thread-safe (global settings): Ray runs one task at a time per worker process.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# The plugin set. In: every plugin whose pattern is a key *shape* or a key name with a value of a fixed
# shape (BigCode's set minus what is noted). Out, with the reason:
#   Base64HighEntropyString, HexHighEntropyString: any random-looking quoted string; on the case table Hex
#     flags the git SHA and Base64 flags lockfile integrity hashes; BigCode kept them only behind a
#     gibberish model we do not ship. Random values under a secret-named key are KeywordDetector's and
#     redact's own keyword pattern's.
#   IPPublicDetector: IPs are redact's `ip_address` type (kept ranges, versions, DNS servers), counted there.
PLUGINS = (
    {"name": "AWSKeyDetector"},            # AKIA/ASIA/... ids; 40-char secret after an aws...key name
    {"name": "ArtifactoryDetector"},       # AKC... tokens, AP... passwords
    {"name": "AzureStorageKeyDetector"},   # AccountKey=<88 base64> in connection strings
    {"name": "BasicAuthDetector"},         # scheme://user:password@host
    {"name": "CloudantDetector"},          # cloudant key/password assignments and URLs
    {"name": "DiscordBotTokenDetector"},
    {"name": "GitHubTokenDetector"},       # reports only `ghp`: widened to the token (module docstring)
    {"name": "GitLabTokenDetector"},       # glpat-, glrt-, ... tokens
    {"name": "IbmCloudIamDetector"},       # 44-char value under an (ibm/cloud/iam) key/password/token name
    {"name": "IbmCosHmacDetector"},        # 48-hex secret access key
    {"name": "JwtTokenDetector"},          # eyJ...; checked to be base64url JSON parts
    {"name": "KeywordDetector"},           # quoted value assigned to password/secret/api_key/... names
    {"name": "MailchimpDetector"},         # <32>-usN
    {"name": "NpmDetector"},               # //registry/:_authToken=
    {"name": "OpenAIDetector"},            # sk-...T3BlbkFJ...
    {"name": "PrivateKeyDetector"},        # BEGIN ... PRIVATE KEY line (redact's regex takes the whole block)
    {"name": "PypiTokenDetector"},
    {"name": "SendGridDetector"},          # SG.<22>.<43>
    {"name": "SlackDetector"},             # xox?- tokens, hooks.slack.com webhooks
    {"name": "SoftlayerDetector"},
    {"name": "SquareOAuthDetector"},       # sq0csp-
    {"name": "StripeDetector"},            # sk_live_/rk_live_
    {"name": "TelegramBotTokenDetector"},  # <bot id>:<35>
    {"name": "TwilioKeyDetector"},         # AC<32>/SK<32>
)
# detect-secrets' default filters that apply to a single line, and its `pragma: allowlist secret` comment.
# Out: is_lock_file and is_swagger_file (they look at file names, which we do not have) and
# is_indirect_reference, which drops every line of the form `x = f(...)` before any plugin runs: it lost
# `Client('AC…', auth_token)` (Twilio) and `WebClient(token='xoxb-…')` on the case table (BigCode left it
# out too).
FILTERS = tuple({"path": f"detect_secrets.filters.{p}"} for p in (
    "heuristic.is_sequential_string", "heuristic.is_potential_uuid", "heuristic.is_likely_id_string",
    "heuristic.is_templated_secret", "heuristic.is_prefixed_with_dollar_sign", "heuristic.is_not_alphanumeric_string",
    "allowlist.is_line_allowlisted"))
CONFIG = {"plugins_used": [dict(p) for p in PLUGINS], "filters_used": [dict(f) for f in FILTERS]}
# A fixed file name: KeywordDetector picks its assignment patterns by extension, and an unknown one gets
# the quotes-required set (`x = "value"`), the same for every language (a precision choice).
FILENAME = "document"

# One RE2 anchor per plugin (what every match of its patterns contains); their union is the prefilter.
# The four plugins built on detect-secrets' `build_assignment_regex` share one: a key/password/token name,
# an assignment (= : := => :: or spaces), an optional quote, then 24+ value characters (their shortest value).
_ASSIGNED_24 = r"(?i:key|pw|pass|token)[\]\"']?\s*(?:=|:| )[\s=:>]*[\"']?[a-zA-Z0-9_-]{24}"
_KEYWORD = (r"(?i:(?:api|auth|service|account|db|database|priv|private|client)_?key|(?:db|database|key)_?pass"
            r"|passw|pwd|secret|contrase)")
ANCHORS = {
    "AWSKeyDetector": r"A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA|(?i:aws.{0,20}(?:key|pw|pass|token))",
    "ArtifactoryDetector": r"AKC[a-zA-Z0-9]{10}|AP[\dABCDEF][a-zA-Z0-9]{8}",
    "AzureStorageKeyDetector": r"AccountKey=",
    "BasicAuthDetector": r"://[^\s:/?#@]+:[^\s/?#@]+@",
    "CloudantDetector": _ASSIGNED_24 + r"|(?i:cloudant\.com)",
    "DiscordBotTokenDetector": r"[MNO][a-zA-Z\d_-]{23,25}\.[a-zA-Z\d_-]{6}\.",
    "GitHubTokenDetector": r"gh[pousr]_",
    "GitLabTokenDetector": r"gl(?:pat|dt|ft|soat|rt|cbt|imt|ptt|agent|oas)-|GR1348941",
    "IbmCloudIamDetector": _ASSIGNED_24,
    "IbmCosHmacDetector": _ASSIGNED_24,
    "JwtTokenDetector": r"eyJ",
    # its quotes-required patterns (our FILENAME) need a quote after the name, or before it (`"v" == pwd`)
    "KeywordDetector": rf"{_KEYWORD}[^\n]*['\"`]|['\"`][^\n]*{_KEYWORD}",
    "MailchimpDetector": r"-us\d",
    "NpmDetector": r":_authToken=",
    "OpenAIDetector": r"T3BlbkFJ",
    "PrivateKeyDetector": r"PRIVATE KEY|PuTTY-User-Key-File-2",
    "PypiTokenDetector": r"pypi-AgE",
    "SendGridDetector": r"SG\.[a-zA-Z0-9_-]{22}\.",
    "SlackDetector": r"(?i:xox[abposr]-|hooks\.slack\.com)",
    "SoftlayerDetector": _ASSIGNED_24 + r"|(?i:api\.softlayer\.com)",
    "SquareOAuthDetector": r"sq0csp-",
    "StripeDetector": r"[rs]k_live_",
    "TelegramBotTokenDetector": r"\d{8,10}:[0-9A-Za-z_-]{35}",
    "TwilioKeyDetector": r"(?:AC|SK)[a-z0-9]{32}",
}
# KeywordDetector reports any quoted value under a password-like name: `'MODULE_PWD_STATE': 'yes'` in the
# standard library, and `"API_KEY": "abc123"` in its tests. detect-secrets' answer (gibberish model, word
# list) is not shipped, so its values must look like a password: this long (NIST SP 800-63B's minimum for
# passwords a user chooses), with this many character classes (lower, upper, digit, other).
KEYWORD_MIN_LENGTH = 8
KEYWORD_MIN_CLASSES = 2
PREFILTER = "|".join(dict.fromkeys(ANCHORS[p["name"]] for p in PLUGINS))  # each distinct anchor once
_TOKEN = re.compile(r"[A-Za-z0-9_-]*")
_TOKEN_BEFORE = re.compile(r"[A-Za-z0-9_-]*$")


@functools.cache
def _check_plugins() -> None:
    """Once per process: every plugin name resolves to a detect-secrets class (a typo fails here, loudly),
    and detect-secrets' logger stays at ERROR: its INFO messages quote the values its filters skip, which
    are document content."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    logging.getLogger("detect-secrets").setLevel(logging.ERROR)
    known = {c.__name__ for c in get_mapping_from_secret_type_to_class().values()}
    missing = sorted({p["name"] for p in PLUGINS} - known)
    if missing:
        raise RuntimeError(f"detect-secrets has no plugin {', '.join(missing)}")


def scan_lines(lines: Sequence[str], config: dict | None = None) -> list[set[str]]:
    """For each line, the secret values detect-secrets' plugins report (after its filters); `config`
    (default CONFIG) is for the benchmark's comparison of plugin sets."""
    from detect_secrets.core.scan import _process_line_based_plugins
    from detect_secrets.settings import transient_settings

    _check_plugins()
    with transient_settings(config or CONFIG):
        return [{s.secret_value for s in _process_line_based_plugins([(1, line)], filename=FILENAME)
                 if s.secret_value and (s.type != "Secret Keyword" or _password_like(s.secret_value))}
                for line in lines]


def _password_like(value: str) -> bool:
    """KEYWORD_MIN_LENGTH characters or more, of KEYWORD_MIN_CLASSES classes or more."""
    classes = (any(c.islower() for c in value), any(c.isupper() for c in value), any(c.isdigit() for c in value),
               any(not c.isalnum() for c in value))
    return len(value) >= KEYWORD_MIN_LENGTH and sum(classes) >= KEYWORD_MIN_CLASSES


def line_spans(line: str, values: set[str]) -> list[tuple[int, int]]:
    """Every occurrence of each value on the line, widened over token characters, sorted."""
    spans = set()
    for value in values:
        at = line.find(value)
        while at >= 0:
            end = at + len(value)
            spans.add((_TOKEN_BEFORE.search(line, 0, at).start(), _TOKEN.match(line, end).end()))
            at = line.find(value, at + 1)
    return sorted(spans)


def flagged_lines(texts: pa.Array) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """(document index, line start offset, line) of every line PREFILTER flags, vectorised: no Python runs
    for a line that is not flagged."""
    doc_hit = pc.fill_null(pc.match_substring_regex(texts, PREFILTER), False)
    docs = np.flatnonzero(doc_hit.to_numpy(zero_copy_only=False))
    if not len(docs):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), pa.array([], pa.large_string())
    split = pc.split_pattern(texts.take(pa.array(docs)), "\n")
    lines = split.flatten()
    owner = docs[pc.list_parent_indices(split).to_numpy()]
    length = pc.utf8_length(lines).to_numpy() + 1  # + the "\n" that split removed
    ends = np.cumsum(length)
    first = np.asarray(split.offsets)[:-1]  # index of each document's first line in `lines`
    start = ends - length - np.repeat(ends[first] - length[first], np.diff(np.asarray(split.offsets)))
    hit = np.flatnonzero(pc.fill_null(pc.match_substring_regex(lines, PREFILTER), False).to_numpy(zero_copy_only=False))
    return owner[hit], start[hit], lines.take(pa.array(hit, pa.int64()))


def plugins_per_line(lines: pa.Array) -> list[tuple[str, ...]]:
    """For each line, the plugins whose anchor it contains (one Arrow match per distinct anchor)."""
    hit = {a: pc.fill_null(pc.match_substring_regex(lines, a), False).to_numpy(zero_copy_only=False)
           for a in dict.fromkeys(ANCHORS.values())}
    return [tuple(p["name"] for p in PLUGINS if hit[ANCHORS[p["name"]]][i]) for i in range(len(lines))]


def scan_by_anchor(lines: pa.Array) -> list[set[str]]:
    """`scan_lines`, each line seen only by the plugins whose anchor it contains: most flagged lines carry
    a keyword name alone, and 1 plugin costs ~1/20 of 24. A plugin's findings on a line do not depend on
    the other plugins, so the result is the same as with every plugin (a test checks)."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, names in enumerate(plugins_per_line(lines)):
        groups.setdefault(names, []).append(i)
    texts = lines.to_pylist()
    out: list[set[str]] = [set() for _ in texts]
    for names, rows in groups.items():  # one settings context per distinct plugin set in the batch
        config = {"plugins_used": [p for p in CONFIG["plugins_used"] if p["name"] in names],
                  "filters_used": CONFIG["filters_used"]}
        for i, values in zip(rows, scan_lines([texts[i] for i in rows], config)):
            out[i] = values
    return out


def find_spans(texts: pa.Array, keep: Callable[[str], bool]) -> dict[int, list[tuple[int, int]]]:
    """Document index -> (start, end) character spans of the secrets the plugins report on its flagged
    lines; `keep(value)` drops placeholders and allowed values."""
    owners, starts, lines = flagged_lines(texts)
    out: dict[int, list[tuple[int, int]]] = {}
    if not len(lines):
        return out
    for doc, offset, line, values in zip(owners.tolist(), starts.tolist(), lines.to_pylist(), scan_by_anchor(lines)):
        for a, b in line_spans(line, {v for v in values if keep(v)}):
            out.setdefault(doc, []).append((offset + a, offset + b))
    return out
