"""Masking what is not prose before language ID: exact outputs on small inputs of each markup, plain prose
unchanged byte for byte, and the language decision it fixes on a code-heavy page."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.rules.markup import mask
from curate.stages import language
from curate.workers import language as W


def one(text: str) -> str:
    return mask(pa.array([text])).to_pylist()[0]


@pytest.mark.parametrize(("text", "expected"), [
    ("Run it:\n```sh\nmake all\n```\nThen read on.", "Run it:\n \nThen read on."),
    ("Call `f(x)` twice.", "Call   twice."),
    ("See https://example.org/a?b=1 and www.example.org now.", "See   and   now."),
    ("Example::\n\n    x = f(1)\n    y = 2\n\nMore prose.", "Example. More prose."),
    ("We prove $x^2 = y$ here. Also $$a+b$$ and \\[c\\].", "We prove   here. Also   and  ."),
    ("\\section{Results} It holds.", " {Results} It holds."),
    ("'''Lake''' is in [[North Land|the north]].{{cite web|a=b}}", "'''Lake''' is in the north. "),
    ("Text\n{| class=x\n|-\n| a || b\n|}\nafter the table", "Text\n \n \n \n \nafter the table"),
    ("Prices: $5 and $10, 50% off.", "Prices: $5 and $10, 50% off."),  # not math: no TeX character
])
def test_each_markup_is_blanked(text, expected):
    tail = " The rest of this page is plain English prose."  # enough letters remain: the mask is used
    assert one(text + tail) == expected + tail


def test_a_document_that_is_all_markup_keeps_its_text():
    code = "```\nx = 1\n```"
    assert one(code) == code  # fewer than 20 letters would remain: judged on everything, as before


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Nd", "Zs"), whitelist_characters=".,;!?'\"-\n"),
                        max_size=200), max_size=5))
def test_plain_prose_is_unchanged(texts):
    """Property: text without any markup marker (letters, digits, spaces, sentence punctuation) is returned
    as it is, so language ID on plain prose equals the raw model's."""
    texts = [t.replace("\n    ", "\n") for t in texts]  # four spaces after a break would be an indented block
    assert mask(pa.array(texts, pa.string())).to_pylist() == texts


def test_masking_lets_a_code_heavy_page_be_identified_as_english(lid_model_path):
    page = ("# Quick start\n\nInstall the tool and run it on your project.\n\n"
            + "```python\nimport os\nfor k, v in sorted(os.environ.items()):\n    print(f'{k}={v!r}')\n```\n" * 6
            + "\nThe output lists every variable.\n")
    ft = W.model(str(lid_model_path))
    raw = W.predict(ft, language.prepare_texts(pa.array([page]), 10_000))
    masked = W.predict(ft, language.prepare_texts(pa.array([page]), 10_000, mask_markup=True))
    assert masked[0][0] == "en" and masked[1][0] >= 0.65
    assert raw[1][0] < masked[1][0]
