"""decontaminate: known answers on items written here and on HumanEval items planted into modules."""

from __future__ import annotations

import gzip
import json
import textwrap

import numpy as np
import pyarrow as pa
import pytest

from curate.reasons import REASONS
from curate.stages import decontaminate as D

# items written for these tests: a function with a docstring (long), and a short word sequence
ITEM_LONG = '''def running_median(values: list[float]) -> list[float]:
    """Return the median of every prefix of values, computed with two heaps so that each step
    costs logarithmic time in the number of values seen so far."""
    low, high, out = [], [], []
    for v in values:
        heapq.heappush(low, -heapq.heappushpop(high, v))
        if len(low) > len(high):
            heapq.heappush(high, -heapq.heappop(low))
        out.append(high[0] if len(high) > len(low) else (high[0] - low[0]) / 2)
    return out
'''
ITEM_SHORT = "zebra quokka axolotl"  # 3 words < ngram: matched whole


def index(ngram: int = 13) -> D.Index:
    return D.build_index([ITEM_LONG, ITEM_SHORT], ["mine", "mine"], ["long-1", "short-1"], ngram)


def words(text: str) -> list[str]:
    import re

    return re.findall(r"\w+", text.lower())


def test_an_item_shares_every_one_of_its_ngrams_with_itself():
    n_words = len(words(ITEM_LONG))
    item, matches = D.match([ITEM_LONG], index(), 1)
    assert item.tolist() == [0] and matches.tolist() == [n_words - 13 + 1]  # distinct 13-grams of the item


def test_planted_verbatim_reindented_and_renamed_are_caught():
    verbatim = "import heapq\n\n" + ITEM_LONG + "\nprint(running_median([3, 1, 2]))\n"
    reindented = "import heapq\n\nclass Stats:\n" + textwrap.indent(ITEM_LONG.replace("    ", "\t"), "        ")
    renamed = "import heapq\n" + ITEM_LONG.replace("running_median", "prefix_medians") + "\n# end\n"
    crlf = ITEM_LONG.replace("\n", "\r\n").upper()  # case and line endings do not matter
    item, matches = D.match([verbatim, reindented, renamed, crlf], index(), 1)
    assert item.tolist() == [0, 0, 0, 0]
    assert matches[2] < matches[0]  # the n-grams through the name are lost, the others remain


def test_common_phrases_are_not_matches():
    docs = ["def main():\n    result = compute()\n    return result\n\nif __name__ == \"__main__\":\n    main()\n",
            "# Licensed under the Apache License, Version 2.0 (the \"License\"); you may not use this file except "
            "in compliance with the License. You may obtain a copy of the License at\n",
            "for v in values:\n    out.append(v)\nreturn out\n",  # a few of the item's words, fewer than 13 in a row
            "zebra quokka", "zebraquokka axolotl"]  # part of the short item; not on word boundaries
    item, _ = D.match(docs, index(), 1)
    assert item.tolist() == [-1] * len(docs)


def test_a_short_item_matches_as_a_whole_normalised_substring():
    docs = ["animals: Zebra,   QUOKKA\n\taxolotl!", "zebra quokka and axolotl"]
    item, matches = D.match(docs, index(), 3)
    assert item.tolist() == [1, -1] and matches.tolist() == [3, 0]  # whole: counts as min_matches


def test_min_matches_counts_distinct_shared_ngrams():
    w = words(ITEM_LONG)
    k = 4  # a document holding exactly k of the item's 13-grams: 13 + k - 1 consecutive words, twice
    doc = " ".join(w[:13 + k - 1]) + " . " + " ".join(w[:13 + k - 1])
    assert D.match([doc], index(), k)[0].tolist() == [0]
    assert D.match([doc], index(), k)[1].tolist() == [k]
    assert D.match([doc], index(), k + 1)[0].tolist() == [-1]


def test_the_item_with_most_matches_is_named_and_ties_go_to_the_earlier():
    other = ITEM_LONG.replace("heaps", "stacks")  # shares most n-grams with ITEM_LONG
    idx = D.build_index([other, ITEM_LONG], ["b", "a"], ["x", "y"], 13)
    item, _ = D.match([ITEM_LONG], idx, 1)
    assert item.tolist() == [1]
    same = D.build_index([ITEM_LONG, ITEM_LONG], ["b", "a"], ["x", "y"], 13)
    assert D.match([ITEM_LONG], same, 1)[0].tolist() == [0]


def test_apply_marks_rows_in_place_with_reason_and_detail():
    t = pa.table({"id": ["a", "b", "c"], "text": ["nothing", ITEM_LONG, "zebra quokka axolotl"]})
    out = D.apply(t, index(), 1)
    assert out["id"].to_pylist() == ["a", "b", "c"]
    assert out["drop_reason"].to_pylist() == [None, D.REASON, D.REASON]
    n = len(words(ITEM_LONG)) - 12
    assert out["drop_detail"].to_pylist() == [None, f"benchmark=mine item=long-1 matches={n}",
                                              "benchmark=mine item=short-1 matches=1"]
    assert D.REASON in REASONS
    assert D.apply(t, None, 1)["drop_reason"].null_count == 3  # no benchmarks: everything kept


def test_empty_inputs():
    assert D.match([], index(), 1)[0].tolist() == []
    assert D.apply(pa.table({"text": pa.array([], pa.string())}), index(), 1).num_rows == 0
    assert D.match(["", "   "], index(), 1)[0].tolist() == [-1, -1]


@pytest.fixture(scope="module")
def humaneval(humaneval_path):
    return [json.loads(line) for line in gzip.open(humaneval_path)]


def test_humaneval_solutions_planted_in_modules_are_caught(humaneval):
    idx = D.build_index([r["prompt"] + "\n" + r["canonical_solution"] for r in humaneval], ["humaneval"] * len(humaneval),
                        [r["task_id"] for r in humaneval], 13)
    rng = np.random.default_rng(0)
    picked = [humaneval[i] for i in rng.choice(len(humaneval), 20, replace=False)]
    docs = []
    for r in picked:
        body = r["prompt"] + r["canonical_solution"]
        docs.append("import os\nimport sys\n\n" + body + "\n\ndef main():\n    print(sys.argv)\n")  # verbatim
        docs.append("class Solution:\n" + textwrap.indent(body, "    "))  # re-indented as a method
        docs.append("# utils\n" + body.replace(r["entry_point"], "my_helper_fn"))  # renamed
    item, _ = D.match(docs, idx, 1)
    want = [r["task_id"] for r in picked for _ in range(3)]
    assert [idx.item_ids[i] if i >= 0 else None for i in item.tolist()] == want
    clean = ["def add(a, b):\n    return a + b\n", "if __name__ == \"__main__\":\n    main()\n",
             "for i in range(len(numbers)):\n    result.append(numbers[i])\nreturn result\n"]
    assert D.match(clean, idx, 1)[0].tolist() == [-1, -1, -1]
