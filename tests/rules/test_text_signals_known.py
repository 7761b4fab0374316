"""Every text signal and the `web` and `curated` profiles' decisions on a fixed batch, against the values
recorded before the text signals were made faster (`text_signals_known.json` beside it, written by this
module's `record()` at the commit that preceded that change). A changed metric, kept/dropped decision or
reason shows here, including the line, paragraph and mojibake signals that the per-document reference in
test_text_metrics.py does not cover.

The batch is written for this test: words, lines and paragraphs that repeat, C4 / FineWeb line cases
(terminal punctuation, policy phrases, `javascript`, bullets, ellipses), navigation bars and menus, mojibake,
lorem ipsum, braces, and whitespace of every kind Python splits on (no-break space, ideographic space,
\\x1c, tabs), in ASCII and non-ASCII lines."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pyarrow as pa

from curate.rules.text_metrics import text_signals
from curate.stages import quality

KNOWN = Path(__file__).with_name("text_signals_known.json")
WORDS = ["the", "of", "and", "data", "model", "Café", "naïve", "Ελλάδα", "東京", "x1", "42", "#", "...", "…",
         "{a}", "-", "•", "(b)", "and,", "dog.", "Ã©", "â€™", "\ufffd", "lorem", "ipsum", "javascript", "Home"]
SPACES = [" "] * 8 + ["  ", "\t", "\u00a0", "\u3000", "\x1c", " \u2028 "]
LINES = ["We use cookies to improve your experience.", "Read our privacy policy and terms of use.",
         "Home | About | Contact | Blog", "© 2024 Example Corp. All rights reserved.", "Powered by Nothing",
         "Please enable JavaScript to view this page.", "• first item", "- second item", "and so on...",
         "Skip to content", "News", "Sports", "Lorem ipsum dolor sit amet.", "def f(x): { return x; }"]


def batch() -> list[str]:
    rng = random.Random(13)
    docs = ["", "   \n\n  ", "one", "Lorem ipsum dolor sit amet, consectetur adipiscing elit."]
    for i in range(40):
        lines = []
        for _ in range(rng.randrange(1, 14)):
            if rng.random() < 0.3:
                lines.append(rng.choice(LINES))
            else:
                words = [rng.choice(WORDS[: 8 + i % 20]) for _ in range(rng.randrange(0, 18))]
                line = "".join(w + rng.choice(SPACES) for w in words).rstrip(" ")
                lines.append(line + rng.choice(["", ".", "!", "?", '"', " ", "..."]))
            if rng.random() < 0.15:
                lines.append("")  # a paragraph break
        if i % 5 == 0:
            lines = lines + lines  # repeated lines and paragraphs
        docs.append("\n".join(lines))
    return docs


def compute() -> dict:
    texts = pa.array(batch())
    signals = {name: [None if math.isnan(v) else float(v) for v in values] for name, values in text_signals(texts).items()}
    n = len(texts)
    table = pa.table({"id": [str(i) for i in range(n)], "text": texts, "kind": ["text"] * n, "source": ["s"] * n,
                      "lang": ["en"] * n, "path_or_url": [None] * n})
    decisions = {}
    for profile in ("web", "curated"):
        out = quality.apply(table, quality.active_rules({}, [], profile, {}), profile=profile)
        decisions[profile] = {"reason": out["drop_reason"].to_pylist(), "detail": out["drop_detail"].to_pylist(),
                              "score": out["quality_score"].to_pylist()}
    return {"signals": signals, "decisions": decisions}


def record() -> None:
    KNOWN.write_text(json.dumps(compute(), indent=0, sort_keys=True) + "\n", encoding="utf-8")


def test_text_signals_and_decisions_equal_the_recorded_ones():
    known = json.loads(KNOWN.read_text(encoding="utf-8"))
    got = json.loads(json.dumps(compute(), sort_keys=True))  # the same float and null round trip as recorded
    assert sorted(got["signals"]) == sorted(known["signals"])
    for name, values in known["signals"].items():
        assert got["signals"][name] == values, name
    assert got["decisions"] == known["decisions"]
    assert {r for r in known["decisions"]["web"]["reason"] if r} and None in known["decisions"]["curated"]["reason"]


if __name__ == "__main__":
    record()
